"""Compiling a RuleBase onto experta: one Rule per rule spec, on one engine class.

Working memory holds two kinds of fact:

- ``Given(name=..., value=...)``: one per known field of the case;
- ``Derived(name=..., value=..., layer=...)``: asserted by rules (derived
  classifications, the stance, the dose, warnings).

Each condition test becomes a pattern on one of them, bound to a name so
that the right-hand side learns which facts the activation matched: the
trace is read from experta's activations, not reconstructed. The RHS of
every rule is the same generic function; what it asserts is data.
"""

from dataclasses import dataclass, field
from operator import itemgetter
from typing import Dict, List, Optional, Tuple

from . import conditions
from ._experta import AND, AS, NOT, OR, Fact, KnowledgeEngine, L, P, ReteMatcher, Rule, new_fact, trim_overheads
from .matcher import CompiledMatcher
from .rulebase import STANCE, RuleBase, RuleSpec
from .words import dose_line


class Given(Fact):
    """A known field of the case."""


class Derived(Fact):
    """A fact a rule asserted."""


# A fact's kind as a result's trace names it: the JSON contract calls a given fact a "Finding"
# (its name before the code called it Given, kept so that readers of results do not break).
TRACE_KIND = {Given: "Finding", Derived: "Derived"}


@dataclass
class Firing:
    """One rule firing: what it matched and what it asserted."""

    rule: RuleSpec
    matched: List[Fact]
    asserted: List[dict] = field(default_factory=list)


class AdvisorEngine(KnowledgeEngine):
    """The knowledge engine; subclasses carry the compiled rules."""

    rulebase: Optional[RuleBase] = None  # each compiled class's own (compile_rulebase)
    rules: List[RuleSpec] = []  # the rules compiled in, in rule-base order
    experta_rules: tuple = ()  # their experta Rules, in the same order
    matching_key: tuple = ()  # what the compiled matcher's code depends on (matching_key)
    tested: frozenset = frozenset()  # the names they test

    def __init__(self):
        super().__init__()
        trim_overheads(self)

    def firings_for(self, facts: dict, order) -> List[Firing]:
        """Run the rules over a case's facts; return the firings in order."""
        self.reset()
        self.firings: List[Firing] = []
        self.asserted_by: Dict[int, int] = {}  # a derived fact's id -> the index of the firing that asserted it
        # In schema order, so fact ids never depend on the input's order; only
        # the fields some rule here tests; and in one declare, so the Rete
        # settles once instead of once per fact.
        findings = [new_fact(Given, name=name, value=facts[name]) for name in self._tested_in(order) if name in facts]
        if findings:
            self.declare(*findings)
        self.run()
        return self.firings

    def _tested_in(self, order) -> list:
        """The names of `order` some rule here tests, in its order (kept for the last order asked)."""
        if getattr(self, "_order", None) != order:
            self._order, self._tested_order = list(order), [name for name in order if name in self.tested]
        return self._tested_order

    def fire(self, rule: RuleSpec, bound: dict, derives: Tuple[tuple, ...], told: Tuple[dict, ...]):
        """A rule fired on the facts `bound`: note the firing, declare what it `derives` (name,
        value pairs) and note what it asserted, those and what it `told` (its dose and warnings:
        `asserted`)."""
        matched = sorted((f for f in bound.values() if isinstance(f, Fact)), key=_FACT_ID)
        firing = Firing(rule, matched)
        self.firings.append(firing)
        number = len(self.firings) - 1
        for name, value in derives:
            declared = self.declare(new_fact(Derived, name=name, value=value, layer=rule.layer))
            if declared is not None:
                self.asserted_by[declared["__factid__"]] = number
        firing.asserted = [{"name": name, "value": value} for name, value in derives] + [dict(t) for t in told]


_FACT_ID = itemgetter("__factid__")


def asserted(spec: RuleSpec) -> Tuple[Tuple[tuple, ...], Tuple[dict, ...]]:
    """What a rule asserts when it fires: its derived facts (name, value pairs, the stance among
    them) and the rest of what its firing notes: its dose, as a line, and its warnings' codes."""
    told = []
    if "dose" in spec.then:
        told.append({"name": "dose", "value": dose_line(spec.then["dose"])})
    told += [{"name": "warning", "value": warning["code"]} for warning in spec.warnings]
    return tuple(spec.derives.items()), tuple(told)


def _pattern(test: conditions.Test, cls, binding):
    if test.op == "known":
        pattern = cls(name=test.name)
        return binding << pattern if test.operand else NOT(pattern)
    if test.op == "eq":
        return binding << cls(name=test.name, value=L(test.operand))
    return binding << cls(name=test.name, value=P(test.holds))


def _compile_condition(cond, kind_of, counter):
    if isinstance(cond, conditions.Test):
        counter.append(None)
        binding = getattr(AS, f"f{len(counter)}")
        return _pattern(cond, kind_of(cond.name), binding)
    parts = [_compile_condition(c, kind_of, counter) for c in cond.items]
    if len(parts) == 1:
        return parts[0]
    return AND(*parts) if isinstance(cond, conditions.AllOf) else OR(*parts)


def compile_condition(when: conditions.Condition, kind_of):
    """The experta pattern of a condition (in negation normal form), each test bound to a name so
    that a firing learns which facts it matched; `kind_of(name)`: Given or Derived."""
    return _compile_condition(conditions.normal(when), kind_of, [])


def fact_kind(rulebase: RuleBase):
    """The kind of fact a name is in working memory: Given for a case field, Derived otherwise."""
    fields = rulebase.schema.fields
    return lambda name: Given if name in fields else Derived


def compile_rule(spec: RuleSpec, rulebase: RuleBase) -> Rule:
    """One experta Rule for one rule spec."""
    patterns = [compile_condition(spec.when, fact_kind(rulebase))]
    layer = rulebase.layer(spec.layer)
    if layer.sets_stance:
        # A stance set by an earlier layer is final: later layers only fill
        # the gap. Rules of one layer do not hide each other, so that a
        # conflict inside a layer shows in the result instead of vanishing.
        earlier = tuple(l.name for l in rulebase.layers if l.sets_stance and l.index < layer.index)
        if earlier:
            patterns.append(NOT(Derived(name=STANCE, layer=P(lambda v, e=earlier: v in e))))

    derives, told = asserted(spec)  # once, not at every firing

    def rhs(engine, **bound):
        engine.fire(spec, bound, derives, told)

    rhs.__name__ = spec.id
    return Rule(*patterns, salience=spec.salience)(rhs)


# The matchers an engine can be built with: the compiled one (core/matcher.py), and experta's
# own Rete, the reference it is proven equal to (tests/core/test_matcher.py).
MATCHERS = {"compiled": CompiledMatcher, "rete": ReteMatcher}
DEFAULT_MATCHER = "compiled"  # what the Advisor uses unless told


def matcher_class(name: str) -> type:
    """The matcher class of a name in MATCHERS; ValueError for any other."""
    if name not in MATCHERS:
        raise ValueError(f"unknown matcher {name!r} (matchers: {', '.join(MATCHERS)})")
    return MATCHERS[name]


def matching_key(rulebase: RuleBase, rules) -> tuple:
    """All that the patterns of `rules` are compiled from: the rule base's hash and, since a rule
    base built in memory has none of its own, each rule's condition and layer, the layers and
    which names are case fields. Engines of equal keys share their compiled matcher."""
    fields = rulebase.schema.fields
    return (
        rulebase.digest,
        tuple((r.id, r.layer, conditions.identity(r.when)) for r in rules),
        tuple((l.name, l.sets_stance, l.index) for l in rulebase.layers),
        tuple(sorted({t.name for r in rules for t in conditions.tests(r.when) if t.name in fields})),
    )


def compile_rulebase(rulebase: RuleBase, rules=None, matcher: str = "rete") -> type:
    """The engine class holding every rule of `rules` (default: the whole base), matched by
    `matcher` (MATCHERS; experta's own unless asked: the Advisor asks for DEFAULT_MATCHER)."""
    rules = rulebase.rules if rules is None else rules
    compiled = [compile_rule(spec, rulebase) for spec in rules]
    members = {
        "__matcher__": matcher_class(matcher),
        "rulebase": rulebase,
        "rules": list(rules),
        "experta_rules": tuple(compiled),
        "matching_key": matching_key(rulebase, rules),
        "tested": frozenset(t.name for r in rules for t in conditions.tests(r.when)),
    }
    for spec, rule in zip(rules, compiled):
        members["rule_" + spec.id.replace("-", "_")] = rule
    return type("IvigEngine", (AdvisorEngine,), members)
