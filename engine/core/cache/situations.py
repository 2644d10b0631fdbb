"""Deciding once per clinical situation: a bounded cache of runs.

What the rules conclude for a case depends only on what they can tell apart:
for each test some rule of the case's engine makes on a case field, whether
the field is known and, if it is, whether its value passes. Age 70 and age 80
are one situation when the only age test is ``age >= 65``. A case's key
(`Keyer`) is those outcomes, one character per test.

A run reads only some of them: a rule already false for the case (MYCIN's
"skip a rule whose premise is already false") reads nothing more, and a rule
whose premise needs a fact the run never derived reads nothing at all. So a
run is stored under its *support* (core/cache/support.py): the positions of the
key it depended on, and the characters there. A later case whose key agrees
on those positions fires the same rules in the same order, and its result is
the stored one, with what is the case's own read from the case: its id,
source and line, the values of its findings in the trace, and the grams of
the dose (the weight is not a test, but its presence is in the key, as
`missing` names it when a dose is given).

The key and the support are read from the engine's own rules, so they change
with them and can never go stale; the cache belongs to one `Advisor` and one
rule base. It is bounded (least recently used out), so memory stays flat
whatever the size of the input."""

from collections import OrderedDict
from pickle import HIGHEST_PROTOCOL, dumps, loads
from typing import Dict, List, Optional, Tuple

from .. import conditions
from ..result import Result, Run
from ..words import patient_grams, plain
from .support import SupportReader, projector

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
    """The key of a case for one engine, and the support of its runs.

    Each distinct test of a case field (in negation normal form, as the rules
    are compiled) gives 1 or 0 on the case's value, or '-' when the field is
    unknown; then, after '|', 1 or 0 for the presence of each field the result
    reads. The support of a run (core/cache/support.py) is a set of its positions.
    """

    def __init__(self, rules, rulebase):
        fields = rulebase.schema.fields
        index: Dict[tuple, conditions.Test] = {}  # (name, op, operand) -> the test, first written
        for rule in rules:
            for test in conditions.tests(conditions.normal(rule.when)):  # `not` pushed down, as compiled
                if test.name in fields:  # a derived fact: decided by the rules from the fields
                    index.setdefault(test.identity, test)
        # A constraint that settles a field the rules test (a ventilated patient does not walk unaided)
        # changes what is missing: its `when` is part of every key and of every support.
        tested_by_rules = {identity[0] for identity in index}
        settling = set()
        for when, require, _, _ in rulebase.schema.constraints:
            if any(t.name in tested_by_rules for t in conditions.tests(require)):
                for test in conditions.tests(conditions.normal(when)):
                    settling.add(index.setdefault(test.identity, test).identity)
        order = {name: i for i, name in enumerate(fields)}
        # field order is the schema's, so that the key never depends on the order rules are written
        identities = sorted(index, key=lambda k: order[k[0]])
        self.tests: Tuple[conditions.Test, ...] = tuple(index[k] for k in identities)
        self._outcomes = tuple(_outcome(test) for test in self.tests)
        tested = {test.name for test in self.tests}
        self.present_only: Tuple[str, ...] = tuple(
            name for name in READ_BY_RESULT if name in fields and name not in tested
        )
        presence = tuple(range(len(self.tests) + 1, len(self.tests) + 1 + len(self.present_only)))
        always = tuple(i for i, k in enumerate(identities) if k in settling)
        self.reader = SupportReader(rules, rulebase, {k: i for i, k in enumerate(identities)}, presence, always)

    @property
    def names(self) -> frozenset:
        """Every case field the key reads."""
        return frozenset(test.name for test in self.tests) | frozenset(self.present_only)

    def key(self, facts: dict) -> str:
        """One character per test: 1 or 0 on the case's value, '-' for an unknown
        field; then '|' and 1 or 0 for the presence of each field the result reads."""
        chars = ["-" if o is None else "1" if o else "0" for o in (outcome(facts) for outcome in self._outcomes)]
        chars.append("|")
        chars.extend("1" if name in facts else "0" for name in self.present_only)
        return "".join(chars)

    def support(self, key: str, run) -> Tuple[int, ...]:
        """The positions of `key` that the run of its case depended on."""
        return self.reader.support(key, run)


def _outcome(test: conditions.Test):
    """The test on a case's facts: True, False, or None for an unknown field."""
    name, holds = test.name, test.holds
    if test.op == "known":
        wanted = test.operand
        return lambda facts: (name in facts) == wanted
    return lambda facts: holds(facts[name]) if name in facts else None


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

    __slots__ = ("status", "parts", "warnings", "trace", "undecided", "waiting", "entry")
    entry: tuple  # where the cache keeps it: (engine, positions, characters), set by SituationCache.put

    def __init__(self, run, shared: dict):
        r = run.result
        trace = [
            dict(e, matched=[dict(m, value=None) if m["fact"] == "Finding" else m for m in e["matched"]])
            for e in r.trace
        ]
        dose = None if r.dose is None else dict(r.dose, total_g=None, infusion_g=None)  # the grams are the case's own
        self.status = r.status
        self.parts = _shared(tuple(_interned(part, shared) for part in (r.ivig, dose, r.missing, run.derived)), shared)
        self.warnings = _shared(tuple(_interned(w, shared) for w in r.warnings), shared)
        self.trace = _shared(tuple(_interned(e, shared) for e in trace), shared)
        self.undecided = tuple(run.undecided)
        self.waiting = _shared(run.waiting, shared)

    def __getstate__(self):
        """What travels to another worker (SituationCache.adopt): the undecided rules by id
        (the rule base's own objects stay where they are), not the entry."""
        undecided = tuple(rule.id for rule in self.undecided)
        return self.status, self.parts, self.warnings, self.trace, undecided, self.waiting

    def __setstate__(self, state):
        self.status, self.parts, self.warnings, self.trace, self.undecided, self.waiting = state

    def adopted(self, shared: dict, rules: Dict[str, object]) -> "Situation":
        """This situation come from another process, made one of this process's: its undecided
        rules this rule base's (`rules`: by id), its parts shared with equal ones in `shared`."""
        self.undecided = tuple(rules[rule_id] for rule_id in self.undecided)
        self.parts = _shared(tuple(_shared(p, shared) for p in self.parts), shared)
        self.warnings = _shared(tuple(_shared(w, shared) for w in self.warnings), shared)
        self.trace = _shared(tuple(_shared(e, shared) for e in self.trace), shared)
        self.waiting = _shared(self.waiting, shared)
        return self

    def replay(self, case) -> Run:
        """The run of this situation for `case`: fresh objects, the case's own values."""
        facts = case.facts
        ivig, dose, missing, derived = map(loads, self.parts)
        warnings, trace = [loads(w) for w in self.warnings], [loads(e) for e in self.trace]
        if dose is not None:
            dose.update(patient_grams(dose, facts.get("weight_kg")))
        for entry in trace:
            for fact in entry["matched"]:
                if fact["fact"] == "Finding":
                    fact["value"] = plain(facts[fact["name"]])
        fired = list(dict.fromkeys(entry["rule"] for entry in trace))  # as the run lists them: first firing first
        result = Result(
            id=case.id,
            status=self.status,
            ivig=ivig,
            dose=dose,
            warnings=warnings,
            trace=trace,
            missing=missing,
            source=case.source,
            line=case.line,
        )
        return Run(case, result, derived, fired, list(self.undecided), self.waiting)


def _interned(value, shared: dict) -> bytes:
    """The value pickled; an equal pickle already in `shared` is that one, shared.
    (Only what a run of ours built is pickled, and only here: nothing read from
    a file is ever unpickled.)"""
    return _shared(dumps(value, HIGHEST_PROTOCOL), shared)


def _shared(value, shared: dict):
    """An equal value already in `shared`, or this one, put there."""
    return shared.setdefault(value, value)


class _Shape:
    """The situations of one engine stored under one set of key positions."""

    __slots__ = ("positions", "project", "table")

    def __init__(self, positions: Tuple[int, ...]):
        self.positions, self.project = positions, projector(positions)
        self.table: Dict[str, Situation] = {}  # the key's characters there -> the situation


class SituationCache:
    """The most recently used situations, at most `maxsize` of them, each under its support.

    A situation is found by its support: the cache tries each set of positions
    stored situations of the case's engine depend on, most used first, and
    takes a situation whose characters there are the case's. Any one found is
    right (core/cache/support.py).
    """

    def __init__(self, maxsize: int = DEFAULT_SIZE):
        self.maxsize = maxsize
        self.hits = self.misses = 0
        self._entries: OrderedDict[tuple, Situation] = OrderedDict()  # (engine, positions, chars) -> situation
        self._shapes: Dict[object, List[_Shape]] = {}  # engine -> its shapes, most used first
        self._shape_of: Dict[tuple, _Shape] = {}  # (engine, positions) -> that shape
        self.shared: dict = {}  # the interned parts of the situations (see Situation)
        self.learnt: Optional[list] = None  # a list: what `store` kept is also put here, for `take_learnt`

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key) -> Optional[Situation]:
        """The situation of `key` = (engine, the case's key), or None (a miss)."""
        entry, situation = self._search(key)
        if situation is None:
            self.misses += 1
            return None
        self.hits += 1
        self._entries.move_to_end(entry)
        return situation

    def _search(self, key):
        engine, chars = key
        shapes = self._shapes.get(engine, [])
        for i, shape in enumerate(shapes):
            part = shape.project(chars)
            situation = shape.table.get(part)
            if situation is not None:
                if i:  # one step towards the front: the shapes most used are tried first
                    shapes[i - 1], shapes[i] = shape, shapes[i - 1]
                return situation.entry, situation
        return None, None

    def worth_storing(self) -> bool:
        """Whether to store the situation just missed. Reading a run's support and
        freezing it cost a few hundredths of the run, but a batch that never
        repeats would fill the cache with situations never seen again: there (under 5% hits after 512 cases)
        only 1 miss in SAMPLE_WHEN_IDLE is stored, so the cache costs little and
        still learns if the batch starts to repeat."""
        looked = self.hits + self.misses
        if looked < 512 or self.hits * 20 >= looked:
            return True
        return self.misses % SAMPLE_WHEN_IDLE == 0

    def store(self, key, run, keyer: Keyer):
        """Keep a run under its support (read by `keyer`), if `worth_storing`;
        frozen, so that the caller keeps its own Result to change."""
        if self.worth_storing():
            self._bound_shared()
            positions, situation = keyer.support(key[1], run), Situation(run, self.shared)
            self.put(key, positions, situation)
            if self.learnt is not None:
                self.learnt.append((key, positions, situation))

    def share_learning(self) -> None:
        """From now on, remember what `store` keeps, for `take_learnt` (a pool's worker does)."""
        self.learnt = []

    def take_learnt(self) -> bytes:
        """The situations stored since the last call, pickled for another process's `adopt`
        (nothing unless `share_learning` was called)."""
        if not self.learnt:
            return b""
        learnt, self.learnt = self.learnt, []
        return dumps(learnt, HIGHEST_PROTOCOL)

    def adopt(self, learnt: bytes, rules: Dict[str, object]) -> None:
        """Keep the situations another worker of the same batch learnt (`take_learnt`).

        Any situation stored under a support is right for every case that agrees
        there, whichever process ran it (core/cache/support.py), so a situation is
        run once per batch rather than once per worker. The pickle is one our own
        workers made of their own runs, handed on by the batch that started
        them; nothing read from a file is ever unpickled. `rules`: the rule
        base's rules by id (both processes load the same rule base)."""
        for key, positions, situation in loads(learnt) if learnt else ():
            engine, chars = key
            shape = self._shape_of.get((engine, positions))
            if shape is None or shape.project(chars) not in shape.table:
                self._bound_shared()
                self.put(key, positions, situation.adopted(self.shared, rules))

    def _bound_shared(self) -> None:
        if len(self.shared) > SHARED_PER_SITUATION * self.maxsize:
            self.shared.clear()

    def put(self, key, positions: Tuple[int, ...], situation: Situation):
        """Keep `situation` for every case whose key agrees with `key` at `positions`."""
        engine, chars = key
        shape = self._shape_of.get((engine, positions))
        if shape is None:
            shape = self._shape_of[engine, positions] = _Shape(positions)
            self._shapes.setdefault(engine, []).append(shape)
        part = shape.project(chars)
        shape.table[part] = situation
        entry = situation.entry = (engine, shape.positions, part)  # what a hit finds to move to the end
        self._entries[entry] = situation
        self._entries.move_to_end(entry)
        if len(self._entries) > self.maxsize:
            (engine, positions, part), _ = self._entries.popitem(last=False)
            shape = self._shape_of[engine, positions]
            del shape.table[part]
            if not shape.table:
                del self._shape_of[engine, positions]
                self._shapes[engine].remove(shape)
