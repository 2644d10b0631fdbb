"""What a run depended on: the test outcomes that decided it, its *support*.

A case's key (situations.Keyer) gives, for every test the rules of its engine
make on a case field, 1 or 0 on the case's value, or '-' for an unknown
field. The run of a case reads only some of these outcomes; its support is a
set of positions of the key such that any case agreeing with it there gets
the same run: the same firings in the same order on the same facts, the same
derived facts, and the same undecided rules (so the same `missing`). A
situation is stored under its support, and a later case is answered by it
when the case's key agrees on those positions, whatever its other fields say.

Why agreement on the support is enough. The run of the stored case fired
Q1..Qn. For each rule, the support fixes what the rule can do:

- a rule that fired: every test of its premise that is not already refuted
  (see below), so it matches the same facts at every step;
- a rule that did not fire: a refutation of its premise. A field test that
  does not match (0 or '-') refutes for good; so does a test on a derived fact
  the run never asserted (derived facts are never retracted). A `known: false`
  test on a derived fact, and the block a stance from an earlier layer puts
  on later stance layers, refute from the step that asserted that fact on;
  they count only if every firing up to that step had a higher salience than
  the rule's (saliences are distinct), so that in another case the rule could
  not have fired before the block. (With the rule base's own checks, a rule
  tests only facts of earlier layers, or of its own for a positive test, and
  layers come first in salience, so this always holds; the support does not
  lean on that.) Without a refutation, every test;
- a rule that did not fire, in a layer the analysis reads (analysis.
  undecided_rules): also a witness that it is false in three-valued logic (a
  field test that is 0, or a test on a derived fact the analysis has decided),
  or, without one, every test, so that it is undecided in the same way.

By induction on the steps, another case agreeing on the support has at each
step the stored run's activations, plus perhaps activations of rules that
lose to the stored run's next firing and are blocked before they could win:
it fires Q1..Qn. Its analysis then reads the same rules the same way. Fact
ids may differ (other fields known), but they keep their order, which is all
experta's conflict resolution and the trace read of them.

The argument is the code's contract: tests/test_situations.py checks it on
random cases against runs without the cache.
"""

from bisect import bisect_left
from operator import itemgetter
from typing import Dict, Sequence, Tuple

from .. import conditions
from ..rulebase import RuleBase, RuleSpec

NEVER = float("inf")  # the step a fact never asserted is asserted at


class _View:
    """One run, as the support reads it."""

    __slots__ = ("key", "derived", "first", "waiting")

    def __init__(self, key: str, derived: Dict[str, list], first: Dict[str, int], waiting: frozenset):
        self.key = key  # the case's key: one character per test
        self.derived = derived  # derived name -> the values the run asserted
        self.first = first  # derived name -> the step (1-based) that first asserted it
        self.waiting = waiting  # derived names the analysis read as unknown


# Each node of a premise (in negation normal form) answers three questions, as
# bit masks of key positions (0: no position needed; None: cannot):
#   refuted(v, h): a support showing the node never matches, given no rule of a
#                  lower salience fires before step h;
#   fixed(v, h):   a support that fixes how it matches at every step;
#   false(v):      a support showing the analysis reads it false.


class _FieldTest:
    def __init__(self, position: int, test: conditions.Test):
        self.position, self.bits = position, 1 << position
        # the analysis reads `known` on a field as unknown while the field is
        # absent (it may still be asked): `known: true` is never false there
        self.never_false = test.op == "known" and test.operand

    def refuted(self, v, h):
        return self.bits if v.key[self.position] != "1" else None

    def fixed(self, v, h):
        return self.bits

    def false(self, v):
        return self.bits if v.key[self.position] == "0" and not self.never_false else None


class _DerivedTest:
    bits = 0

    def __init__(self, test: conditions.Test):
        self.test = test
        self.absent_wanted = test.op == "known" and not test.operand  # compiled as NOT(fact)

    def refuted(self, v, h):
        test = self.test
        if self.absent_wanted:
            return 0 if v.first.get(test.name, NEVER) <= h else None
        values = v.derived.get(test.name, ())
        if test.op == "known":
            return 0 if not values else None
        return 0 if not any(test.holds(x) for x in values) else None

    def fixed(self, v, h):
        return 0

    def false(self, v):
        test, values = self.test, v.derived.get(self.test.name)
        if not values and test.name in v.waiting:
            return None  # unknown to the analysis
        values = values or ()
        holds = bool(values) == test.operand if test.op == "known" else any(test.holds(x) for x in values)
        return None if holds else 0


def _smallest(masks):
    """The mask with the fewest positions, or None: the smaller a support, the more cases it answers."""
    best = None
    for mask in masks:
        if mask is None:
            continue
        if not mask & (mask - 1):  # no position, or one: none is smaller than that
            if not mask:
                return mask
            if best is None or best & (best - 1):
                best = mask
        elif best is None or bin(mask).count("1") < bin(best).count("1"):
            best = mask
    return best


class _All:
    def __init__(self, items):
        self.items = items
        self.bits = 0
        for item in items:
            self.bits |= item.bits

    def refuted(self, v, h):
        return _smallest(item.refuted(v, h) for item in self.items)

    def fixed(self, v, h):
        refutation = self.refuted(v, h)
        if refutation is not None:
            return refutation
        mask = 0
        for item in self.items:
            mask |= item.fixed(v, h)
        return mask

    def false(self, v):
        return _smallest(item.false(v) for item in self.items)


class _Any(_All):
    def refuted(self, v, h):
        mask = 0
        for item in self.items:
            found = item.refuted(v, h)
            if found is None:
                return None
            mask |= found
        return mask

    def fixed(self, v, h):
        mask = 0
        for item in self.items:  # each branch matches on its own: each is fixed
            mask |= item.fixed(v, h)
        return mask

    def false(self, v):
        mask = 0
        for item in self.items:
            found = item.false(v)
            if found is None:
                return None
            mask |= found
        return mask


def _node(cond, position: Dict[tuple, int], fields):
    if isinstance(cond, conditions.Test):
        if cond.name in fields:
            return _FieldTest(position[cond.identity], cond)
        return _DerivedTest(cond)
    items = tuple(_node(item, position, fields) for item in cond.items)  # no Not: normal form
    return _All(items) if isinstance(cond, conditions.AllOf) else _Any(items)


class _Premise:
    """One rule, as the support reads it."""

    __slots__ = ("rule", "node", "salience", "layer", "earlier_stances")

    def __init__(self, rule: RuleSpec, rulebase: RuleBase, position, fields):
        layer = rulebase.layer(rule.layer)
        earlier = frozenset(l.name for l in rulebase.layers if l.sets_stance and l.index < layer.index)
        self.rule, self.salience, self.layer = rule, rule.salience, rule.layer
        self.node = _node(conditions.normal(rule.when), position, fields)
        # once an earlier layer set the stance, the compiled rule is blocked
        # (compiler.compile_rule) and the analysis skips its layer
        self.earlier_stances = earlier if layer.sets_stance else frozenset()


class SupportReader:
    """Reads the support of the runs of one engine (its rules) off their keys."""

    def __init__(
        self,
        rules: Sequence[RuleSpec],
        rulebase: RuleBase,
        position: Dict[tuple, int],
        presence: Tuple[int, ...],
        always: Tuple[int, ...] = (),
    ):
        """`position`: each field test's identity (conditions.Test) -> its place in the key;
        `presence`: the places of the fields whose presence the result reads
        (the weight, for the grams of a dose); `always`: places every run depends on (the
        `when` of a schema constraint that settles a field the rules test, which changes
        what is missing)."""
        fields = rulebase.schema.fields
        self.premises = tuple(_Premise(rule, rulebase, position, fields) for rule in rules)
        self.by_id = {p.rule.id: p for p in self.premises}
        self.presence = sum(1 << i for i in presence)
        self.always = sum(1 << i for i in always)

    def support(self, key: str, run) -> Tuple[int, ...]:
        """The positions of `key` the run of its case depended on, in order."""
        steps = [self.by_id[entry["rule"]] for entry in run.result.trace]  # the firings, in order
        first: Dict[str, int] = {}  # derived fact -> the step that first asserted it
        stance_at: Dict[str, int] = {}  # layer -> the step that first set the stance there
        below, floor = [], NEVER  # below[j]: minus the lowest salience among firings 1..j+1 (ascending)
        for step, premise in enumerate(steps, start=1):
            for name in premise.rule.derives:
                first.setdefault(name, step)
            if "recommend" in premise.rule.then:
                stance_at.setdefault(premise.layer, step)
            floor = min(floor, premise.salience)
            below.append(-floor)
        view = _View(key, run.derived, first, run.waiting)
        fired = set(run.fired)
        mask = self.always | (self.presence if run.result.dose is not None else 0)
        for premise in self.premises:
            horizon = bisect_left(below, -premise.salience)  # the firings before any of a salience below this rule's
            node = premise.node
            if premise.rule.id in fired:
                mask |= node.fixed(view, horizon)
                continue
            blocked = min((stance_at[l] for l in premise.earlier_stances if l in stance_at), default=NEVER)
            if blocked > horizon:
                mask |= node.fixed(view, horizon)
            if blocked == NEVER:  # the analysis reads the rule
                found = node.false(view)
                mask |= node.bits if found is None else found
        return tuple(i for i in range(mask.bit_length()) if mask >> i & 1)


def projector(positions: Tuple[int, ...]):
    """A function giving the characters of a key at `positions`, as a string
    (C's itemgetter and join: as fast as a tuple, and a third of its size)."""
    if len(positions) > 1:
        pick = itemgetter(*positions)
        return lambda key: "".join(pick(key))
    if positions:
        only = positions[0]
        return lambda key: key[only]
    return lambda key: ""


__all__ = ["SupportReader", "projector"]
