"""The ways one group of a layer's rules can go from a state (`Outcome`), each
worked out once per input the group can see (`Outcomes`), and merged where
nothing later can tell them apart (`Merging`)."""

from dataclasses import dataclass
from fractions import Fraction
from typing import Dict, List

from ...core.rulebase import RuleSpec
from .search import Search, search_plan, widen
from .space import UNSET, FactSpace, Group, Plan, State


@dataclass
class Outcome:
    """One way a group can go: what fired, what was split on, and its share of the state."""

    fired: List[RuleSpec]
    assign: dict  # the fields split on that later layers (or constraints) can see
    witness: dict  # every field split on
    derived: dict  # derived facts added
    weight: Fraction


def facts_added(derives: Dict[str, dict], before: dict, fired: List[RuleSpec]):
    """The derived facts that the rules `fired` add to `before` (in a group
    whose rules read none of the facts it derives), and their part of an
    outcome's key."""
    new: Dict[str, list] = {}
    for rule in fired:
        for name, value in derives[rule.id].items():
            values = new.setdefault(name, list(before.get(name, ())))
            if value not in values:
                values.append(value)
    new = {k: v for k, v in new.items() if v != list(before.get(k, ()))}
    return new, tuple(sorted((k, tuple(v)) for k, v in new.items()))


class Merging:
    """A group's outcomes from one state, merged as each input is met: inputs that
    fire the same rules, add the same facts and differ only in what no later
    layer (or constraint) reads, or inside a cell of a number that later layers
    cannot tell apart, are one outcome (the first keeps its witness, as the
    merge after the layer would keep it) and their shares add up."""

    def __init__(self, space: FactSpace, state: State, keep: set, cells: Dict[str, tuple]):
        self.space, self.state, self.keep, self.cells = space, state, keep, cells
        self.merged: Dict[tuple, Outcome] = {}
        self.made: Dict[tuple, tuple] = {}  # fired ids -> (derived added, its part of the key)

    def add(self, added: dict, fired: List[RuleSpec], derived, weight: Fraction):
        """One input (the fields `added` to the state's), with the rules it fires and
        its share; `derived` the facts after it, or None in a group whose rules read
        no fact they derive (then the facts are built once per set of rules fired)."""
        visible = self._visible(added)
        ids = tuple(r.id for r in fired)
        if derived is None:
            if ids not in self.made:
                self.made[ids] = facts_added(self.space.derives, self.state.derived, fired)
            new, new_key = self.made[ids]
        else:
            new = {k: v for k, v in derived.items() if v != list(self.state.derived.get(k, ()))}
            new_key = tuple(sorted((k, tuple(v)) for k, v in new.items()))
        key = (ids, visible, new_key)
        if key in self.merged:
            self.merged[key].weight += weight
        else:
            domains, numeric = self.space.domains, self.space.numeric
            witness = {k: domains[k][v[0]] if k in numeric else v for k, v in added.items()}
            self.merged[key] = Outcome(fired, dict(visible), witness, new, weight)

    def _visible(self, added: dict) -> tuple:
        """What later layers (or constraints) see of the fields split: a number as
        the widest interval their tests treat as one value."""
        cells, domains = self.cells, self.space.domains
        return tuple(
            sorted(
                (k, widen(v, cells[k], len(domains[k])) if k in cells else v)
                for k, v in added.items()
                if k in self.keep
            )
        )

    def outcomes(self) -> List[Outcome]:
        return list(self.merged.values())


class Outcomes:
    """The outcomes of each group from each state, worked out once per input the
    group can see, over the whole walk. `fire` is the walk's hook; `searching`
    says whether the incremental search may stand in for it."""

    def __init__(self, space: FactSpace, fire, searching: bool):
        self.space, self.fire, self.searching = space, fire, searching
        self.cache: Dict[tuple, list] = {}
        self.plans: Dict[tuple, tuple] = {}  # group key -> what the search reads of it

    def of(self, state: State, plan: Plan, layer_name: str, group: Group) -> List[Outcome]:
        """The ways one group of a layer's rules can go from this state, merged (see `Merging`)."""
        assign, derived = state.assign, state.derived
        key = (
            layer_name,
            group.key,
            tuple(assign.get(n, UNSET) for n in group.fields),
            tuple(derived.get(n) for n in group.derived),
            plan.reads[layer_name].get(group.key),
        )
        known = self.cache.get(key)
        if known is not None:
            return known
        merging = Merging(self.space, state, plan.seen[layer_name] | self.space.constrained, plan.cells[layer_name])
        if self.searching and plan.flat[group.key]:
            self._search(state, group, merging)
        else:
            self._split_and_fire(state, group, merging)
        self.cache[key] = merging.outcomes()
        return self.cache[key]

    def _split_and_fire(self, state: State, group: Group, merging: Merging):
        """`fire` over every input of a group, the general way (through the hook):
        split the field it asks for (a number where the group's tests tell its
        interval apart) until every rule is decided; each input, with the rules
        it fires, the facts derived and its share, goes to `merging`."""
        domains = self.space.domains
        stack = [({}, Fraction(1))]
        while stack:
            added, weight = stack.pop()
            assign = dict(state.assign, **added)
            fired, derived, need = self.fire(group, assign, state.derived)
            if need in self.space.numeric:  # split the interval where the group's tests tell values apart
                low, high = assign.get(need, (0, len(domains[need])))
                places = self.space.group_cuts(group, need)
                bounds = [low] + [p for p in places if low < p < high] + [high]
                stack.extend(
                    (dict(added, **{need: (a, b)}), weight * Fraction(b - a, high - low))
                    for a, b in reversed(list(zip(bounds, bounds[1:])))
                )
                continue
            if need is not None:
                values = domains[need]
                stack.extend((dict(added, **{need: v}), weight / len(values)) for v in reversed(values))
                continue
            merging.add(added, fired, derived, weight)

    def _search(self, state: State, group: Group, merging: Merging):
        """`fire` over every input of a group whose rules read no fact the group
        derives, incrementally (see `search.Search`). Each input, every rule
        decided, goes to `merging` in the order `fire` would meet it, with the
        rules it fires in rule order (as `fire` gives them for such a group)."""
        if group.key not in self.plans:
            self.plans[group.key] = search_plan(self.space, group)
        fired_rules: Dict[tuple, list] = {}
        for split, fired, num, den in Search(self.space, group, self.plans[group.key], state).inputs():
            if fired not in fired_rules:
                fired_rules[fired] = [group.rules[i] for i in fired]
            merging.add(dict(split), fired_rules[fired], None, Fraction(num, den))
