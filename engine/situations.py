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
from typing import Dict, Optional, Tuple

from . import conditions
from .words import plain, total_grams

DEFAULT_SIZE = 10240  # situations kept per process, about 2 KiB each: a worker stays under 64 MiB (bench/)
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

    Frozen means tuples interned in `shared`: most of a trace (which rule fired
    on which facts, asserting what) and most warnings are the same in many
    situations, so a situation costs little more than its references.
    """
    __slots__ = ("status", "frozen", "undecided")

    def __init__(self, run, shared: dict):
        r = run.result
        trace = [dict(e, matched=[dict(m, value=None) if m["fact"] == "Finding" else m for m in e["matched"]])
                 for e in r.trace]
        self.status = r.status
        self.frozen = _freeze((r.ivig, r.dose, r.warnings, trace, r.missing, run.derived, run.fired), shared)
        self.undecided = tuple(run.undecided)

    def replay(self, case, result_type, run_type):
        """The run of this situation for `case`: fresh objects, the case's own values."""
        facts = case.facts
        ivig, dose, warnings, trace, missing, derived, fired = _thaw(self.frozen)
        if dose is not None:
            dose["total_g"] = total_grams(dose, facts.get("weight_kg"))
        for entry in trace:
            for fact in entry["matched"]:
                if fact["fact"] == "Finding":
                    fact["value"] = plain(facts[fact["name"]])
        result = result_type(id=case.id, status=self.status, ivig=ivig, dose=dose, warnings=warnings,
                             trace=trace, missing=missing, source=case.source, line=case.line)
        return run_type(case, result, derived, fired, list(self.undecided))


class _Dict(tuple):
    """A frozen dict: its items, in order."""


class _List(tuple):
    """A frozen list."""


def _freeze(value, shared: dict):
    """The value as interned tuples (dicts keep their key order)."""
    return _frozen(value, shared)[0]


def _frozen(value, shared: dict):
    """(frozen value, its identity): the identity tells True from 1 and 2.0 from 2,
    and a list from a dict, which tuples alone would take for equal."""
    if isinstance(value, dict):
        items = [(k, _frozen(v, shared)) for k, v in value.items()]
        frozen, identity = _Dict((k, f) for k, (f, _) in items), (_Dict, tuple((k, i) for k, (_, i) in items))
    elif isinstance(value, (list, tuple)):
        items = [_frozen(v, shared) for v in value]
        frozen, identity = _List(f for f, _ in items), (_List, tuple(i for _, i in items))
    else:
        return value, (type(value), value)
    entry = shared.get(identity)
    if entry is None:  # the identity is kept too, so that a parent's identity shares its children's
        entry = shared[identity] = (frozen, identity)
    return entry


def _thaw(value):
    """Fresh dicts and lists from a frozen value: a caller may change them."""
    if type(value) is _Dict:
        return {k: _thaw(v) for k, v in value}
    if type(value) is _List:
        return [_thaw(v) for v in value]
    return value


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
        tenth of the run: in a batch that never repeats (under 5% hits after 512
        cases) only 1 miss in SAMPLE_WHEN_IDLE is stored, so the cache costs
        little there and still learns if the batch starts to repeat."""
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
