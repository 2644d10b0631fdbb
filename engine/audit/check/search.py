"""Interval arithmetic on a number's cut domain, and firing one group's rules
over the inputs a state leaves open: the general way, one input at a time
(`fire_group`, which the walk calls through its hook `fire`), and the
incremental search (`Search`, for a group whose rules read no fact the group
derives).

A number the walk splits into intervals holds (low, high): positions in its
cut domain, low included, high not; a place i lies between values i-1 and i."""

from bisect import bisect_right
from collections import Counter
from typing import Dict, List, Optional

from ...core import conditions
from ...core.rulebase import RuleSpec
from .space import UNSET, FactSpace, Group, State


def settled(places: tuple, interval: tuple) -> bool:
    """Whether no place of `places` (in order) lies inside `interval` of a cut
    domain: the tests that cut there treat the interval as one value."""
    low, high = interval
    i = bisect_right(places, low)
    return i == len(places) or places[i] >= high


def widen(interval, places, size):
    """The widest interval of a cut domain around `interval` that crosses none of `places`,
    or `interval` itself if it crosses one."""
    low, high = interval
    i = bisect_right(places, low)
    left = places[i - 1] if i else 0
    right = places[i] if i < len(places) else size
    return (left, right) if high <= right else interval


def fire_group(space: FactSpace, group: Group, assign: dict, before: dict):
    """The rules of a group that fire, or the field to split on first
    (a number is split again if the group's tests tell its interval apart)."""
    rules = group.rules
    derived = {k: list(v) for k, v in before.items()}
    decided: Dict[str, bool] = {}
    fired: List[RuleSpec] = []
    fields = space.schema.fields
    pending = Counter(n for r in rules for n in space.derives[r.id])  # facts a rule still undecided may add
    split = {}  # number -> whether its interval is one value for the group's tests

    def is_settled(name):
        if name not in split:
            split[name] = settled(space.group_cuts(group, name), assign[name])
        return split[name]

    def lookup(name):
        if name in fields:
            if name not in assign:
                return conditions.UNKNOWN
            value = assign[name]
            if name in space.numeric:
                if not is_settled(name):
                    return conditions.UNKNOWN
                value = space.domains[name][value[0]]
            return [] if value is None else [value]
        return conditions.UNKNOWN if pending[name] else derived.get(name, [])

    progress = True
    while progress:
        progress = False
        for rule in rules:
            if rule.id in decided:
                continue
            verdict = space.compiled[rule.id](lookup)
            if verdict is None:
                continue
            decided[rule.id] = verdict
            if verdict:
                fired.append(rule)
                for name, value in space.derives[rule.id].items():
                    if value not in derived.setdefault(name, []):
                        derived[name].append(value)
            if space.derives[rule.id]:  # else what the other rules read is unchanged
                progress = True
                pending.subtract(list(space.derives[rule.id]))
    return fired, derived, needed(space, rules, decided, assign, is_settled)


def needed(space: FactSpace, rules: List[RuleSpec], decided: dict, assign: dict, is_settled) -> Optional[str]:
    """The field `fire_group` asks to split: the first field an undecided rule tests
    (in rule order) that the input does not know, or a number whose interval
    the group's tests still tell apart. None: the undecided rules wait only
    on each other, so none can fire."""
    fields = space.schema.fields
    for rule in rules:
        if rule.id not in decided:
            for test in space.tests[rule.id]:
                if test.name in fields and (
                    test.name not in assign or (test.name in space.numeric and not is_settled(test.name))
                ):
                    return test.name
    return None


def search_plan(space: FactSpace, group: Group) -> tuple:
    """What `Search` reads of a group: each rule's compiled condition, the fields
    it reads (in order, and as a set), the places the group's tests cut each
    number, and where each rule's own tests cut it."""
    fields, rules = space.schema.fields, group.rules
    asked = [tuple(t.name for t in space.tests[r.id] if t.name in fields) for r in rules]
    reads = [set(names) for names in asked]
    cuts = {name: space.group_cuts(group, name) for name in set().union(*reads) if name in space.numeric}
    own = [
        {name: space.cuts(name, [t for t in space.tests[r.id] if t.name == name]) for name in reads[i] if name in cuts}
        for i, r in enumerate(rules)
    ]
    return [space.compiled[r.id] for r in rules], asked, reads, cuts, own


class Search:
    """The incremental search over one group of rules (that read no fact the
    group derives) from one state.

    The inputs are split in the order `fire_group` asks for them: the first
    undecided rule's first field not known, a number at every place the
    group's tests tell apart. A split re-reads only the undecided rules that
    test the field split, and sibling intervals of a number on which every
    undecided rule's tests agree share what lies below them."""

    def __init__(self, space: FactSpace, group: Group, plan: tuple, state: State):
        self.rules = group.rules
        self.compiled, self.asked, self.reads, self.cuts, self.own = plan
        self.numeric, self.domains = space.numeric, space.domains
        self.current = current = dict(state.assign)  # the input split so far
        fields, cuts, domains, before = space.schema.fields, self.cuts, space.domains, state.derived
        unknown = conditions.UNKNOWN

        def lookup(name):  # as `fire_group` reads a field or a fact (a closure: the walk's hot loop)
            if name in fields:
                value = current.get(name, UNSET)
                if value is UNSET:
                    return unknown
                if name in cuts:
                    if not settled(cuts[name], value):
                        return unknown
                    value = domains[name][value[0]]
                return () if value is None else (value,)
            return before.get(name, ())

        self.lookup = lookup

    def inputs(self) -> list:
        """Every input of the group, every rule decided, in the order `fire_group` would
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
        previous = current.get(need, UNSET)
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
        if previous is UNSET:
            del current[need]
        else:
            current[need] = previous
        return out

    def next_split(self, i: int) -> str:
        """The field to split next, as `fire_group` asks for it: the first field rule i
        reads that is not known, or a number whose interval its group's tests
        still tell apart."""
        current, cuts = self.current, self.cuts
        for name in self.asked[i]:
            value = current.get(name, UNSET)
            if value is UNSET or (name in cuts and not settled(cuts[name], value)):
                return name
        # cannot happen: a rule is decided once every field it reads is known
        raise AssertionError(f"rule {self.rules[i].id} undecided on known fields")

    def children(self, need: str, previous) -> list:
        """The values a split gives a field, each with its share: a number's
        interval cut at the group's places, or each value of another field."""
        domain = self.domains[need]
        if need in self.numeric:
            low, high = (0, len(domain)) if previous is UNSET else previous
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
            verdict = met.get((i, place), UNSET)
            if verdict is UNSET:
                verdict = met[(i, place)] = compiled[i](lookup)
            if verdict is None:
                still_here.append(i)
                places.append(place)
            else:
                verdicts_here[i] = verdict
        if len(still_here) > len(kept):
            still_here.sort()
        return verdicts_here, still_here, places
