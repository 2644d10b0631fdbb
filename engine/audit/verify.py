"""Static verification of a rule base, after Drools' Verifier: unreachable,
conflicting, redundant and subsumed rules, and gaps, checked exhaustively.

The fact space is finite once numbers are cut at the thresholds the rules
use (see `domains`): every field a rule tests takes each of its values, or
stays unknown. For each diagnosis the checker walks that space layer by
layer, as the engine fires, and after each layer merges the partial cases
that no later rule can tell apart (they agree on every field and derived
fact a later layer tests). Merging is exact, not sampling: each state
carries how many full combinations it stands for, and the report says how
many combinations were covered and how many distinct states that took.
Inside a layer a field is split into its values only when a still-undecided
rule needs it (MYCIN's "skip a rule whose premise is already false").

Numbers are split into intervals, not points: a group of rules that tests
age at 65 splits it into unknown, below 65 and 65 or more, whatever other
thresholds other rules use; a later group that tests 70 splits the interval
again where it needs to. A state's count is spread evenly over its interval
(each is a run of the cut domain's values), so the counts stay exact, and
its witness holds the interval's first value, which every test so far
treats as it treats the whole interval. Once no later rule of the diagnosis
can tell two intervals apart, they merge. Each diagnosis is walked with
only its live rules (`analysis.live_rules`), so thresholds that one
disease's rules use do not cut the numbers of another.

The walk reads the rules' conditions directly, so it is a second reading of
the engine's semantics (layers in order, each rule at most once, a stance
from an earlier stance layer final); tests/test_audit.py holds it to the
real experta engine on the golden cases and on random cases.
"""

from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass, field
from fractions import Fraction
from itertools import product
from math import prod
from typing import Dict, List, Optional, Tuple

from ..core import conditions
from ..core.analysis import domains, live_rules
from ..core.rulebase import STANCE, RuleBase, RuleSpec
from ..core.schema import CaseSchema


@dataclass
class Finding:
    """One problem found in a rule base, with where it is written."""

    kind: str
    message: str
    file: Optional[str] = None
    line: Optional[int] = None
    rule: Optional[str] = None
    witness: Optional[dict] = None  # one case showing it: field -> value (None: unknown)
    combinations: int = 0  # how many combinations show it

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}: " if self.file else ""
        return f"{where}{self.kind}: {self.message}"

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "message": self.message,
            "file": self.file,
            "line": self.line,
            "rule": self.rule,
            "witness": self.witness,
            "combinations": self.combinations,
        }


@dataclass
class Coverage:
    """What one diagnosis's walk covered."""

    diagnosis: str
    fields: List[str]
    combinations: int
    excluded: int
    states: int
    fired: frozenset = frozenset()  # the rules that fire in some combination


@dataclass
class Verification:
    """The result of `verify`: findings, and how much of the fact space was walked."""

    findings: List[Finding]
    coverage: List[Coverage] = field(default_factory=list)
    reach: Counter = field(default_factory=Counter)  # rule id -> combinations in which it fires

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def combinations(self) -> int:
        return sum(c.combinations for c in self.coverage)

    @property
    def states(self) -> int:
        return sum(c.states for c in self.coverage)

    @property
    def excluded(self) -> int:
        return sum(c.excluded for c in self.coverage)


@dataclass
class _State:
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


_UNSET = object()  # a field not split on yet (None is "split on, and unknown")


@dataclass
class _Group:
    """Rules of one layer that share fields or derived facts, and what they read."""

    index: int
    rules: List[RuleSpec]
    fields: Tuple[str, ...]
    derived: Tuple[str, ...]  # derived facts from earlier layers that they test
    key: tuple = ()  # the ids of its rules: groups of the same rules share outcomes across diagnoses


@dataclass
class _Outcome:
    """One way a group can go: what fired, what was split on, and its share of the state."""

    fired: List[RuleSpec]
    assign: dict  # the fields split on that later layers (or constraints) can see
    witness: dict  # every field split on
    derived: dict  # derived facts added
    weight: Fraction


def _groups(rules: List[RuleSpec], fields) -> List[_Group]:
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
            _Group(
                index,
                members,
                tuple(sorted(n for n in tested if n in fields)),
                tuple(sorted(n for n in tested if n not in fields and n not in made)),
                tuple(r.id for r in members),
            )
        )
    return out


class _Walk:
    """The layer-by-layer walk over one rule base."""

    def __init__(self, rulebase: RuleBase, fixed: Optional[dict] = None):
        self.rb = rulebase
        self.schema: CaseSchema = rulebase.schema
        self.domains = domains(rulebase)
        if fixed is not None:  # one case: every field takes its one value
            self.domains = {name: [fixed.get(name)] for name in self.domains}
        self.findings: Dict[tuple, Finding] = {}
        self.reach: Counter = Counter()
        self.cofire: Dict[str, set] = {}
        self.cofired: set = set()  # the sets of rules seen firing together (cofire is updated once per set)
        self.by_layer = {
            l.name: sorted((r for r in rulebase.rules if r.layer == l.name), key=lambda r: -r.salience)
            for l in rulebase.layers
        }
        self.derives = {r.id: r.derives for r in rulebase.rules}
        self.tests = {r.id: tuple(conditions.tests(r.when)) for r in rulebase.rules}
        self.compiled = {r.id: _compile(r.when) for r in rulebase.rules}
        self.groups = {name: _groups(rules, self.schema.fields) for name, rules in self.by_layer.items()}
        self.constrained = {
            t.name for w, r, _, _ in self.schema.constraints for c in (w, r) for t in conditions.tests(c)
        }
        # numbers are split into intervals of their cut domain (see the module doc); a field a
        # constraint tests keeps its points, since constraints are checked on the witness
        self.numeric = {
            name
            for name in self.domains
            if name in self.schema.fields
            and name not in self.constrained
            and self.schema.fields[name].type in ("number", "integer")
        }
        self.cache: Dict[tuple, list] = {}
        self.cut_cache: Dict[tuple, tuple] = {}
        self.fired_now: set = set()
        self.multi_severity = _several_severities(rulebase.rules)
        self.stance_layers = [l.name for l in rulebase.layers if l.sets_stance]
        self.last_stance = self.stance_layers[-1] if self.stance_layers else None
        # (a subclass may add names to seen_after, to keep them in the states to the end)
        self.seen_after = self._seen_after()
        self.tested_after = {name: set(seen) for name, seen in self.seen_after.items()}
        self._shortcuts()
        self.effects: Dict[tuple, tuple] = {}
        self.fold_memo: Dict[int, tuple] = {}
        self.always_memo: Dict[tuple, tuple] = {}
        self.content_memo: Dict[int, tuple] = {}
        self.search_memo: Dict[tuple, tuple] = {}
        self.warns = {r.id: tuple(r.warnings) for r in rulebase.rules}
        self.flat: Dict[tuple, bool] = {}
        self.prepare(None)

    # the hooks a subclass overrides to watch every combination: folding (see
    # `foldable`) is exact only with the walk's own, and so is replaying the
    # last layer (see `_settle_last`), which also needs the walk's own bookkeeping
    FOLD_HOOKS = (
        "conclude",
        "record_fired",
        "stance_conflicts",
        "dose_conflicts",
        "severity_conflicts",
        "after_layer",
        "stance_gaps",
        "dose_gaps",
        "project",
    )
    REPLAY_HOOKS = ("add", "settle", "_combine", "fold", "_parts")

    def _shortcuts(self):
        """Which of the walk's shortcuts this class may take: folding and replaying
        where it keeps the hooks above, the incremental search (`_search`) where
        it keeps `fire`. A subclass that overrides a hook goes the long way and
        sees every combination (as tests/test_safety_walk.py relies on)."""

        def own(names):
            return all(getattr(type(self), name) is getattr(_Walk, name) for name in names)

        self.folding = own(self.FOLD_HOOKS)
        self.fast_fire = own(("fire",))
        self.replaying = self.folding and own(self.REPLAY_HOOKS)

    def _seen_after(self) -> Dict[str, set]:
        """What each layer's successors can see: the fields and derived names they test."""
        seen, later_names = {}, set()
        for layer in reversed(self.rb.layers):
            seen[layer.name] = set(later_names)
            for rule in self.by_layer[layer.name]:
                later_names |= {t.name for t in self.tests[rule.id]}
        return seen

    def add(self, kind, message, rule: Optional[RuleSpec], state_or_witness, count, key=None):
        witness = state_or_witness.witness if isinstance(state_or_witness, _State) else state_or_witness
        key = key or (kind, rule.id if rule else message)
        finding = self.findings.get(key)
        if finding is None:
            # a gap belongs to no rule: it is placed at the diagnosis in the case schema
            where = (rule.file, rule.line) if rule else (self.schema.source, self.schema.fields["diagnosis"].line)
            self.findings[key] = Finding(kind, message, *where, rule.id if rule else None, dict(witness), count)
        else:
            finding.combinations += count

    def run(self) -> Verification:
        coverage = [self.walk_diagnosis(value) for value in self.schema.fields["diagnosis"].values]
        self.unreachable()
        self.redundant()
        return Verification(sorted(self.findings.values(), key=_order), coverage, self.reach)

    def live_fields(self, diagnosis) -> List[str]:
        """The fields tested by the rules that the diagnosis alone does not rule out."""
        names = {
            t.name
            for rule in live_rules(self.rb, diagnosis)
            for t in conditions.tests(rule.when)
            if t.name in self.domains and t.name != "diagnosis"
        }
        return [n for n in self.schema.fields if n in names]

    def prepare(self, diagnosis):
        """Set up the walk of one diagnosis (None: every rule): its live rules in
        groups, what each layer's successors see, and where they cut numbers."""
        live = {r.id for r in (self.rb.rules if diagnosis is None else live_rules(self.rb, diagnosis))}
        self.fold_memo, self.always_memo = {}, {}  # foldable depends on what this diagnosis's later layers see
        self.live_groups: Dict[str, List[_Group]] = {}
        self.reads_now: Dict[str, dict] = {}
        self.seen_now: Dict[str, set] = {}
        self.cells_now: Dict[str, Dict[str, tuple]] = {}
        later_names: set = set()
        later_tests: Dict[str, list] = {}
        for layer in reversed(self.rb.layers):
            rules = [r for r in self.by_layer[layer.name] if r.id in live]
            order = {r.id: g.index for g in self.groups[layer.name] for r in g.rules}
            groups = sorted(_groups(rules, self.schema.fields), key=lambda g: min(order[r.id] for r in g.rules))
            self.live_groups[layer.name] = [
                _Group(i, g.rules, g.fields, g.derived, g.key) for i, g in enumerate(groups)
            ]
            for g in groups:  # whether no rule of the group reads a fact the group derives
                made = {n for r in g.rules for n in self.derives[r.id]}
                self.flat[g.key] = not any(t.name in made for r in g.rules for t in self.tests[r.id])
            extra = self.seen_after[layer.name] - self.tested_after[layer.name]  # kept by a subclass
            self.seen_now[layer.name] = later_names | extra
            # where later rules can tell numbers apart; a number a subclass keeps is kept as split
            self.cells_now[layer.name] = {
                name: self.cuts(name, later_tests.get(name, ())) for name in self.numeric if name not in extra
            }
            keep = self.seen_now[layer.name] | self.constrained  # what of a group's fields later layers read
            self.reads_now[layer.name] = {
                g.key: tuple(n in keep and self.cells_now[layer.name].get(n) for n in g.fields) for g in groups
            }
            for rule in rules:
                for test in self.tests[rule.id]:
                    later_names.add(test.name)
                    if test.name in self.numeric:
                        later_tests.setdefault(test.name, []).append(test)

    def cuts(self, name, tests) -> tuple:
        """The places in a number's cut domain where one of `tests` changes its verdict,
        in order: place i lies between values i-1 and i; place 1 keeps unknown apart."""
        key = (name, frozenset((t.op, t.operand) for t in tests))
        if key not in self.cut_cache:
            values = self.domains[name]
            places = {1}
            for test in tests:
                verdicts = [_verdict(test, v) for v in values]
                places.update(i for i in range(1, len(values)) if verdicts[i] != verdicts[i - 1])
            self.cut_cache[key] = tuple(sorted(p for p in places if 0 < p < len(values)))
        return self.cut_cache[key]

    def group_cuts(self, group: "_Group", name) -> tuple:
        key = (group.key, name)
        if key not in self.cut_cache:
            self.cut_cache[key] = self.cuts(name, [t for r in group.rules for t in self.tests[r.id] if t.name == name])
        return self.cut_cache[key]

    def walk_diagnosis(self, diagnosis) -> Coverage:
        """Walk one diagnosis's fact space, layer by layer; what it covered."""
        self.prepare(diagnosis)
        names = self.live_fields(diagnosis)
        total = prod(len(self.domains[n]) for n in names)
        self.excluded = 0
        states = [_State({"diagnosis": diagnosis}, {}, total, {"diagnosis": diagnosis})]
        evaluated = 0
        for layer in self.rb.layers:
            evaluated += len(states)
            if layer.index == len(self.rb.layers) - 1 and self.replaying:
                for state in states:  # nothing reads the states after the last layer
                    self._settle_last(state, layer)
                break
            states = self.walk_layer(states, layer)
        fired = frozenset(self.fired_now)
        self.fired_now = set()
        return Coverage(diagnosis, names, total, self.excluded, evaluated, fired)

    def walk_layer(self, states: List[_State], layer) -> List[_State]:
        """Fire a layer over each state, check the gaps it should close, and merge
        the states after it that no later layer can tell apart (their counts
        add up; the first keeps its witness)."""

        def settled(state):
            for after in self.settle(state, layer):
                self.after_layer(after, layer)
                yield self.project(after, layer)

        return _merged(after for state in states for after in settled(state))

    def settle(self, state: _State, layer):
        """Fire one layer over a state; yield one state per way the layer can go.

        The layer's rules fall into independent groups (no field or derived
        fact in common); each group's outcomes are worked out once per input
        it can see, and the layer's outcomes are their product.
        """
        if layer.sets_stance and state.stance_layer not in (None, layer.name):
            yield self.conclude(state, layer, [], dict(state.derived))  # an earlier stance is final
            return
        parts, folded = self._parts(state, layer)
        yield from self._combine(state, layer, parts, folded)
        total, common, _ = self.combined
        if folded and total:
            self.fold(folded, total, common | self._always(folded)[0])

    def _parts(self, state: _State, layer):
        """The outcomes of each group of the layer from this state: those that go
        into the product, and those folded (see `foldable`)."""
        parts = [self.outcomes(state, layer.name, group) for group in self.live_groups[layer.name]]
        if not self.folding:
            return parts, []
        rest, folded = [], []
        for part in parts:
            known = self.fold_memo.get(id(part))  # outcome lists live in self.cache: ids stay theirs
            if known is None:
                known = self.fold_memo[id(part)] = (part, self.foldable(part, layer))
            (folded if known[1] else rest).append(part)
        return rest, folded

    def _always(self, folded):
        """The rules of folded groups that fire in each of their outcomes (they go
        with every combination), their ids, and the first outcomes' witness."""
        key = tuple(map(id, folded))
        if key not in self.always_memo:
            always = [
                r
                for part in folded
                for r in part[0].fired
                if all(any(r is o for o in other.fired) for other in part[1:])
            ]
            first = {}
            for part in folded:
                first.update(part[0].witness)
            self.always_memo[key] = ({r.id for r in always}, always, first, folded)
        memo = self.always_memo[key]
        return memo[0], memo[1], memo[2]

    def _combine(self, state: _State, layer, parts, folded):
        """Conclude each combination of the groups' outcomes that the constraints
        allow; leaves in `self.combined` the count they cover and the rules all
        of them fire."""
        always_ids, always, first = self._always(folded) if folded else ((), (), {})
        total, common = 0, None  # counts of the combinations kept, and the rules all of them fire
        together: Dict[frozenset, None] = {}  # the sets of rules fired (but `always`), in order
        self.combined = (0, None, [])
        for combo in product(*parts):
            numerator, denominator = state.count, 1
            for part in combo:
                numerator *= part.weight.numerator
                denominator *= part.weight.denominator
            count, rest = divmod(numerator, denominator)
            assert not rest, "a state's count splits evenly over a field's values"
            witness = dict(state.witness)
            witness.update(first)
            assign = dict(state.assign)
            derived = {k: list(v) for k, v in state.derived.items()}
            for part in combo:
                witness.update(part.witness)
                assign.update(part.assign)
                for name, values in part.derived.items():
                    derived.setdefault(name, []).extend(v for v in values if v not in derived[name])
            if self.constrained and not self.schema.check_constraints(
                {k: v for k, v in witness.items() if v is not None}
            ):
                self.excluded += count
                continue
            fired = [r for part in combo for r in part.fired]
            total += count
            ids = {r.id for r in fired}
            common = ids if common is None else common & ids
            together[frozenset(ids)] = None
            if folded:
                fired += always
            fired.sort(key=lambda r: -r.salience)
            self.combined = (total, common, list(together))
            yield self.conclude(
                _State(
                    assign,
                    state.derived,
                    count,
                    witness,
                    state.stance_layer,
                    state.dose,
                    state.stance_rule,
                    state.warned,
                ),
                layer,
                fired,
                derived,
            )
        self.combined = (total, common, list(together))

    def _settle_last(self, state: _State, layer):
        """`settle` in the last layer, with the walk's own hooks, where the states
        it yields go nowhere. What a state adds to the findings, the exclusions
        and the reach of the rules of groups that cannot be folded depends only
        on those groups' outcomes and the state's stance, dose, warnings, facts,
        constrained fields and diagnosis: it is worked out once, as a share of
        the state's count, and replayed for the next states that conclude alike.
        The rules of quiet groups (see `_quiet`: no finding reads them) are added
        state by state, as `conclude` and `fold` would. A finding is always made
        by the first state that shows it, so it keeps its witness."""
        if layer.sets_stance and state.stance_layer not in (None, layer.name):
            for after in self.settle(state, layer):
                self.after_layer(after, layer)
            return
        parts, folded = self._parts(state, layer)
        single = [part for part in parts if len(part) == 1 and self._quiet(part, layer)]
        alone = {r.id for part in single for r in part[0].fired}  # rules of quiet groups that go one way
        always = alone | self._always(folded)[0] if folded else alone
        sig = (
            tuple(self._content(part) for part in parts if not any(part is p for p in single)),
            state.stance_layer,
            state.dose,
            state.stance_rule,
            state.warned,
            tuple(sorted(state.derived.items())),
            state.witness.get("diagnosis"),
            tuple(state.witness.get(n) for n in sorted(self.constrained)),
        )
        effect = self.effects.get(sig)
        if effect is None:
            total, common = self._learn_effect(sig, state, layer, parts, folded, alone, always)
        else:
            total, common = self._replay_effect(effect, state.count, alone, always)
        if folded and total:
            self.fold(folded, total, common | self._always(folded)[0])

    def _learn_effect(self, sig, state: _State, layer, parts, folded, alone, always):
        """Settle the last layer over a state the long way, and keep what it added
        (reach but that of `always`, findings' counts, exclusions, the count kept)
        as shares of the state's count, with the rules that fired together but
        `alone`, under `sig`. The count kept and the rules all of it fires."""
        count = state.count
        reach = dict(self.reach)
        found = {k: f.combinations for k, f in self.findings.items()}
        excluded = self.excluded
        for after in self._combine(state, layer, parts, folded):
            self.after_layer(after, layer)
        total, common, together = self.combined
        self.effects[sig] = (
            [
                (k, Fraction(n - reach.get(k, 0), count))
                for k, n in self.reach.items()
                if n != reach.get(k, 0) and k not in always
            ],
            [
                (k, Fraction(f.combinations - found.get(k, 0), count))
                for k, f in self.findings.items()
                if f.combinations != found.get(k, 0)
            ],
            Fraction(self.excluded - excluded, count),
            Fraction(total, count),
            None if common is None else common - alone,
            [ids - alone for ids in together],
        )
        return total, common

    def _replay_effect(self, effect, count: int, alone, always):
        """Add what `_learn_effect` kept, for a state of `count` combinations, with
        the rules of `always` firing in every combination kept, as `conclude`
        would record them. The count kept and the rules all of it fires."""
        reach, found, excluded, share, common, together = effect
        for k, part in reach:
            self.reach[k] += _whole(count * part)
        for k, part in found:
            self.findings[k].combinations += _whole(count * part)
        self.excluded += _whole(count * excluded)
        total = _whole(count * share)
        if total:
            common = common | alone
            for rule_id in always:  # they fire in every combination kept
                self.reach[rule_id] += total
                self.fired_now.add(rule_id)
            for ids in together:  # as `record_fired` records the rules that fire together
                ids = ids | always
                fired = frozenset(ids)
                if fired not in self.cofired:
                    self.cofired.add(fired)
                    for rule_id in ids:
                        self.cofire[rule_id] = self.cofire.get(rule_id, ids) & ids
        return total, common

    def _content(self, part: List["_Outcome"]) -> tuple:
        """What of a group's outcomes `conclude` reads, but the witness."""
        known = self.content_memo.get(id(part))
        if known is None:
            known = self.content_memo[id(part)] = (
                part,
                tuple(
                    (
                        tuple(r.id for r in o.fired),
                        tuple(sorted(o.assign.items())),
                        tuple(sorted((k, tuple(v)) for k, v in o.derived.items())),
                        o.weight,
                    )
                    for o in part
                ),
            )
        return known[1]

    def _quiet(self, part: List["_Outcome"], layer) -> bool:
        """Whether nothing a finding or a later layer reads comes out of a group's
        outcomes: no stance, dose, warning given at several severities, field or
        fact seen later, or field a constraint tests."""
        seen = self.seen_now[layer.name]
        for outcome in part:
            if (
                outcome.assign
                or any(k in seen or k == STANCE for k in outcome.derived)
                or any(k in self.constrained for k in outcome.witness)
            ):
                return False
            for rule in outcome.fired:
                if (
                    "recommend" in rule.then
                    or "dose" in rule.then
                    or any(w["code"] in self.multi_severity for w in self.warns[rule.id])
                ):
                    return False
        return True

    def foldable(self, part: List["_Outcome"], layer) -> bool:
        """Whether a group's outcomes can be left out of the product of the layer's
        groups: they differ, but in nothing that a finding or a later layer reads
        (no stance, dose, warning given at several severities, field or fact seen
        later, or field a constraint tests). Only when `conclude` is the walk's own:
        a subclass that overrides it sees every combination."""
        return len(part) >= 2 and self.folding and self._quiet(part, layer)

    def fold(self, folded: List[List["_Outcome"]], total: int, common: set):
        """What the folded groups add, as if each of their outcomes had gone with
        each combination kept (`total` of them, all firing `common`): reach, and
        the rules that always fire together."""
        for part in folded:
            for outcome in part:
                ids = common | {r.id for r in outcome.fired}
                for rule in outcome.fired:
                    if rule.id in common:
                        continue  # fires in every outcome: it went with every combination
                    count, rest = divmod(total * outcome.weight.numerator, outcome.weight.denominator)
                    assert not rest, "a state's count splits evenly over a field's values"
                    self.reach[rule.id] += count
                    self.fired_now.add(rule.id)
                    self.cofire[rule.id] = self.cofire.get(rule.id, ids) & ids

    def outcomes(self, state: _State, layer_name: str, group: "_Group") -> List["_Outcome"]:
        """The ways one group of a layer's rules can go from this state, merged.

        Outcomes that differ only inside a cell of a number that later layers
        cannot tell apart are merged here already (the first keeps its witness,
        as the merge after the layer would keep it)."""
        assign, derived = state.assign, state.derived
        key = (
            layer_name,
            group.key,
            tuple(assign.get(n, _UNSET) for n in group.fields),
            tuple(derived.get(n) for n in group.derived),
            self.reads_now[layer_name].get(group.key),
        )
        known = self.cache.get(key)
        if known is not None:
            return known
        keep = self.seen_now[layer_name] | self.constrained
        cells = self.cells_now[layer_name]
        merged: Dict[tuple, _Outcome] = {}
        made: Dict[tuple, tuple] = {}  # fired ids -> (derived added, its part of the key)

        def leaf(added, fired, derived, weight):
            visible = tuple(
                sorted(
                    (k, _widen(v, cells[k], len(self.domains[k])) if k in cells else v)
                    for k, v in added.items()
                    if k in keep
                )
            )
            ids = tuple(r.id for r in fired)
            if derived is None:  # the group's rules read no fact they derive: build it once per fired set
                if ids not in made:
                    made[ids] = self._facts_added(state.derived, fired)
                new, new_key = made[ids]
            else:
                new = {k: v for k, v in derived.items() if v != list(state.derived.get(k, ()))}
                new_key = tuple(sorted((k, tuple(v)) for k, v in new.items()))
            mkey = (ids, visible, new_key)
            if mkey in merged:
                merged[mkey].weight += weight
            else:
                witness = {k: self.domains[k][v[0]] if k in self.numeric else v for k, v in added.items()}
                merged[mkey] = _Outcome(fired, dict(visible), witness, new, weight)

        if self.fast_fire and self.flat[group.key]:
            self._search(state, group, leaf)
        else:
            self._split_and_fire(state, group, leaf)
        self.cache[key] = list(merged.values())
        return self.cache[key]

    def _facts_added(self, before: dict, fired: List[RuleSpec]):
        """The derived facts that the rules `fired` add to `before` (in a group
        whose rules read none of the facts it derives), and their part of an
        outcome's key."""
        new: Dict[str, list] = {}
        for rule in fired:
            for name, value in self.derives[rule.id].items():
                values = new.setdefault(name, list(before.get(name, ())))
                if value not in values:
                    values.append(value)
        new = {k: v for k, v in new.items() if v != list(before.get(k, ()))}
        return new, tuple(sorted((k, tuple(v)) for k, v in new.items()))

    def _split_and_fire(self, state: _State, group: "_Group", leaf):
        """`fire` over every input of a group, the general way (through the hook):
        split the field it asks for (a number where the group's tests tell its
        interval apart) until every rule is decided; each input, with the rules
        it fires, the facts derived and its share, goes to `leaf`."""
        stack = [({}, Fraction(1))]
        while stack:
            added, weight = stack.pop()
            assign = dict(state.assign, **added)
            fired, derived, need = self.fire(group, assign, state.derived)
            if need in self.numeric:  # split the interval where the group's tests tell values apart
                low, high = assign.get(need, (0, len(self.domains[need])))
                places = self.group_cuts(group, need)
                bounds = [low] + [p for p in places if low < p < high] + [high]
                stack.extend(
                    (dict(added, **{need: (a, b)}), weight * Fraction(b - a, high - low))
                    for a, b in reversed(list(zip(bounds, bounds[1:])))
                )
                continue
            if need is not None:
                values = self.domains[need]
                stack.extend((dict(added, **{need: v}), weight / len(values)) for v in reversed(values))
                continue
            leaf(added, fired, derived, weight)

    def _search(self, state: _State, group: "_Group", leaf):
        """`fire` over every input of a group whose rules read no fact the group
        derives, incrementally (see `_Search`). Each input, every rule decided,
        goes to `leaf` in the order `fire` would meet it, with the rules it
        fires in rule order (as `fire` gives them for such a group)."""
        fired_rules: Dict[tuple, list] = {}
        for split, fired, num, den in _Search(self, state, group).inputs():
            if fired not in fired_rules:
                fired_rules[fired] = [group.rules[i] for i in fired]
            leaf(dict(split), fired_rules[fired], None, Fraction(num, den))

    def search_plan(self, group: "_Group") -> tuple:
        """What `_Search` reads of a group, worked out once: each rule's compiled
        condition, the fields it reads (in order, and as a set), the places the
        group's tests cut each number, and where each rule's own tests cut it."""
        if group.key not in self.search_memo:
            fields, rules = self.schema.fields, group.rules
            asked = [tuple(t.name for t in self.tests[r.id] if t.name in fields) for r in rules]
            reads = [set(names) for names in asked]
            cuts = {name: self.group_cuts(group, name) for name in set().union(*reads) if name in self.numeric}
            own = [
                {
                    name: self.cuts(name, [t for t in self.tests[r.id] if t.name == name])
                    for name in reads[i]
                    if name in cuts
                }
                for i, r in enumerate(rules)
            ]
            self.search_memo[group.key] = ([self.compiled[r.id] for r in rules], asked, reads, cuts, own)
        return self.search_memo[group.key]

    def fire(self, group: "_Group", assign: dict, before: dict):
        """The rules of a group that fire, or the field to split on first
        (a number is split again if the group's tests tell its interval apart)."""
        rules = group.rules
        derived = {k: list(v) for k, v in before.items()}
        decided: Dict[str, bool] = {}
        fired: List[RuleSpec] = []
        fields = self.schema.fields
        pending = Counter(n for r in rules for n in self.derives[r.id])  # facts a rule still undecided may add
        split = {}  # number -> whether its interval is one value for the group's tests

        def settled(name):
            if name not in split:
                split[name] = _settled(self.group_cuts(group, name), assign[name])
            return split[name]

        def lookup(name):
            if name in fields:
                if name not in assign:
                    return conditions.UNKNOWN
                value = assign[name]
                if name in self.numeric:
                    if not settled(name):
                        return conditions.UNKNOWN
                    value = self.domains[name][value[0]]
                return [] if value is None else [value]
            return conditions.UNKNOWN if pending[name] else derived.get(name, [])

        progress = True
        while progress:
            progress = False
            for rule in rules:
                if rule.id in decided:
                    continue
                verdict = self.compiled[rule.id](lookup)
                if verdict is None:
                    continue
                decided[rule.id] = verdict
                if verdict:
                    fired.append(rule)
                    for name, value in self.derives[rule.id].items():
                        if value not in derived.setdefault(name, []):
                            derived[name].append(value)
                if self.derives[rule.id]:  # else what the other rules read is unchanged
                    progress = True
                    pending.subtract(list(self.derives[rule.id]))
        return fired, derived, self._needed(rules, decided, assign, settled)

    def _needed(self, rules: List[RuleSpec], decided: dict, assign: dict, settled) -> Optional[str]:
        """The field `fire` asks to split: the first field an undecided rule tests
        (in rule order) that the input does not know, or a number whose interval
        the group's tests still tell apart. None: the undecided rules wait only
        on each other, so none can fire."""
        fields = self.schema.fields
        for rule in rules:
            if rule.id not in decided:
                for test in self.tests[rule.id]:
                    if test.name in fields and (
                        test.name not in assign or (test.name in self.numeric and not settled(test.name))
                    ):
                        return test.name
        return None

    def conclude(self, state: _State, layer, fired: List[RuleSpec], derived: dict) -> _State:
        """The state after a layer fires `fired` (one combination of its groups'
        outcomes) over `state`: records where the rules fire, and runs the
        checks that read one case's conclusions (stance, dose and severity
        conflicts), each carrying forward what later layers' checks need."""
        self.record_fired(state, fired)
        after = _State(
            dict(state.assign),
            {k: tuple(v) for k, v in derived.items() if v},
            state.count,
            state.witness,
            state.stance_layer,
            state.dose,
            state.stance_rule,
            state.warned,
        )
        self.stance_conflicts(fired, state, after, layer)
        self.dose_conflicts(fired, state, after)
        self.severity_conflicts(fired, state, after)
        return after

    def record_fired(self, state: _State, fired: List[RuleSpec]):
        """Reach and co-firing, which the checks after the walk read: a rule that
        fires in no combination is unreachable (`unreachable`), one that always
        fires with another that concludes as much is redundant or subsumed
        (`redundant`). Co-firing is updated once per set of rules seen together."""
        ids = {r.id for r in fired}
        together = frozenset(ids)
        first_time = together not in self.cofired
        self.cofired.add(together)
        for rule in fired:
            self.reach[rule.id] += state.count
            self.fired_now.add(rule.id)
            if first_time:
                self.cofire[rule.id] = self.cofire.get(rule.id, ids) & ids

    def stance_conflicts(self, fired, state, after, layer):
        """Conflict: rules that fire for one case set different stances (reported
        on the first rule whose stance differs from the first one's). Carries
        the stance forward: the layer and rule that set it first, since a
        stance from an earlier stance layer is final."""
        stances = [r for r in fired if "recommend" in r.then]
        if stances and after.stance_layer is None:
            after.stance_layer, after.stance_rule = layer.name, stances[0].id
        different = sorted({r.then["recommend"]["stance"] for r in stances})
        if len(different) > 1:
            pair = [r for r in stances if r.then["recommend"]["stance"] != stances[0].then["recommend"]["stance"]]
            self.add(
                "conflict",
                f"rules {stances[0].id} ({stances[0].then['recommend']['stance']}) and "
                f"{pair[0].id} ({pair[0].then['recommend']['stance']}) set different stances "
                f"for one case",
                pair[0],
                state,
                state.count,
                ("conflict", stances[0].id, pair[0].id),
            )

    def dose_conflicts(self, fired, state, after):
        """Conflict: rules that fire for one case give different doses, within a
        layer or across layers (each against the first dose given). Carries the
        first dose forward, for this check and the dose gap (`dose_gaps`)."""
        for rule in fired:
            if "dose" not in rule.then:
                continue
            dose = tuple(sorted(rule.then["dose"].items()))
            if after.dose is None:
                after.dose = (rule.id, dose)
            elif after.dose[1] != dose:
                self.add(
                    "conflict",
                    f"rules {after.dose[0]} and {rule.id} give different doses for one case",
                    rule,
                    state,
                    state.count,
                    ("dose-conflict", after.dose[0], rule.id),
                )

    def severity_conflicts(self, fired, state, after):
        """Conflict: one warning code at two severities for one case, within a
        layer or across layers. Carries forward the warnings given so far of the
        codes that rules give at several severities (no other can conflict)."""
        seen = {code: (self.rb.by_id[rule_id], severity) for code, severity, rule_id in state.warned}
        for rule in fired:
            for warning in rule.warnings:
                other = seen.setdefault(warning["code"], (rule, warning["severity"]))
                if other[1] != warning["severity"]:
                    self.add(
                        "conflict",
                        f"rules {other[0].id} and {rule.id} give warning "
                        f"'{warning['code']}' different severities for one case",
                        rule,
                        state,
                        state.count,
                        ("severity", other[0].id, rule.id),
                    )
                elif warning["code"] in self.multi_severity and other[0] is rule:
                    after.warned += ((warning["code"], warning["severity"], rule.id),)

    def after_layer(self, state: _State, layer):
        """Gaps: checked where the layer that should have closed them has run."""
        self.stance_gaps(state, layer)
        self.dose_gaps(state, layer)

    def stance_gaps(self, state: _State, layer):
        """Gap: a case of a diagnosis for which no rule sets a stance, checked once
        the last stance layer has run. A gap belongs to no rule: one finding per
        diagnosis, placed at the diagnosis in the case schema."""
        diagnosis = state.witness["diagnosis"]
        if layer.name == self.last_stance and STANCE not in state.derived:
            self.add(
                "gap",
                f"no rule sets a stance for diagnosis '{diagnosis}' in this situation",
                None,
                state,
                state.count,
                ("gap", diagnosis),
            )

    def dose_gaps(self, state: _State, layer):
        """Gap: a stance under which IVIG is given, but no rule gives a regimen,
        checked once the last layer has run; reported on the stance's rule."""
        diagnosis = state.witness["diagnosis"]
        if layer.index == len(self.rb.layers) - 1:
            given = [s for s in state.derived.get(STANCE, ()) if s in self.rb.ivig_given]
            if given and state.dose is None:
                self.add(
                    "gap",
                    f"IVIG is {given[0]} for diagnosis '{diagnosis}' (rule {state.stance_rule}) "
                    f"but no rule gives a regimen",
                    self.rb.by_id.get(state.stance_rule),
                    state,
                    state.count,
                    ("dose-gap", diagnosis, given[0]),
                )

    def project(self, state: _State, layer) -> _State:
        """Keep what later layers can see: the fields and facts they test, and of
        a number the widest interval that their tests treat as one value."""
        seen, cells = self.seen_now[layer.name], self.cells_now[layer.name]
        assign = {}
        for name, value in state.assign.items():
            if name in seen or name == "diagnosis":
                if name in cells:
                    value = _widen(value, cells[name], len(self.domains[name]))
                assign[name] = value
        state.assign = assign
        state.derived = {k: v for k, v in state.derived.items() if k in seen or k == STANCE}
        return state

    def unreachable(self):
        """Unreachable: a rule that fires in none of the combinations walked, and
        why: its condition can never hold (`_satisfiable`), or it can but never
        where the rule could fire (an earlier stance layer decides first, or a
        fact it tests is never derived)."""
        for rule in self.rb.rules:
            if self.reach[rule.id]:
                continue
            if _satisfiable(rule, self.domains, self.rb):
                why = (
                    "its conditions can hold, but never when it could fire: an earlier stance "
                    "layer always decides first, or a fact it tests is never derived"
                )
            else:
                why = "its conditions can never hold together"
            self.add("unreachable", f"rule {rule.id} fires in none of the combinations: {why}", rule, {}, 0)

    def redundant(self):
        """Redundancy and subsumption: a rule that always fires with another that
        concludes at least as much adds nothing (see `_overlap`). One finding
        per rule, against the first such rule in id order."""
        for rule in self.rb.rules:
            if not self.reach[rule.id]:
                continue
            for other_id in sorted(self.cofire.get(rule.id, ()) - {rule.id}):
                overlap = self._overlap(rule, self.rb.by_id[other_id])
                if overlap is None:
                    continue
                kind, how = overlap
                self.add(
                    kind,
                    f"rule {rule.id} is {how} {other_id}: whenever it fires, {other_id} fires and concludes the same",
                    rule,
                    {},
                    self.reach[rule.id],
                    (kind, rule.id, other_id),
                )
                break

    def _overlap(self, rule: RuleSpec, other: RuleSpec):
        """How `rule` overlaps `other`, which fires whenever it fires: subsumed if
        `other` fires in more combinations (`rule` is the narrower), redundant if
        in as many (an equivalent pair is reported once, on the later rule);
        None if `other` does not conclude everything `rule` does."""
        if not _concludes_all(other, rule):
            return None
        if self.reach[other.id] > self.reach[rule.id]:
            return "subsumed", "narrower than"
        if rule.id in self.cofire.get(other.id, ()) and _concludes_all(rule, other) and rule.position < other.position:
            return None  # reported on `other`
        return "redundant", "equivalent to"


def _several_severities(rules: List[RuleSpec]) -> set:
    """The warning codes that rules give at more than one severity: only their
    warnings can conflict (`_Walk.severity_conflicts`)."""
    severities: Dict[str, set] = {}
    for rule in rules:
        for warning in rule.warnings:
            severities.setdefault(warning["code"], set()).add(warning["severity"])
    return {code for code, found in severities.items() if len(found) > 1}


class _Search:
    """The incremental search of `_Walk._search` over one group of rules (that
    read no fact the group derives) from one state.

    The inputs are split in the order `fire` asks for them: the first
    undecided rule's first field not known, a number at every place the
    group's tests tell apart. A split re-reads only the undecided rules that
    test the field split, and sibling intervals of a number on which every
    undecided rule's tests agree share what lies below them."""

    def __init__(self, walk: _Walk, state: _State, group: _Group):
        self.rules = group.rules
        self.compiled, self.asked, self.reads, self.cuts, self.own = walk.search_plan(group)
        self.numeric, self.domains = walk.numeric, walk.domains
        self.current = current = dict(state.assign)  # the input split so far
        fields, cuts, domains, before = walk.schema.fields, self.cuts, walk.domains, state.derived
        unknown = conditions.UNKNOWN

        def lookup(name):  # as `fire` reads a field or a fact (a closure: the walk's hot loop)
            if name in fields:
                value = current.get(name, _UNSET)
                if value is _UNSET:
                    return unknown
                if name in cuts:
                    if not _settled(cuts[name], value):
                        return unknown
                    value = domains[name][value[0]]
                return () if value is None else (value,)
            return before.get(name, ())

        self.lookup = lookup

    def inputs(self) -> list:
        """Every input of the group, every rule decided, in the order `fire` would
        meet it: (fields split, in order; the indexes of the rules it fires, in
        rule order; its share as numerator and denominator)."""
        verdicts, still = [None] * len(self.rules), []
        for i, condition in enumerate(self.compiled):
            verdict = condition(self.lookup)
            if verdict is None:
                still.append(i)
            else:
                verdicts[i] = verdict
        return self.expand(verdicts, still)

    def expand(self, verdicts: list, still: list) -> list:
        """The inputs below a node of the search (the rules of `still` undecided),
        as `inputs` gives them."""
        if not still:
            return [((), tuple(i for i, v in enumerate(verdicts) if v), 1, 1)]
        current, cuts, reads = self.current, self.cuts, self.reads
        need = self.next_split(still[0])
        previous = current.get(need, _UNSET)
        out = []
        below: Dict[tuple, list] = {}
        read = [i for i in still if need in reads[i]]
        kept = [i for i in still if need not in reads[i]]
        met: Dict[tuple, Optional[bool]] = {}  # (rule, where the value falls for its tests) -> verdict
        for value, num, den in self.children(need, previous):
            current[need] = value
            verdicts_here, still_here, places = self.decide(need, value, verdicts, read, kept, met)
            if need in cuts:  # what lies below depends on the value only through these
                same = (tuple(verdicts_here), tuple(places))
                sub = below.get(same)
                if sub is None:
                    sub = below[same] = self.expand(verdicts_here, still_here)
            else:
                sub = self.expand(verdicts_here, still_here)
            step = ((need, value),)
            out.extend((step + split, fired, num * n, den * d) for split, fired, n, d in sub)
        if previous is _UNSET:
            del current[need]
        else:
            current[need] = previous
        return out

    def next_split(self, i: int) -> str:
        """The field to split next, as `fire` asks for it: the first field rule i
        reads that is not known, or a number whose interval its group's tests
        still tell apart."""
        current, cuts = self.current, self.cuts
        for name in self.asked[i]:
            value = current.get(name, _UNSET)
            if value is _UNSET or (name in cuts and not _settled(cuts[name], value)):
                return name
        # cannot happen: a rule is decided once every field it reads is known
        raise AssertionError(f"rule {self.rules[i].id} undecided on known fields")

    def children(self, need: str, previous) -> list:
        """The values a split gives a field, each with its share: a number's
        interval cut at the group's places, or each value of another field."""
        domain = self.domains[need]
        if need in self.numeric:
            low, high = (0, len(domain)) if previous is _UNSET else previous
            bounds = [low] + [p for p in self.cuts[need] if low < p < high] + [high]
            return [((a, b), b - a, high - low) for a, b in zip(bounds, bounds[1:])]
        return [(v, 1, len(domain)) for v in domain]

    def decide(self, need: str, value, verdicts: list, read: list, kept: list, met: dict):
        """Decide again, with `need` just split to `value`, the undecided rules
        that read it (`read`; those of `kept` do not). Across the siblings of a
        split a rule's verdict changes only where its own tests do, so verdicts
        are shared through `met`. The verdicts, the rules still undecided (in
        order), and where the value falls for the tests of each of them."""
        compiled, own, lookup = self.compiled, self.own, self.lookup
        numbered = need in self.cuts
        verdicts_here = list(verdicts)
        still_here = list(kept)
        places = []
        for i in read:
            place = bisect_right(own[i][need], value[0]) if numbered else value
            verdict = met.get((i, place), _UNSET)
            if verdict is _UNSET:
                verdict = met[(i, place)] = compiled[i](lookup)
            if verdict is None:
                still_here.append(i)
                places.append(place)
            else:
                verdicts_here[i] = verdict
        if len(still_here) > len(kept):
            still_here.sort()
        return verdicts_here, still_here, places


def _settled(places: tuple, interval: tuple) -> bool:
    """Whether no place of `places` (in order) lies inside `interval` of a cut
    domain: the tests that cut there treat the interval as one value."""
    low, high = interval
    i = bisect_right(places, low)
    return i == len(places) or places[i] >= high


def _merged(states) -> List[_State]:
    """States that no later layer can tell apart, as one each: their counts add
    up, and the first keeps its witness."""
    merged: Dict[tuple, _State] = {}
    for state in states:
        key = state.key()
        if key in merged:
            merged[key].count += state.count
        else:
            merged[key] = state
    return list(merged.values())


def _compile(cond):
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
        return _compile(conditions.negate(cond.item))
    items = [_compile(c) for c in cond.items]
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


def _verdict(test: conditions.Test, value) -> bool:
    """A test's verdict on one value of a field (None: unknown), as `conditions.evaluate` gives it."""
    if test.op == "known":
        return (value is not None) == test.operand
    return value is not None and test.holds(value)


def _whole(share) -> int:
    """A share of a state's count, which the walk's counts make a whole number."""
    assert share.denominator == 1, "a state's count splits evenly over a field's values"
    return share.numerator


def _widen(interval, places, size):
    """The widest interval of a cut domain around `interval` that crosses none of `places`,
    or `interval` itself if it crosses one."""
    low, high = interval
    i = bisect_right(places, low)
    left = places[i - 1] if i else 0
    right = places[i] if i < len(places) else size
    return (left, right) if high <= right else interval


def _atoms(rule: RuleSpec) -> set:
    out = {("derive", k, v) for k, v in (rule.then.get("derive") or {}).items()}
    out |= {("warn", w["code"], w["severity"]) for w in rule.warnings}
    if "recommend" in rule.then:
        out.add(("stance", rule.then["recommend"]["stance"]))
    if "dose" in rule.then:
        out.add(("dose", tuple(sorted(rule.then["dose"].items()))))
    return out


def _concludes_all(a: RuleSpec, b: RuleSpec) -> bool:
    """Whether `a` concludes everything `b` does, and shows first where only one is shown."""
    if not _atoms(b) <= _atoms(a):
        return False
    shown_first = "recommend" in b.then or "dose" in b.then
    return a.salience > b.salience if shown_first else True


def _satisfiable(rule: RuleSpec, domains: Dict[str, list], rulebase: RuleBase) -> bool:
    """Whether some values of the names a rule tests make its condition true
    (a derived fact may be absent or take any value some rule derives)."""
    names = sorted({t.name for t in conditions.tests(rule.when)})
    choices = []
    for name in names:
        if name in domains:
            # one value for each way the rule's tests of the name can go: the condition reads no more
            tested = [t for t in conditions.tests(rule.when) if t.name == name]
            ways: Dict[tuple, object] = {}
            for value in domains[name]:
                if value is not None:
                    ways.setdefault(tuple(_verdict(t, value) for t in tested), value)
            values = list(ways.values())
        else:
            values = list(dict.fromkeys(r.derives[name] for r in rulebase.producers(name)))
        choices.append([[]] + [[v] for v in values])
    for combo in product(*choices):
        table = dict(zip(names, combo))
        if conditions.truth(rule.when, table.__getitem__):
            return True
    return False


def _order(finding: Finding):
    return (finding.file or "", finding.line or 0, finding.kind, finding.message)


def verify(rulebase: RuleBase) -> Verification:
    """Check a loaded rule base exhaustively per diagnosis; see the module doc."""
    return _Walk(rulebase).run()


def walk_case(rulebase: RuleBase, facts: dict) -> List[str]:
    """The rules the walk fires for one case, in rule-base order: the walk's
    reading of the engine, which the tests hold to experta's."""
    walk = _Walk(rulebase, fixed=facts)
    walk.walk_diagnosis(facts["diagnosis"])
    return [r.id for r in rulebase.rules if walk.reach[r.id]]
