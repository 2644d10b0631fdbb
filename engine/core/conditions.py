"""The condition language shared by rules (`when`) and schema constraints.

A condition is YAML:

- ``{field: value}``: the field is known and equals value;
- ``{field: {op: operand, ...}}`` with op one of ``eq ne in not_in lt le gt ge
  contains excludes known``; several ops (or several fields) in one mapping
  must all hold;
- ``{all: [c, ...]}``, ``{any: [c, ...]}``, ``{not: c}``.

Every test except ``known`` requires the field to be known: a rule never
fires on a missing value, because a missing field is unknown, never false.
``not`` is pushed down to the tests (``not x == 1`` is ``x`` known and
``!= 1``), so it keeps that promise. ``{field: {known: false}}`` is the one
way to ask that a value is absent.

The same tree is compiled onto experta patterns (engine.compiler), evaluated
in three-valued logic for analysis (missing fields, why-not, constraints),
and rendered in plain language for reviewers.
"""

from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, Optional, Tuple, Union

from ..base.errors import SourceError
from ..base.yamlsrc import Located

OPS = ("eq", "ne", "in", "not_in", "lt", "le", "gt", "ge", "contains", "excludes", "known")
NEGATION = {
    "eq": "ne",
    "ne": "eq",
    "in": "not_in",
    "not_in": "in",
    "lt": "ge",
    "ge": "lt",
    "le": "gt",
    "gt": "le",
    "contains": "excludes",
    "excludes": "contains",
}
COMBINATORS = ("all", "any", "not")

# How a condition reads to a person.
OP_WORDS = {
    "eq": "is",
    "ne": "is not",
    "in": "is one of",
    "not_in": "is none of",
    "lt": "<",
    "le": "≤",
    "gt": ">",
    "ge": "≥",
    "contains": "includes",
    "excludes": "does not include",
}


@dataclass(frozen=True)
class Test:
    """One test of one named fact."""

    name: str
    op: str
    operand: Any  # a YAML scalar; a tuple of them (in, not_in); True or False (known)
    line: Optional[int] = None

    @property
    def identity(self) -> tuple:
        """What the test asks, whatever line it was written on: equal for tests written alike."""
        return self.name, self.op, self.operand

    @property
    def operands(self) -> tuple:
        """The values the test names: one, several (in, not_in), none (known)."""
        if self.op == "known":
            return ()
        return self.operand if isinstance(self.operand, tuple) else (self.operand,)

    def holds(self, value) -> bool:
        """Whether a known value passes the test (never called for ``known``)."""
        op, x = self.op, self.operand
        if op == "eq":
            return value == x
        if op == "ne":
            return value != x
        if op == "in":
            return value in x
        if op == "not_in":
            return value not in x
        if op in ("contains", "excludes"):
            # experta's Rete may try this check on another field's fact before
            # checking the name, so a value that is not a list simply fails
            if isinstance(value, (str, bytes)) or not hasattr(value, "__contains__"):
                return False
            return (x in value) == (op == "contains")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        return {"lt": value < x, "le": value <= x, "gt": value > x, "ge": value >= x}[op]


@dataclass(frozen=True)
class AllOf:
    items: Tuple["Condition", ...]
    line: Optional[int] = None


@dataclass(frozen=True)
class AnyOf:
    items: Tuple["Condition", ...]
    line: Optional[int] = None


@dataclass(frozen=True)
class Not:
    item: "Condition"
    line: Optional[int] = None


Condition = Union[Test, AllOf, AnyOf, Not]


def parse(data, source: str, line: Optional[int] = None) -> Condition:
    """Turn the YAML form of a condition into a tree; raise SourceError."""
    line = getattr(data, "line", line)
    if not isinstance(data, dict) or not data:
        raise SourceError("a condition must be a non-empty mapping", source, line)
    located = data if isinstance(data, Located) else None

    def at(key):
        return located.line_of(key) if located is not None else line

    if len(data) == 1:
        ((key, value),) = data.items()
        if key in ("all", "any"):
            if not isinstance(value, list) or not value:
                raise SourceError(f"'{key}' takes a non-empty list of conditions", source, at(key))
            items = tuple(parse(item, source, at(key)) for item in value)
            return (AllOf if key == "all" else AnyOf)(items, at(key))
        if key == "not":
            return Not(parse(value, source, at(key)), at(key))
    tests = []
    for name, spec in data.items():
        if name in COMBINATORS:
            raise SourceError(f"'{name}' must stand alone in its mapping", source, at(name))
        if not isinstance(name, str):
            raise SourceError(f"a fact name must be text, not {name!r}", source, at(name))
        if isinstance(spec, dict):
            if not spec:
                raise SourceError(f"no test given for '{name}'", source, at(name))
            for op, operand in spec.items():
                if op not in OPS:
                    raise SourceError(
                        f"unknown test '{op}' for '{name}' (tests: {', '.join(OPS)})", source, at(name), name
                    )
                tests.append(Test(name, op, _operand(op, operand, name, source, at(name)), at(name)))
        elif isinstance(spec, list):
            raise SourceError(f"'{name}': write a list of values as {{in: [...]}}", source, at(name), name)
        else:
            tests.append(Test(name, "eq", spec, at(name)))
    return tests[0] if len(tests) == 1 else AllOf(tuple(tests), line)


def _operand(op, operand, name, source, line):
    if op in ("in", "not_in"):
        if not isinstance(operand, list) or not operand:
            raise SourceError(f"'{op}' takes a non-empty list", source, line, name)
        return tuple(operand)
    if op in ("lt", "le", "gt", "ge"):
        if isinstance(operand, bool) or not isinstance(operand, (int, float)):
            raise SourceError(f"'{op}' takes a number", source, line, name)
    if op == "known" and not isinstance(operand, bool):
        raise SourceError("'known' takes true or false", source, line, name)
    if isinstance(operand, (list, dict)):
        raise SourceError(f"'{op}' takes a single value", source, line, name)
    return operand


def negate(cond: Condition) -> Condition:
    """The negation of a condition, with `not` pushed down to the tests."""
    if isinstance(cond, Test):
        if cond.op == "known":
            return Test(cond.name, "known", not cond.operand, cond.line)
        return Test(cond.name, NEGATION[cond.op], cond.operand, cond.line)
    if isinstance(cond, AllOf):
        return AnyOf(tuple(negate(c) for c in cond.items), cond.line)
    if isinstance(cond, AnyOf):
        return AllOf(tuple(negate(c) for c in cond.items), cond.line)
    return normal(cond.item)


def normal(cond: Condition) -> Condition:
    """Negation normal form: no `Not` nodes left, only tests under all/any."""
    if isinstance(cond, Not):
        return negate(cond.item)
    if isinstance(cond, AllOf):
        return AllOf(tuple(normal(c) for c in cond.items), cond.line)
    if isinstance(cond, AnyOf):
        return AnyOf(tuple(normal(c) for c in cond.items), cond.line)
    return cond


def identity(cond: Condition) -> tuple:
    """What a condition asks, whatever lines it was written on: equal for conditions written alike
    (Test.identity, for a whole condition)."""
    if isinstance(cond, Test):
        return cond.identity
    if isinstance(cond, Not):
        return ("not", identity(cond.item))
    return (type(cond).__name__, tuple(identity(c) for c in cond.items))


def tests(cond: Condition) -> Iterator[Test]:
    """Every test in a condition, in reading order."""
    if isinstance(cond, Test):
        yield cond
    elif isinstance(cond, Not):
        yield from tests(cond.item)
    else:
        for item in cond.items:
            yield from tests(item)


# Three-valued evaluation, for the analysis (what a case could still decide), not for
# evaluating a case: see `truth`. `lookup(name)` gives UNKNOWN, or the list of the values the
# name has (an empty list: known to be absent).
UNKNOWN = object()


def truth(cond: Condition, lookup: Callable) -> Optional[bool]:
    """True, False, or None (cannot be decided yet) in Kleene's logic.

    It serves the analysis, not evaluation: what the rules could still decide
    once a missing field is known (analysis.py: `missing`, the interview,
    why-not). The analysis's lookup reads a field the case lacks as UNKNOWN,
    so ``{x: {known: false}}`` on a missing x is None (undecided: x may yet
    be found out), where the engine, which reads the case as it is, fires
    the rule (x is absent, which is what the test asks). To ask what the
    engine's tests make of a case, give a lookup that reads a missing field
    as absent (``[]``); tests/core/test_conditions.py pins both readings.

    A test on a fact with several values holds when one of them passes it, as
    a rule's pattern matches any one fact. `not` is read pushed down to the
    tests, as the compiled rules read it (``not x == 1``: x known and != 1):
    over a case field that is Kleene's not; over a derived fact with several
    values, or none, it is not (``not x == 1`` holds for x = [1, 2], and not
    for x absent). The lookup must answer the same for a name every time it
    is asked: the items of an `all` or an `any` after the one that decides
    it are not read."""
    return _truth_of(cond)(lookup)


# Each condition's three-valued evaluation as a closure, made once: the analysis asks it of every
# rule not fired, for every case. By the condition's identity (a rule's condition lives as long as
# its rule base), the condition kept with it so that its id is not reused while it is kept.
_TRUTHS: Dict[int, tuple] = {}
TRUTHS_KEPT = 16384  # conditions: those of a few rule bases, and of the audit's walks


def _truth_of(cond: Condition) -> Callable:
    kept = _TRUTHS.get(id(cond))
    if kept is not None and kept[0] is cond:
        return kept[1]
    if len(_TRUTHS) >= TRUTHS_KEPT:
        _TRUTHS.clear()
    made = _truth_function(cond)
    _TRUTHS[id(cond)] = (cond, made)
    return made


def _truth_function(cond: Condition) -> Callable:
    """`truth(cond, lookup)` as a function of the lookup (see `truth`)."""
    if isinstance(cond, Test):
        name, holds, operand = cond.name, cond.holds, cond.operand
        if cond.op == "known":

            def known(lookup):
                values = lookup(name)
                return None if values is UNKNOWN else bool(values) == operand

            return known

        def test(lookup):
            values = lookup(name)
            if values is UNKNOWN:
                return None
            for value in values:
                if holds(value):
                    return True
            return False

        return test
    if isinstance(cond, Not):
        return _truth_function(negate(cond.item))
    # Kleene: one False decides an `all`, one True an `any`; the rest need not be read
    items = tuple(_truth_function(item) for item in cond.items)
    decisive = isinstance(cond, AnyOf)

    def junction(lookup):
        undecided = False
        for item in items:
            result = item(lookup)
            if result is decisive:
                return decisive
            undecided = undecided or result is None
        return None if undecided else not decisive

    return junction


def describe(
    cond: Condition,
    label: Callable = lambda name, value: str(value),
    name_label: Callable = lambda name: name.replace("_", " "),
) -> str:
    """A plain-language reading of a condition."""
    if isinstance(cond, Test):
        name = name_label(cond.name)
        if cond.op == "known":
            return f"{name} is {'known' if cond.operand else 'not known'}"
        if isinstance(cond.operand, tuple):
            operand = ", ".join(label(cond.name, v) for v in cond.operand)
        else:
            operand = label(cond.name, cond.operand)
        return f"{name} {OP_WORDS[cond.op]} {operand}"
    if isinstance(cond, Not):
        return f"NOT ({describe(cond.item, label, name_label)})"
    joiner = " AND " if isinstance(cond, AllOf) else " OR "
    parts = []
    for item in cond.items:
        text = describe(item, label, name_label)
        parts.append(f"({text})" if isinstance(item, (AllOf, AnyOf)) and len(item.items) > 1 else text)
    return joiner.join(parts)
