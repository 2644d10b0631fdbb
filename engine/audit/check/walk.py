"""The layer-by-layer walk over a rule base's fact space (`Walk`; see the
package doc), and the two ways to run it: over every diagnosis (`verify`) and
over one case (`walk_case`)."""

from itertools import product
from math import prod
from typing import Dict, List, Optional

from ...core.rulebase import STANCE, RuleBase, RuleSpec
from .checks import CaseChecks, RuleChecks
from .findings import Coverage, Findings, Verification
from .fold import Folding, Replay
from .outcomes import Outcome, Outcomes
from .search import fire_group, widen
from .space import FactSpace, Plan, State
from .tally import Kept, Tally


class Walk:
    """The layer-by-layer walk over one rule base.

    A subclass may override the hooks the walk calls for each combination
    (`settle`, `conclude`, `after_layer`, `project`) or for each input of a
    group of rules (`fire`), to watch them. The walk's shortcuts are exact
    only with its own hooks: folding (`fold.Folding`) where it keeps
    FOLD_HOOKS, replaying the last layer (`fold.Replay`) where it also keeps
    REPLAY_HOOKS, the incremental search (`search.Search`) where it keeps
    `fire`. A subclass that overrides a hook goes the long way and sees every
    combination (as tests/test_safety_walk.py relies on)."""

    FOLD_HOOKS = ("conclude", "after_layer", "project")
    REPLAY_HOOKS = ("settle", "_combine", "_parts")

    def __init__(self, rulebase: RuleBase, fixed: Optional[dict] = None, shared: Optional[dict] = None):
        self.space = FactSpace(rulebase, fixed, shared)
        # what a subclass reads: the rule base, each field's cut domain, the numbers walked as intervals
        self.rb, self.domains, self.numeric = rulebase, self.space.domains, self.space.numeric
        self.findings = Findings(rulebase.schema)
        self.tally = Tally()
        self.checks = CaseChecks(self.space, self.findings)
        self._shortcuts()
        self.outcomes = Outcomes(self.space, self.fire, self.searching)
        self.folding = Folding(self.space, self.tally)
        self.replay = Replay(self.space, self.tally, self.findings)
        self._prepare(None)

    def _shortcuts(self):
        """Which of the walk's shortcuts this class may take (see the class doc)."""

        def own(names):
            return all(getattr(type(self), name) is getattr(Walk, name) for name in names)

        self.folds = own(self.FOLD_HOOKS)
        self.searching = own(("fire",))
        self.replays = self.folds and own(self.REPLAY_HOOKS)

    def _prepare(self, diagnosis):
        """Set up the walk of one diagnosis (None: every rule); see `space.Plan`."""
        self.plan = Plan(self.space, diagnosis)
        self.folding.start(self.plan)

    def run(self) -> Verification:
        """Walk every diagnosis, then check the rules by where they fired."""
        coverage = [self.walk_diagnosis(value) for value in self.space.schema.fields["diagnosis"].values]
        RuleChecks(self.space, self.tally, self.findings).run()
        return Verification(self.findings.ordered(), coverage, self.tally.reach)

    def walk_diagnosis(self, diagnosis) -> Coverage:
        """Walk one diagnosis's fact space, layer by layer; what it covered."""
        self._prepare(diagnosis)
        names = self.space.live_fields(diagnosis)
        total = prod(len(self.space.domains[n]) for n in names)
        self.tally.start_diagnosis()
        states = [State({"diagnosis": diagnosis}, {}, total, {"diagnosis": diagnosis})]
        evaluated = 0
        for layer in self.rb.layers:
            evaluated += len(states)
            if layer.index == len(self.rb.layers) - 1 and self.replays:
                for state in states:  # nothing reads the states after the last layer
                    self._settle_last(state, layer)
                break
            states = self.walk_layer(states, layer)
        return Coverage(diagnosis, names, total, self.tally.excluded, evaluated, self.tally.end_diagnosis())

    def walk_layer(self, states: List[State], layer) -> List[State]:
        """Fire a layer over each state, check the gaps it should close, and merge
        the states after it that no later layer can tell apart (their counts
        add up; the first keeps its witness)."""

        def settled(state):
            for after in self.settle(state, layer):
                self.after_layer(after, layer)
                yield self.project(after, layer)

        return merged(after for state in states for after in settled(state))

    def settle(self, state: State, layer):
        """Fire one layer over a state; yield one state per way the layer can go.

        The layer's rules fall into independent groups (no field or derived
        fact in common); each group's outcomes are worked out once per input
        it can see, and the layer's outcomes are their product.
        """
        if layer.sets_stance and state.stance_layer not in (None, layer.name):
            yield self.conclude(state, layer, [], dict(state.derived))  # an earlier stance is final
            return
        parts, folded = self._parts(state, layer)
        kept = Kept()
        yield from self._combine(state, layer, parts, folded, kept)
        self.folding.fold(folded, kept.total, kept.common)

    def _parts(self, state: State, layer):
        """The outcomes of each group of the layer from this state: those that go
        into the product, and those folded (see `fold.Folding`)."""
        parts = [self.outcomes.of(state, self.plan, layer.name, group) for group in self.plan.groups[layer.name]]
        return self.folding.split(parts, layer) if self.folds else (parts, [])

    def _combine(self, state: State, layer, parts, folded, kept: Kept):
        """Conclude each combination of the groups' outcomes that the constraints
        allow; `kept` tells the count they cover and the rules all of them fire."""
        _, always, first = self.folding.always(folded) if folded else ((), (), {})
        schema, constrained = self.space.schema, self.space.constrained
        for combo in product(*parts):
            count = share(state.count, combo)
            witness, assign, derived = joined(state, combo, first)
            if constrained and not schema.check_constraints({k: v for k, v in witness.items() if v is not None}):
                self.tally.excluded += count
                continue
            fired = [r for part in combo for r in part.fired]
            kept.add(count, {r.id for r in fired})
            if folded:
                fired += always
            fired.sort(key=lambda r: -r.salience)
            after = State(
                assign, state.derived, count, witness, state.stance_layer, state.dose, state.stance_rule, state.warned
            )
            yield self.conclude(after, layer, fired, derived)

    def _settle_last(self, state: State, layer):
        """`settle` in the last layer, with the walk's own hooks, where the states
        it yields go nowhere: what the groups that cannot be folded add is
        learnt once and replayed for the next states that conclude alike (see
        `fold.Replay`). The rules of quiet groups (see `Folding.quiet`: no
        finding reads them) that go one way are added state by state, as
        `conclude` and `fold` would."""
        if layer.sets_stance and state.stance_layer not in (None, layer.name):
            for after in self.settle(state, layer):
                self.after_layer(after, layer)
            return
        parts, folded = self._parts(state, layer)
        single = [part for part in parts if len(part) == 1 and self.folding.quiet(part, layer)]
        alone = {r.id for part in single for r in part[0].fired}  # rules of quiet groups that go one way
        always = alone | self.folding.always(folded)[0] if folded else alone
        sig = self.replay.signature(state, [part for part in parts if not any(part is p for p in single)])
        effect = self.replay.effects.get(sig)
        if effect is None:
            before, kept = self.replay.before(), Kept()
            for after in self._combine(state, layer, parts, folded, kept):
                self.after_layer(after, layer)
            self.replay.learn(sig, state.count, before, kept, alone, always)
            total, common = kept.total, kept.common
        else:
            total, common = self.replay.replay(effect, state.count, alone, always)
        self.folding.fold(folded, total, common)

    def conclude(self, state: State, layer, fired: List[RuleSpec], derived: dict) -> State:
        """The state after a layer fires `fired` (one combination of its groups'
        outcomes) over `state`: records where the rules fire, and runs the
        checks that read one case's conclusions (stance, dose and severity
        conflicts), each carrying forward what later layers' checks need."""
        self.tally.record(fired, state.count)
        after = State(
            dict(state.assign),
            {k: tuple(v) for k, v in derived.items() if v},
            state.count,
            state.witness,
            state.stance_layer,
            state.dose,
            state.stance_rule,
            state.warned,
        )
        self.checks.conclusions(fired, state, after, layer)
        return after

    def after_layer(self, state: State, layer):
        """Gaps: checked where the layer that should have closed them has run."""
        self.checks.gaps(state, layer)

    def project(self, state: State, layer) -> State:
        """Keep what later layers can see: the fields and facts they test, and of
        a number the widest interval that their tests treat as one value."""
        seen, cells = self.plan.seen[layer.name], self.plan.cells[layer.name]
        assign = {}
        for name, value in state.assign.items():
            if name in seen or name == "diagnosis":
                if name in cells:
                    value = widen(value, cells[name], len(self.space.domains[name]))
                assign[name] = value
        state.assign = assign
        state.derived = {k: v for k, v in state.derived.items() if k in seen or k == STANCE}
        return state

    def fire(self, group, assign: dict, before: dict):
        """The rules of a group that fire, or the field to split on first (see `search.fire_group`)."""
        return fire_group(self.space, group, assign, before)


def share(count: int, combo) -> int:
    """A state's `count` times the shares of one combination of its groups' outcomes."""
    numerator, denominator = count, 1
    for part in combo:
        numerator *= part.weight.numerator
        denominator *= part.weight.denominator
    whole, rest = divmod(numerator, denominator)
    assert not rest, "a state's count splits evenly over a field's values"
    return whole


def joined(state: State, combo: List[Outcome], first: dict):
    """A state with one combination of its groups' outcomes (and the folded
    groups' first witness): its witness, fields and derived facts."""
    witness = dict(state.witness)
    witness.update(first)
    assign = dict(state.assign)
    derived = {k: list(v) for k, v in state.derived.items()}
    for part in combo:
        witness.update(part.witness)
        assign.update(part.assign)
        for name, values in part.derived.items():
            derived.setdefault(name, []).extend(v for v in values if v not in derived[name])
    return witness, assign, derived


def merged(states) -> List[State]:
    """States that no later layer can tell apart, as one each: their counts add
    up, and the first keeps its witness."""
    out: Dict[tuple, State] = {}
    for state in states:
        key = state.key()
        if key in out:
            out[key].count += state.count
        else:
            out[key] = state
    return list(out.values())


def verify(rulebase: RuleBase) -> Verification:
    """Check a loaded rule base exhaustively per diagnosis; see the package doc."""
    return Walk(rulebase).run()


def walk_case(rulebase: RuleBase, facts: dict) -> List[str]:
    """The rules the walk fires for one case, in rule-base order: the walk's
    reading of the engine, which the tests hold to experta's."""
    walk = Walk(rulebase, fixed=facts)
    walk.walk_diagnosis(facts["diagnosis"])
    return [r.id for r in rulebase.rules if walk.tally.reach[r.id]]
