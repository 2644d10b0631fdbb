"""Deciding once per clinical situation: a bounded cache of runs.

What the rules conclude for a case depends only on what they can tell apart:
for each case field some rule of the case's engine tests, whether the field is
known and, if it is, which of those tests its value passes. Age 70 and age 80
are one situation when the only age test is ``age >= 65``. Two cases in one
situation fire the same rules in the same order, so the second case's result
is the first one's, with what is the case's own read from the case: its id,
source and line, the values of its findings in the trace, and the grams of
the dose (the weight is not a test, but its presence is part of the key, as
`missing` names it when a dose is given).

The key is built from the engine's own rules (`Keyer`), so it changes with
them and can never go stale; the cache belongs to one `Advisor` and one rule
base. It is bounded (least recently used out), so memory stays flat whatever
the size of the input.
"""

import copy
from collections import OrderedDict
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from . import conditions
from .words import plain

DEFAULT_SIZE = 4096  # situations kept per process; see bench/ for the memory this takes

# Case fields whose value reaches the result although no rule tests it: their
# presence is part of the key. (Their values are re-read from each case.)
READ_BY_RESULT = ("weight_kg",)


class Keyer:
    """The situation of a case, for one engine: a key from that engine's tests."""

    def __init__(self, rules, fields):
        tests: Dict[str, Dict[tuple, conditions.Test]] = {}
        for rule in rules:
            for test in conditions.tests(rule.when):
                if test.name not in fields:
                    continue  # a derived fact: decided by the rules from the fields
                same = tests.setdefault(test.name, {})
                if test.op != "known":  # `known` asks only whether the field is there
                    same.setdefault((test.op, test.operand), test)
        present_only = [name for name in READ_BY_RESULT if name in fields and name not in tests]
        # field order is the schema's, so that the key never depends on the order rules are written
        self.fields: Tuple[Tuple[str, tuple], ...] = tuple(
            (name, tuple(t.holds for t in tests[name].values())) for name in fields if name in tests)
        self.present_only: Tuple[str, ...] = tuple(present_only)

    @property
    def names(self) -> frozenset:
        """Every case field the key reads."""
        return frozenset(name for name, _ in self.fields) | frozenset(self.present_only)

    def key(self, facts: dict) -> tuple:
        """For each tested field: None when unknown, else the verdict of each test on its value."""
        out = []
        for name, holds in self.fields:
            value = facts.get(name, _ABSENT)
            out.append(None if value is _ABSENT else tuple(h(value) for h in holds))
        out.extend(name in facts for name in self.present_only)
        return tuple(out)


_ABSENT = object()


@dataclass
class Situation:
    """What a run concluded, with the parts that are the case's own left to fill in."""
    status: str
    ivig: Optional[dict]
    dose: Optional[dict]
    warnings: List[dict]
    trace: List[dict]
    missing: List[str]
    derived: Dict[str, list]
    fired: List[str]
    undecided: list

    @classmethod
    def of(cls, run) -> "Situation":
        """A copy of what the run concluded: the run's own Result goes to its
        caller, who may change it."""
        r = run.result
        kept = copy.deepcopy((r.ivig, r.dose, r.warnings, r.trace, r.missing, run.derived))
        return cls(r.status, *kept[:5], kept[5], list(run.fired), list(run.undecided))

    def replay(self, case, result_type, run_type):
        """The run of this situation for `case`: fresh objects, the case's own values."""
        facts = case.facts
        dose = None
        if self.dose is not None:
            weight = facts.get("weight_kg")
            dose = dict(self.dose, total_g=round(self.dose["total_g_per_kg"] * weight, 1) if weight is not None
                        else None)
        trace = [{"rule": e["rule"], "layer": e["layer"],
                  "matched": [dict(m, value=plain(facts[m["name"]])) if m["fact"] == "Finding" else dict(m)
                              for m in e["matched"]],
                  "asserted": [dict(a) for a in e["asserted"]]} for e in self.trace]
        result = result_type(id=case.id, status=self.status, ivig=dict(self.ivig) if self.ivig else None,
                             dose=dose, warnings=[dict(w) for w in self.warnings], trace=trace,
                             missing=list(self.missing), source=case.source, line=case.line)
        derived = {name: list(values) for name, values in self.derived.items()}
        return run_type(case, result, derived, list(self.fired), list(self.undecided))


class SituationCache:
    """The most recently used situations, at most `maxsize` of them."""

    def __init__(self, maxsize: int = DEFAULT_SIZE):
        self.maxsize = maxsize
        self.hits = self.misses = 0
        self._entries: "OrderedDict[tuple, Situation]" = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: tuple) -> Optional[Situation]:
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        self.hits += 1
        self._entries.move_to_end(key)
        return entry

    def put(self, key: tuple, situation: Situation):
        self._entries[key] = situation
        if len(self._entries) > self.maxsize:
            self._entries.popitem(last=False)
