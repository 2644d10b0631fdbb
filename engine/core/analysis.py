"""What the rules could still decide for a case: MYCIN's "skip a rule whose
premise is already false", applied after a run.

Each rule that did not fire is judged in three-valued logic over the case's
known findings and the facts the run derived: *false* (a known value rules
it out), or *undecided* (it waits on an unknown field, directly or through a
derived fact that an undecided rule could still assert). The unknown fields
of the undecided rules are what the result reports as `missing`, and what an
interview would ask next.

The fact space (`domains`) is the set of values each tested field can take,
cut at the rules' own thresholds: the static check walks it, and the
interview reads it to know which answers could change the advice.
"""

from itertools import combinations
from typing import Dict, List, Optional, Set

from . import conditions
from .rulebase import RuleBase, RuleSpec


def undecided_rules(
    rulebase: RuleBase,
    facts: dict,
    derived: Dict[str, list],
    fired: Set[str],
    stance_layers: Set[str],
    rules: Optional[List[RuleSpec]] = None,
    waiting: Optional[Set[str]] = None,
) -> List[RuleSpec]:
    """The rules that did not fire and whose premise is not yet false, in layer order.

    `derived` maps each derived name to the values the run asserted;
    `stance_layers` are the layers in which a stance was set; `rules` limits
    the search (to the rules that can fire for the diagnosis: the others are
    false already). `waiting`, if given (an empty set), receives the derived
    facts read as unknown: those a rule not yet false may still assert.
    """
    rules = rulebase.rules if rules is None else rules
    pending: List[RuleSpec] = []
    pending_ids: Set[str] = set()  # rules told apart by id: RuleSpec's == compares every field, slowly
    unknown_derived: Set[str] = set() if waiting is None else waiting
    lookup = _lookup(rulebase, facts, derived, unknown_derived)
    not_fired = _not_fired_by_layer(rules, fired)

    for layer in rulebase.layers:
        earlier_stance = any(
            l in stance_layers for l in (x.name for x in rulebase.layers if x.sets_stance and x.index < layer.index)
        )
        in_layer = not_fired.get(layer.name, [])
        if layer.sets_stance and earlier_stance:
            continue  # the stance is already set by an earlier layer: these rules cannot fire
        changed = True
        while changed:  # a layer's rules may feed each other
            changed = False
            for rule in in_layer:
                if rule.id in pending_ids or conditions.truth(rule.when, lookup) is not None:
                    continue
                if _moot(rule, derived):
                    continue
                pending.append(rule)
                pending_ids.add(rule.id)
                for name in rule.derives:
                    if not derived.get(name) and name not in unknown_derived:
                        unknown_derived.add(name)
                        changed = True
    return _relevant(rulebase, pending, lookup)


def _not_fired_by_layer(rules: List[RuleSpec], fired: Set[str]) -> Dict[str, List[RuleSpec]]:
    """The rules that did not fire, by layer, each layer's in the order given."""
    out: Dict[str, List[RuleSpec]] = {}
    for rule in rules:
        if rule.id not in fired:
            out.setdefault(rule.layer, []).append(rule)
    return out


def _lookup(rulebase: RuleBase, facts: dict, derived: Dict[str, list], unknown_derived: Set[str]):
    """Three-valued lookup over a run: a case field is its value or unknown; a
    derived fact its values, unknown while a rule still undecided may assert
    it, absent otherwise."""

    fields = rulebase.schema.fields

    def lookup(name):
        if name in fields:
            return [facts[name]] if name in facts else conditions.UNKNOWN
        values = derived.get(name, [])
        return conditions.UNKNOWN if not values and name in unknown_derived else values

    return lookup


def _pursued(cond, lookup):
    """The tests of an undecided condition worth finding out now, in MYCIN's
    order: the premises of an `all` are pursued one at a time, in the order
    written, and the next only once the one before is settled. So anti-IgA
    antibodies wait for IgA deficiency, and the safety fields of a patient
    who may not receive IVIG wait until it is known whether they will (what
    decides `receives_ivig` comes first). In an `any`, every open branch."""
    if conditions.truth(cond, lookup) is not None:
        return
    if isinstance(cond, conditions.Test):
        yield cond
    elif isinstance(cond, conditions.Not):
        yield from _pursued(cond.item, lookup)
    elif isinstance(cond, conditions.AllOf):
        for item in cond.items:
            found = list(_pursued(item, lookup))
            if found:
                yield from found
                return
    else:
        for item in cond.items:
            yield from _pursued(item, lookup)


def _moot(rule: RuleSpec, derived: Dict[str, list]) -> bool:
    """A rule that only derives facts the run already holds cannot change the
    answer: asking for its fields would be a question without consequence
    (receives_ivig already derived from the stance makes ivig_planned moot).
    Nor is a rule that asks nothing of its own (`ask: false`) worth pursuing."""
    if not rule.ask:
        return True
    if any(k in rule.then for k in ("recommend", "dose", "warn")):
        return False
    return all(value in derived.get(name, []) for name, value in rule.derives.items())


def _relevant(rulebase: RuleBase, pending: List[RuleSpec], lookup) -> List[RuleSpec]:
    """Keep the undecided rules that could still change the answer.

    A rule that sets the stance, a dose or a warning matters; a rule that
    only derives a fact matters if an undecided rule that matters tests it.
    (Age is not missing for a patient who will not receive IVIG, though it
    would still decide whether they are "elderly".)
    """

    def pursued(rule):
        return {t.name for t in _pursued(rule.when, lookup)}

    keep = {
        r.id for r in pending if any(k in r.then for k in ("recommend", "dose", "warn"))
    }  # by id, as in undecided_rules
    names = set().union(*(pursued(r) for r in pending if r.id in keep))
    changed = True
    while changed:
        changed = False
        for rule in pending:
            if rule.id not in keep and names & set(rule.derives):
                keep.add(rule.id)
                names |= pursued(rule)
                changed = True
    return [r for r in pending if r.id in keep]


def missing_fields(
    rulebase: RuleBase, facts: dict, undecided: List[RuleSpec], also=(), derived: Optional[Dict[str, list]] = None
) -> List[str]:
    """The unknown case fields worth finding out now for the undecided rules
    (and `also`), in schema order: a field in a branch already decided is left
    out (a non-LEMS patient is never asked whether LEMS is refractory), and so
    is one behind a conclusion not yet reached (see `_pursued`). `derived`:
    the facts the run derived.

    Its lookup is not `undecided_rules`' own: it also reads the fields a
    constraint settles (so the question behind one is asked), and reads as
    unknown only what the undecided rules may still derive. One lookup for
    both would change `missing` (tests/core/test_analysis.py)."""
    derived = derived or {}
    waiting = {n for r in undecided for n in r.derives if not derived.get(n)}
    implied = rulebase.schema.implied(facts)  # settled by a constraint: never worth finding out
    lookup = _lookup(rulebase, {**facts, **implied}, derived, waiting)
    fields = rulebase.schema.fields
    wanted = {
        t.name
        for r in undecided
        for t in _pursued(r.when, lookup)
        if t.name in fields and t.name not in facts and t.name not in implied
    }
    wanted |= {name for name in also if name not in facts and name not in implied}
    return [name for name in fields if name in wanted]


def may_hold_for(cond: conditions.Condition, diagnosis) -> bool:
    """Whether a condition can hold for a patient with this diagnosis, all else unknown (every
    other field and every derived fact)."""
    return conditions.truth(cond, lambda name: [diagnosis] if name == "diagnosis" else conditions.UNKNOWN) is not False


def live_rules(rulebase: RuleBase, diagnosis: str) -> List[RuleSpec]:
    """The rules that can fire for a patient with this diagnosis, all else unknown.

    A derived fact that no such rule asserts is absent, so a rule that needs
    it (e.g. CIDP's rules for a GBS patient) is ruled out too.
    """
    live = list(rulebase.rules)
    while True:
        made = {name for rule in live for name in rule.derives}

        def lookup(name, made=made):
            if name == "diagnosis":
                return [diagnosis]
            if name in rulebase.schema.fields or name in made:
                return conditions.UNKNOWN
            return []

        still = [r for r in live if conditions.truth(r.when, lookup) is not False]
        if len(still) == len(live):
            return live
        live = still


def fields_behind(rulebase: RuleBase, rule: RuleSpec, seen=None) -> set:
    """The case fields a rule depends on, directly or through derived facts."""
    seen = seen if seen is not None else set()
    out = set()
    for test in conditions.tests(rule.when):
        if test.name in rulebase.schema.fields:
            out.add(test.name)
        elif test.name not in seen:
            seen.add(test.name)
            for producer in rulebase.producers(test.name):
                out |= fields_behind(rulebase, producer, seen)
    return out


# -- the fact space ----------------------------------------------------------


def domains(rulebase: RuleBase) -> Dict[str, list]:
    """The values each tested field can take, cut at the thresholds the rules use.

    ``None`` (unknown) is always one of them. Numbers get a value below,
    at, between and above the thresholds, inside the schema's range; lists
    every subset of the values the rules test.
    """
    tested: Dict[str, set] = {}
    for rule in rulebase.rules:
        for test in conditions.tests(rule.when):
            if test.name not in rulebase.schema.fields:
                continue
            tested.setdefault(test.name, set()).update(test.operands)
    out = {}
    for name, operands in tested.items():
        spec = rulebase.schema.fields[name]
        values: list
        if spec.type == "boolean":
            values = [True, False]
        elif spec.type == "enum":
            values = list(spec.values)
        elif spec.type == "list":
            used = [v for v in spec.values if v in operands]
            values = [tuple(sorted(c)) for n in range(len(used) + 1) for c in combinations(used, n)]
        elif spec.type in ("number", "integer"):
            values = _cuts(sorted(operands), spec)
        else:
            values = ["(any text)"]
        out[name] = [None] + values  # None: the field is absent from the case
    return out


def _cuts(thresholds, spec) -> list:
    low = spec.min if spec.min is not None else (thresholds[0] - 1 if thresholds else 0)
    high = spec.max if spec.max is not None else (thresholds[-1] + 1 if thresholds else 1)
    points = [low] + list(thresholds) + [high]
    values = []
    for a, b in zip(points, points[1:]):
        if b > a:
            middle = (a + b) // 2 if spec.type == "integer" else (a + b) / 2
            if a < middle < b:
                values.append(middle)
        values.append(b)
    values = [low] + values
    return sorted({v for v in values if (spec.min is None or v >= spec.min) and (spec.max is None or v <= spec.max)})
