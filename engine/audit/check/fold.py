"""The walk's two shortcuts, exact only where the walk keeps its own hooks (see
`walk.Walk`): folding the groups that no finding or later layer reads out of a
layer's product (`Folding`), and replaying what the last layer adds for states
that conclude alike (`Replay`)."""

from fractions import Fraction
from typing import Dict, List

from ...core.rulebase import STANCE
from .findings import Findings
from .outcomes import Outcome
from .space import FactSpace, Plan, State
from .tally import Kept, Tally


def whole(share) -> int:
    """A share of a state's count, which the walk's counts make a whole number."""
    assert share.denominator == 1, "a state's count splits evenly over a field's values"
    return share.numerator


def grown(before: dict, after: dict, count: int, but=()) -> list:
    """What grew from `before` to `after`, by key (but the keys of `but`), as shares of `count`."""
    return [
        (k, Fraction(n - before.get(k, 0), count)) for k, n in after.items() if n != before.get(k, 0) and k not in but
    ]


class Folding:
    """A group whose outcomes differ in nothing that a finding or a later layer
    reads is left out of the product of a layer's groups (folded): what its
    outcomes add (reach and co-firing) is added once, as if each had gone with
    each combination kept."""

    def __init__(self, space: FactSpace, tally: Tally):
        self.space, self.tally = space, tally
        self.fold_memo: Dict[int, tuple] = {}
        self.always_memo: Dict[tuple, tuple] = {}

    def start(self, plan: Plan):
        """Fold for the walk of one diagnosis: what is foldable depends on what its later layers see."""
        self.plan = plan
        self.fold_memo, self.always_memo = {}, {}

    def split(self, parts: List[List[Outcome]], layer):
        """The outcomes of each group of a layer: those that go into the product,
        and those folded (see `foldable`)."""
        rest, folded = [], []
        for part in parts:
            known = self.fold_memo.get(id(part))  # outcome lists live in the outcomes' cache: ids stay theirs
            if known is None:
                known = self.fold_memo[id(part)] = (part, self.foldable(part, layer))
            (folded if known[1] else rest).append(part)
        return rest, folded

    def foldable(self, part: List[Outcome], layer) -> bool:
        """Whether a group's outcomes can be left out of the product of the layer's
        groups: they differ, but in nothing that a finding or a later layer reads."""
        return len(part) >= 2 and self.quiet(part, layer)

    def quiet(self, part: List[Outcome], layer) -> bool:
        """Whether nothing a finding or a later layer reads comes out of a group's
        outcomes: no stance, dose, warning given at several severities, field or
        fact seen later, or field a constraint tests."""
        seen, space = self.plan.seen[layer.name], self.space
        for outcome in part:
            if (
                outcome.assign
                or any(k in seen or k == STANCE for k in outcome.derived)
                or any(k in space.constrained for k in outcome.witness)
            ):
                return False
            for rule in outcome.fired:
                if (
                    "recommend" in rule.then
                    or "dose" in rule.then
                    or any(w["code"] in space.multi_severity for w in space.warns[rule.id])
                ):
                    return False
        return True

    def always(self, folded: List[List[Outcome]]):
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

    def fold(self, folded: List[List[Outcome]], total: int, common: set):
        """What the folded groups add, as if each of their outcomes had gone with
        each combination kept (`total` of them, all firing `common` and the rules
        that fire in every outcome of the folded groups): reach, and the rules
        that always fire together."""
        if not (folded and total):
            return
        common = common | self.always(folded)[0]
        for part in folded:
            for outcome in part:
                ids = common | {r.id for r in outcome.fired}
                for rule in outcome.fired:
                    if rule.id in common:
                        continue  # fires in every outcome: it went with every combination
                    count, rest = divmod(total * outcome.weight.numerator, outcome.weight.denominator)
                    assert not rest, "a state's count splits evenly over a field's values"
                    self.tally.fires_with(rule.id, count, ids)


class Replay:
    """The last layer, where the states settled go nowhere: what a state adds to
    the findings, the exclusions and the reach of the rules of groups that
    cannot be folded depends only on those groups' outcomes and the state's
    stance, dose, warnings, facts, constrained fields and diagnosis (its
    `signature`). It is worked out once, as a share of the state's count
    (`learn`), and replayed for the next states that conclude alike (`replay`).
    A finding is always made by the first state that shows it, so it keeps its
    witness."""

    def __init__(self, space: FactSpace, tally: Tally, findings: Findings):
        self.space, self.tally, self.findings = space, tally, findings
        self.effects: Dict[tuple, tuple] = {}
        self.content_memo: Dict[int, tuple] = {}

    def signature(self, state: State, parts: List[List[Outcome]]) -> tuple:
        """What settling the last layer over a state depends on, with `parts` the
        outcomes of its groups that are neither folded nor quiet and one way."""
        return (
            tuple(self.content(part) for part in parts),
            state.stance_layer,
            state.dose,
            state.stance_rule,
            state.warned,
            tuple(sorted(state.derived.items())),
            state.witness.get("diagnosis"),
            tuple(state.witness.get(n) for n in sorted(self.space.constrained)),
        )

    def content(self, part: List[Outcome]) -> tuple:
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

    def before(self) -> tuple:
        """The reach, findings' counts and exclusions so far, for `learn` to take from."""
        return dict(self.tally.reach), self.findings.counts(), self.tally.excluded

    def learn(self, sig: tuple, count: int, before: tuple, kept: Kept, alone: set, always: set):
        """Keep, under `sig`, what settling a state of `count` combinations added
        since `before` (reach but that of `always`, findings' counts,
        exclusions, the count kept) as shares of its count, with the rules that
        fired together but `alone`."""
        reach, found, excluded = before
        self.effects[sig] = (
            grown(reach, self.tally.reach, count, but=always),
            grown(found, self.findings.counts(), count),
            Fraction(self.tally.excluded - excluded, count),
            Fraction(kept.total, count),
            None if kept.common is None else kept.common - alone,
            [ids - alone for ids in kept.together],
        )

    def replay(self, effect: tuple, count: int, alone: set, always: set):
        """Add what `learn` kept, for a state of `count` combinations, with the
        rules of `always` firing in every combination kept, as `conclude` would
        record them. The count kept and the rules all of it fires."""
        reach, found, excluded, share, common, together = effect
        for k, part in reach:
            self.tally.reach[k] += whole(count * part)
        for k, part in found:
            self.findings.grow(k, whole(count * part))
        self.tally.excluded += whole(count * excluded)
        total = whole(count * share)
        if total:
            common = common | alone
            self.tally.fires(always, total)  # they fire in every combination kept
            for ids in together:  # as `Tally.record` records the rules that fire together
                self.tally.together(ids | always)
        return total, common
