"""The space of values the check walks: each field's cut domain, the rules of
each layer in groups with their conditions compiled, where tests cut numbers
(`FactSpace`), and what the walk of one diagnosis reads of each layer
(`Plan`); a state of the walk is a part of that space (`State`)."""

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from ...core import conditions
from ...core.analysis import domains, live_rules
from ...core.rulebase import RuleBase, RuleSpec
from ...core.schema import CaseSchema

UNSET = object()  # a field not split on yet (None is "split on, and unknown")


@dataclass
class State:
    """A partial case of the walk, and how many full combinations it stands for."""

    assign: dict  # field -> value (None: unknown); only what later layers can see
    derived: dict  # derived name -> tuple of values
    count: int  # full combinations this state stands for
    witness: dict  # one full history: every field assigned so far
    stance_layer: Optional[str] = None
    dose: Optional[Tuple[str, tuple]] = None  # (rule id, dose) of the first dose
    stance_rule: Optional[str] = None  # the rule that set the stance (not part of the key)
    warned: tuple = ()  # (code, severity, rule) given so far, for codes rules give at several severities

    def key(self):
        return (
            tuple(sorted(self.assign.items(), key=lambda kv: kv[0])),
            tuple(sorted(self.derived.items())),
            self.stance_layer,
            self.dose[1] if self.dose else None,
            tuple(sorted({w[:2] for w in self.warned})),
        )


@dataclass
class Group:
    """Rules of one layer that share fields or derived facts, and what they read."""

    index: int
    rules: List[RuleSpec]
    fields: Tuple[str, ...]
    derived: Tuple[str, ...]  # derived facts from earlier layers that they test
    key: tuple = ()  # the ids of its rules: groups of the same rules share outcomes across diagnoses


def groups_of(rules: List[RuleSpec], fields) -> List[Group]:
    """Split a layer's rules into groups that share no field to split on and no
    fact derived in the layer (the diagnosis and earlier facts are fixed inputs)."""
    made_here = {n for r in rules for n in r.derives}
    names = {
        r.id: {
            t.name
            for t in conditions.tests(r.when)
            if t.name != "diagnosis" and (t.name in fields or t.name in made_here)
        }
        | set(r.derives)
        for r in rules
    }
    groups: List[List[RuleSpec]] = []
    for rule in rules:
        joined = [g for g in groups if any(names[r.id] & names[rule.id] for r in g)]
        merged = [r for g in joined for r in g] + [rule]
        groups = [g for g in groups if g not in joined] + [merged]
    out = []
    for index, members in enumerate(groups):
        members.sort(key=lambda r: -r.salience)
        tested = {t.name for r in members for t in conditions.tests(r.when)}
        made = {n for r in members for n in r.derives}
        out.append(
            Group(
                index,
                members,
                tuple(sorted(n for n in tested if n in fields)),
                tuple(sorted(n for n in tested if n not in fields and n not in made)),
                tuple(r.id for r in members),
            )
        )
    return out


def several_severities(rules: List[RuleSpec]) -> set:
    """The warning codes that rules give at more than one severity: only their
    warnings can conflict (`checks.CaseChecks.severity_conflicts`)."""
    severities: Dict[str, set] = {}
    for rule in rules:
        for warning in rule.warnings:
            severities.setdefault(warning["code"], set()).add(warning["severity"])
    return {code for code, found in severities.items() if len(found) > 1}


def compile_condition(cond):
    """`conditions.evaluate` for one condition, as a function of `lookup` (the walk's hot loop)."""
    unknown = conditions.UNKNOWN
    if isinstance(cond, conditions.Test):
        name, holds = cond.name, cond.holds
        if cond.op == "known":
            wanted = cond.operand
            return lambda lookup: None if (values := lookup(name)) is unknown else bool(values) == wanted
        return lambda lookup: None if (values := lookup(name)) is unknown else any(holds(v) for v in values)
    if isinstance(cond, conditions.Not):
        # as the compiled rules read it: the negation pushed down to the tests
        # (`not x == 1` is x known and != 1), not Kleene's not of the inner verdict
        return compile_condition(conditions.negate(cond.item))
    items = [compile_condition(c) for c in cond.items]
    decisive = isinstance(cond, conditions.AnyOf)  # the verdict that decides: True for any, False for all

    def evaluate(lookup):
        undecided = False
        for item in items:
            verdict = item(lookup)
            if verdict is None:
                undecided = True
            elif verdict == decisive:
                return decisive
        return None if undecided else not decisive

    return evaluate


def verdict(test: conditions.Test, value) -> bool:
    """A test's verdict on one value of a field (None: unknown), as `conditions.evaluate` gives it."""
    if test.op == "known":
        return (value is not None) == test.operand
    return value is not None and test.holds(value)


def constrained_fields(schema: CaseSchema) -> set:
    """The fields the schema's constraints test."""
    return {t.name for w, r, _, _ in schema.constraints for c in (w, r) for t in conditions.tests(c)}


def live_fields(rulebase: RuleBase, diagnosis, domains: Dict[str, list]) -> List[str]:
    """The fields of `domains` tested by the rules that the diagnosis alone does not rule out, in
    the schema's order."""
    names = {
        t.name
        for rule in live_rules(rulebase, diagnosis)
        for t in conditions.tests(rule.when)
        if t.name in domains and t.name != "diagnosis"
    }
    return [n for n in rulebase.schema.fields if n in names]


class FactSpace:
    """The fact space of one rule base, and what the walk reads of its rules:
    each field's cut domain (for one case: its one value), the numbers walked
    as intervals, the fields the schema's constraints test, each layer's rules
    in groups with their tests and compiled conditions, what each layer's
    successors test, and where tests cut a number."""

    def __init__(self, rulebase: RuleBase, fixed: Optional[dict] = None, shared: Optional[Dict[str, list]] = None):
        self.rb = rulebase
        self.schema: CaseSchema = rulebase.schema
        # `shared`: cut domains common to two rule bases, so that their walks' intervals are the same
        # (compare.py); by default each field is cut where this rule base's tests cut it
        self.domains = shared if shared is not None else domains(rulebase)
        if fixed is not None:  # one case: every field takes its one value
            self.domains = {name: [fixed.get(name)] for name in self.domains}
        self.by_layer = {
            l.name: sorted((r for r in rulebase.rules if r.layer == l.name), key=lambda r: -r.salience)
            for l in rulebase.layers
        }
        self.derives = {r.id: r.derives for r in rulebase.rules}
        self.tests = {r.id: tuple(conditions.tests(r.when)) for r in rulebase.rules}
        self.compiled = {r.id: compile_condition(r.when) for r in rulebase.rules}
        self.warns = {r.id: tuple(r.warnings) for r in rulebase.rules}
        self.groups = {name: groups_of(rules, self.schema.fields) for name, rules in self.by_layer.items()}
        self.constrained = constrained_fields(self.schema)
        # numbers are split into intervals of their cut domain (see the package doc); a field a
        # constraint tests keeps its points, since constraints are checked on the witness
        self.numeric = {
            name
            for name in self.domains
            if name in self.schema.fields
            and name not in self.constrained
            and self.schema.fields[name].type in ("number", "integer")
        }
        self.multi_severity = several_severities(rulebase.rules)
        stance_layers = [l.name for l in rulebase.layers if l.sets_stance]
        self.last_stance = stance_layers[-1] if stance_layers else None
        # (a walk's subclass may add names to seen_after, to keep them in the states to the end)
        self.seen_after = self._seen_after()
        self.tested_after = {name: set(seen) for name, seen in self.seen_after.items()}
        self.cut_cache: Dict[tuple, tuple] = {}

    def _seen_after(self) -> Dict[str, set]:
        """What each layer's successors can see: the fields and derived names they test."""
        seen, later_names = {}, set()
        for layer in reversed(self.rb.layers):
            seen[layer.name] = set(later_names)
            for rule in self.by_layer[layer.name]:
                later_names |= {t.name for t in self.tests[rule.id]}
        return seen

    def live_fields(self, diagnosis) -> List[str]:
        """The fields tested by the rules that the diagnosis alone does not rule out."""
        return live_fields(self.rb, diagnosis, self.domains)

    def cuts(self, name, tests) -> tuple:
        """The places in a number's cut domain where one of `tests` changes its verdict,
        in order: place i lies between values i-1 and i; place 1 keeps unknown apart."""
        key = (name, frozenset((t.op, t.operand) for t in tests))
        if key not in self.cut_cache:
            values = self.domains[name]
            places = {1}
            for test in tests:
                verdicts = [verdict(test, v) for v in values]
                places.update(i for i in range(1, len(values)) if verdicts[i] != verdicts[i - 1])
            self.cut_cache[key] = tuple(sorted(p for p in places if 0 < p < len(values)))
        return self.cut_cache[key]

    def group_cuts(self, group: Group, name) -> tuple:
        """Where the tests of a group's rules cut a number."""
        key = (group.key, name)
        if key not in self.cut_cache:
            self.cut_cache[key] = self.cuts(name, [t for r in group.rules for t in self.tests[r.id] if t.name == name])
        return self.cut_cache[key]


class Plan:
    """What the walk of one diagnosis (None: every rule) reads of each layer: its
    live rules in groups, whether each group reads no fact it derives (flat),
    what the layers after it see, and where their tests cut numbers."""

    def __init__(self, space: FactSpace, diagnosis):
        rb = space.rb
        live = {r.id for r in (rb.rules if diagnosis is None else live_rules(rb, diagnosis))}
        self.space = space
        self.groups: Dict[str, List[Group]] = {}
        self.flat: Dict[tuple, bool] = {}
        self.seen: Dict[str, set] = {}  # what the layers after each layer test (and what a subclass keeps)
        self.cells: Dict[str, Dict[str, tuple]] = {}  # where they cut each number
        self.reads: Dict[str, dict] = {}  # of each group's fields, those they read, and a number's cuts
        later_names: set = set()
        later_tests: Dict[str, list] = {}
        for layer in reversed(rb.layers):
            rules = [r for r in space.by_layer[layer.name] if r.id in live]
            self._group(layer.name, rules)
            self._see(layer.name, later_names, later_tests)
            for rule in rules:
                for test in space.tests[rule.id]:
                    later_names.add(test.name)
                    if test.name in space.numeric:
                        later_tests.setdefault(test.name, []).append(test)

    def _group(self, layer_name: str, rules: List[RuleSpec]):
        """A layer's live rules in groups, in the order of the groups of all its rules."""
        space = self.space
        order = {r.id: g.index for g in space.groups[layer_name] for r in g.rules}
        groups = sorted(groups_of(rules, space.schema.fields), key=lambda g: min(order[r.id] for r in g.rules))
        self.groups[layer_name] = [Group(i, g.rules, g.fields, g.derived, g.key) for i, g in enumerate(groups)]
        for g in groups:  # whether no rule of the group reads a fact the group derives
            made = {n for r in g.rules for n in space.derives[r.id]}
            self.flat[g.key] = not any(t.name in made for r in g.rules for t in space.tests[r.id])

    def _see(self, layer_name: str, later_names: set, later_tests: Dict[str, list]):
        """What the layers after this one see, given the names and number tests they read."""
        space = self.space
        extra = space.seen_after[layer_name] - space.tested_after[layer_name]  # kept by a subclass
        self.seen[layer_name] = later_names | extra
        # where later rules can tell numbers apart; a number a subclass keeps is kept as split
        self.cells[layer_name] = {
            name: space.cuts(name, later_tests.get(name, ())) for name in space.numeric if name not in extra
        }
        keep = self.seen[layer_name] | space.constrained  # what of a group's fields later layers read
        self.reads[layer_name] = {
            g.key: tuple(n in keep and self.cells[layer_name].get(n) for n in g.fields) for g in self.groups[layer_name]
        }
