"""Deciding once per clinical situation: a bounded cache of runs.

What the rules conclude for a case depends only on what they can tell apart:
for each test some rule of the case's engine makes on a case field, whether
the field is known and, if it is, whether its value passes. Age 70 and age 80
are one situation when the only age test is ``age >= 65``. A test that only
rules already false for the case make (MYCIN's "skip a rule whose premise is
already false") tells nothing apart: volume depletion, read only by the
renal-failure rules, does not split the situations of a patient without
renal disease. Two cases in one situation fire the same rules in the same
order, so the second case's result is the first one's, with what is the
case's own read from the case: its id, source and line, the values of its
findings in the trace, and the grams of the dose (the weight is not a test,
but its presence is part of the key, as `missing` names it when a dose is
given).

The key is built from the engine's own rules (`Keyer`), so it changes with
them and can never go stale; the cache belongs to one `Advisor` and one rule
base. It is bounded (least recently used out), so memory stays flat whatever
the size of the input."""

from collections import OrderedDict
from pickle import HIGHEST_PROTOCOL, dumps, loads
from typing import Dict, Optional, Tuple

from . import conditions
from .words import plain, total_grams

DEFAULT_SIZE = 32768  # situations kept per process, about 0.6 KiB each (20 MiB): a worker stays under 64 MiB (bench/)
# Interned parts kept for sharing, per situation kept: the parts of situations
# already forgotten stay in the table until it is full, then it starts again
# (what situations still hold stays theirs), so memory stays bounded.
SHARED_PER_SITUATION = 2
SAMPLE_WHEN_IDLE = 16  # a cache that is not paying off stores only 1 miss in this many (see `worth_storing`)

# Case fields whose value reaches the result although no rule tests it: their
# presence is part of the key. (Their values are re-read from each case.)
READ_BY_RESULT = ("weight_kg",)


class Keyer:
    """The situation of a case, for one engine: a key from that engine's tests.

    Each distinct test of a case field (in negation normal form, as the rules
    are compiled) gives 1 or 0 on the case's value, or '-' when the field is
    unknown. A test is shown in the key only if some rule holding it is not
    already false for the case (MYCIN's "skip a rule whose premise is already
    false"): such a rule can neither fire nor wait on a missing field, so what
    only it reads changes nothing. Whether a rule is already false is read off
    its own tests (derived facts taken as unknown), so two cases with one key
    have the same rules already false, and the same bits for every other rule.
    """

    def __init__(self, rules, fields):
        index: Dict[tuple, conditions.Test] = {}  # (name, op, operand) -> the test, first written
        premises = []
        for rule in rules:
            premise = conditions.normal(rule.when)  # `not` pushed down, as the compiler reads it
            for test in conditions.tests(premise):
                if test.name in fields:  # a derived fact: decided by the rules from the fields
                    index.setdefault(_identity(test), test)
            premises.append(premise)
        order = {name: i for i, name in enumerate(fields)}
        # field order is the schema's, so that the key never depends on the order rules are written
        identities = sorted(index, key=lambda k: order[k[0]])
        self.tests: Tuple[conditions.Test, ...] = tuple(index[k] for k in identities)
        position = {k: i for i, k in enumerate(identities)}
        self._outcomes = tuple(_outcome(test) for test in self.tests)
        rule_tests = []
        for premise in premises:
            reads = frozenset(position[_identity(t)] for t in conditions.tests(premise) if t.name in fields)
            if reads:  # a premise on derived facts alone is never false before the run
                rule_tests.append((_kleene(premise, position, fields), reads))
        self._rules = tuple(rule_tests)
        tested = {test.name for test in self.tests}
        self.present_only: Tuple[str, ...] = tuple(
            name for name in READ_BY_RESULT if name in fields and name not in tested)

    @property
    def names(self) -> frozenset:
        """Every case field the key reads."""
        return frozenset(test.name for test in self.tests) | frozenset(self.present_only)

    def key(self, facts: dict) -> str:
        """One character per test: 1 or 0 on the case's value, '-' for an unknown
        field, '.' for a test only rules already false hold; then 1 or 0 for the
        presence of each field the result reads. A short string: a cache of
        thousands of situations stays small."""
        outcomes = [outcome(facts) for outcome in self._outcomes]
        shown = set()
        for premise, reads in self._rules:
            if premise(outcomes) is not False:
                shown |= reads
        chars = ["." if i not in shown else "-" if o is None else "1" if o else "0"
                 for i, o in enumerate(outcomes)]
        chars.append("|")
        chars.extend("1" if name in facts else "0" for name in self.present_only)
        return "".join(chars)


def _identity(test: conditions.Test) -> tuple:
    """A test as what it asks, whatever line it was written on."""
    return test.name, test.op, test.operand


def _outcome(test: conditions.Test):
    """The test on a case's facts: True, False, or None for an unknown field."""
    name, holds = test.name, test.holds
    if test.op == "known":
        wanted = test.operand
        return lambda facts: (name in facts) == wanted
    return lambda facts: holds(facts[name]) if name in facts else None


def _kleene(premise, position, fields):
    """The premise as a function of the test outcomes, in Kleene's logic, with
    every derived fact unknown (None): False means no run can make it true."""
    if isinstance(premise, conditions.Test):
        if premise.name not in fields:
            return lambda outcomes: None
        i = position[_identity(premise)]
        return lambda outcomes: outcomes[i]
    parts = tuple(_kleene(item, position, fields) for item in premise.items)  # no Not: normal form
    decisive = isinstance(premise, conditions.AnyOf)  # True settles an any, False an all

    def combined(outcomes):
        result = not decisive
        for part in parts:
            value = part(outcomes)
            if value is decisive:
                return decisive
            if value is None:
                result = None
        return result
    return combined


class Situation:
    """What a run concluded, frozen, with the parts that are the case's own left
    to fill in (the values of its findings in the trace are blanked).

    Frozen means pickled, part by part, and interned in `shared`: most trace
    entries (which rule fired on which facts, asserting what) and most
    warnings are the same in many situations, so a situation costs little more
    than its references. A pickle gives back exactly what went in (True is not
    1, 2.0 is not 2, a tuple is not a list), and unpickling in C is what makes
    a hit cheap.
    """
    __slots__ = ("status", "parts", "warnings", "trace", "undecided")

    def __init__(self, run, shared: dict):
        r = run.result
        trace = [dict(e, matched=[dict(m, value=None) if m["fact"] == "Finding" else m for m in e["matched"]])
                 for e in r.trace]
        dose = None if r.dose is None else dict(r.dose, total_g=None)  # the grams are the case's own
        self.status = r.status
        self.parts = _shared(tuple(_interned(part, shared) for part in (r.ivig, dose, r.missing, run.derived)),
                             shared)
        self.warnings = _shared(tuple(_interned(w, shared) for w in r.warnings), shared)
        self.trace = _shared(tuple(_interned(e, shared) for e in trace), shared)
        self.undecided = tuple(run.undecided)

    def replay(self, case, result_type, run_type):
        """The run of this situation for `case`: fresh objects, the case's own values."""
        facts = case.facts
        ivig, dose, missing, derived = map(loads, self.parts)
        warnings, trace = [loads(w) for w in self.warnings], [loads(e) for e in self.trace]
        if dose is not None:
            dose["total_g"] = total_grams(dose, facts.get("weight_kg"))
        for entry in trace:
            for fact in entry["matched"]:
                if fact["fact"] == "Finding":
                    fact["value"] = plain(facts[fact["name"]])
        fired = list(dict.fromkeys(entry["rule"] for entry in trace))  # as the run lists them: first firing first
        result = result_type(id=case.id, status=self.status, ivig=ivig, dose=dose, warnings=warnings,
                             trace=trace, missing=missing, source=case.source, line=case.line)
        return run_type(case, result, derived, fired, list(self.undecided))


def _interned(value, shared: dict) -> bytes:
    """The value pickled; an equal pickle already in `shared` is that one, shared.
    (Only what a run of ours built is pickled, and only here: nothing read from
    a file is ever unpickled.)"""
    return _shared(dumps(value, HIGHEST_PROTOCOL), shared)


def _shared(value, shared: dict):
    """An equal value already in `shared`, or this one, put there."""
    return shared.setdefault(value, value)


class SituationCache:
    """The most recently used situations, at most `maxsize` of them."""

    def __init__(self, maxsize: int = DEFAULT_SIZE):
        self.maxsize = maxsize
        self.hits = self.misses = 0
        self._entries: "OrderedDict[tuple, Situation]" = OrderedDict()
        self.shared: dict = {}  # the interned parts of the situations (see Situation)

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key) -> Optional[Situation]:
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        self.hits += 1
        self._entries.move_to_end(key)
        return entry

    def worth_storing(self) -> bool:
        """Whether to store the situation just missed. Freezing a run costs about a
        hundredth of the run, but a batch that never repeats would fill the cache
        with situations never seen again: there (under 5% hits after 512 cases)
        only 1 miss in SAMPLE_WHEN_IDLE is stored, so the cache costs little and
        still learns if the batch starts to repeat."""
        looked = self.hits + self.misses
        if looked < 512 or self.hits * 20 >= looked:
            return True
        return self.misses % SAMPLE_WHEN_IDLE == 0

    def store(self, key, run):
        """Keep a run under its situation, if `worth_storing`; frozen, so that the
        caller keeps its own Result to change."""
        if self.worth_storing():
            if len(self.shared) > SHARED_PER_SITUATION * self.maxsize:
                self.shared.clear()
            self.put(key, Situation(run, self.shared))

    def put(self, key, situation: Situation):
        self._entries[key] = situation
        if len(self._entries) > self.maxsize:
            self._entries.popitem(last=False)
