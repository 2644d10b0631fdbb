"""Two rule bases compared over the whole fact space (`compare`): every region of
cases where their stance, dose or warnings differ, with how many combinations it
holds and one case from it. The exhaustive half of `ivig audit diff`, and what
`ivig audit check --against` reads for safety regressions (audit/impact.py).

It is the check's own walk (walk.py), run once over a *pair* rule base
(`pair_rulebase`) that holds both sides' rules, each side's layers interleaved
with the other's, over cut domains common to both (a number is cut wherever
either side's tests cut it). The two sides share the case's fields and nothing
else: each rule's derived facts are renamed for its side, and what a rule
concludes (stance, dose, warnings) becomes derived facts of its side that the
walk keeps to the end. The engine's one rule about layers, that a stance set by
an earlier stance layer is final, is written out as a condition of each later
stance rule (its side's earlier stance layers set none), as the compiled rule
carries it (core/compiler.py). So the walk splits a field where either side
needs it and merges states that neither side can tell apart: its final states
are the regions where the base concludes one thing and this rule base another,
or the same, exactly (see the package doc). Each region's witness is one case
of it, which the real engine can be run on; audit/impact.py does, and holds the
walk to it.
"""

import copy
from dataclasses import dataclass, replace
from math import prod
from types import SimpleNamespace
from typing import Dict, List, Optional, Tuple

from ...core import conditions
from ...core.analysis import domains
from ...core.rulebase import RuleBase, RuleSpec
from ...core.rulespec import STANCE, Layer
from ...core.words import plain as _plain
from .space import State, constrained_fields, live_fields
from .walk import Walk

SIDES = ("base", "this")


def _stance(side: str) -> str:
    return f"{side}:{STANCE}"


def _stance_set(side: str, layer: str) -> str:
    return f"{side}:stance-set-in:{layer}"


def _stance_by(side: str) -> str:
    return f"{side}:stance-by"  # (salience, stance) of each stance rule fired: the first fired wins


def _dose(side: str) -> str:
    return f"{side}:dose"  # (salience, dose) of each dose rule fired


def _warning(side: str, code: str) -> str:
    return f"{side}:warn:{code}"


CONFLICTS = ("rule-conflict", "dose-conflict")  # the engine's warnings that the rules disagree


@dataclass(frozen=True)
class Conclusion:
    """What one rule base concludes for a region, as the engine shows it (core/advisor.py): the
    stance of the first stance rule fired (None: no rule set one), the first dose under a stance
    that gives IVIG, and the warnings as (code, severity) pairs, the later evidence's harm and the
    engine's own conflict warnings among them."""

    stance: Optional[str]
    dose: Optional[tuple]  # as sorted (key, value) pairs
    warnings: Tuple[Tuple[str, str], ...]


@dataclass
class Region:
    """Cases of one diagnosis where the base concludes `base` and this rule base `this`."""

    diagnosis: str
    base: Conclusion
    this: Conclusion
    combinations: int
    witness: dict  # field -> value (None: unknown): one case of the region

    @property
    def differs(self) -> bool:
        return self.base != self.this


def _renamed(cond, side: str, fields) -> conditions.Condition:
    """A condition with each derived name it tests renamed for its side (case fields are shared)."""
    if isinstance(cond, conditions.Test):
        return cond if cond.name in fields else replace(cond, name=f"{side}:{cond.name}")
    if isinstance(cond, conditions.Not):
        return replace(cond, item=_renamed(cond.item, side, fields))
    return replace(cond, items=tuple(_renamed(c, side, fields) for c in cond.items))


def meaning(rule: RuleSpec) -> tuple:
    """What decides when a rule fires and what it concludes, and nothing of where it is written:
    its id, layer, salience, condition (without line numbers) and action (a named regimen read in)."""

    return (rule.id, rule.layer, rule.salience, conditions.identity(rule.when), repr(_plain(rule.then)))


def twins(base: RuleBase, this: RuleBase) -> Dict[str, set]:
    """The rules whose two copies always agree, and the derived names only they make.

    A rule is a twin where it means the same on both sides (`meaning`), neither recommends nor
    gives a dose, reads only case fields and names only twins make, makes no name and gives no
    warning code that a rule other than a twin makes or gives on either side: then its copies
    fire in the same cases and conclude alike, so the pair holds it once, as a rule of neither
    side, and its warnings are left out of both sides' conclusions (they could not differ).
    Found to a fixed point; with different layers, none."""
    empty: Dict[str, set] = {"rules": set(), "names": set()}  # names: made by twins only
    if [(l.name, l.sets_stance) for l in base.layers] != [(l.name, l.sets_stance) for l in this.layers]:
        return empty
    fields = this.schema.fields
    same = {r.id for r in this.rules if r.id in base.by_id and meaning(base.by_id[r.id]) == meaning(r)}
    # the walk checks the schema's constraints on the fields split so far, so a rule that tests a
    # constrained field keeps its copies: without them the field would be counted but never split
    constrained = constrained_fields(this.schema)
    same = {
        i
        for i in same
        if not ({"recommend", "dose"} & set(this.by_id[i].then))
        and not any(t.name in constrained for t in conditions.tests(this.by_id[i].when))
    }
    rules = [*base.rules, *this.rules]
    while True:
        made_by_others = {n for r in rules if r.id not in same for n in r.derives}
        codes_of_others = {w["code"] for r in rules if r.id not in same for w in r.warnings}
        kept = {
            i
            for i in same
            if not any(t.name not in fields and t.name in made_by_others for t in conditions.tests(this.by_id[i].when))
            and not ({w["code"] for w in this.by_id[i].warnings} & codes_of_others)
            and not (set(this.by_id[i].derives) & made_by_others)
        }
        if kept == same:
            made = {n for i in same for n in this.by_id[i].derives}
            return {"rules": same, "names": made - made_by_others}
        same = kept


def _side_rule(rule: RuleSpec, side: str, rulebase: RuleBase, layer: str, shared: set) -> RuleSpec:
    """One rule on its side of the pair: tests and derived facts renamed, and what it concludes as
    derived facts of its side; a stance rule of a later stance layer fires only where no earlier
    stance layer of its side set a stance."""
    fields = rulebase.schema.fields
    when = _renamed(rule.when, side, set(fields) | shared)
    derive = {f"{side}:{k}": v for k, v in (rule.then.get("derive") or {}).items()}
    if "recommend" in rule.then:
        derive[_stance(side)] = rule.then["recommend"]["stance"]
        derive[_stance_by(side)] = (rule.salience, rule.then["recommend"]["stance"])
        derive[_stance_set(side, rule.layer)] = True
        earlier = [l.name for l in rulebase.layers if l.sets_stance and l.index < rulebase.layer(rule.layer).index]
        if earlier:
            final = tuple(conditions.Test(_stance_set(side, name), "known", False) for name in earlier)
            when = conditions.AllOf((when, *final))
    if "dose" in rule.then:
        derive[_dose(side)] = (rule.salience, tuple(sorted(rule.then["dose"].items())))
    for w in rule.warnings:
        derive[_warning(side, w["code"])] = w["severity"]
    return replace(rule, id=f"{side}:{rule.id}", layer=layer, when=when, then={"derive": derive})


LATER = "later-evidence"  # the pair's last layer: the later evidence's harm findings, after every rule


def _harm_rules(rulebase: RuleBase, side: str, shared: set) -> List[RuleSpec]:
    """The later evidence's harm findings of one side as rules of the pair's last layer: each
    entry's situation (read after the rules, as core/attach.py reads it) gives its warning."""
    fields = set(rulebase.schema.fields) | shared
    return [
        RuleSpec(
            id=f"{side}:later:{entry.id}",
            title=entry.title,
            layer=LATER,
            when=_renamed(entry.when, side, fields),
            then={"derive": {_warning(side, entry.harm["code"]): entry.harm["severity"]}},
            basis="review",
            file=entry.file,
            line=entry.line,
            topic=entry.topic,
        )
        for entry in rulebase.later.live()
        if entry.harm
    ]


def harm_meaning(rulebase: RuleBase) -> set:
    """What decides the later evidence's harm findings: each live entry's situation and finding."""
    return {(e.id, repr(conditions.identity(e.when)), repr(_plain(e.harm))) for e in rulebase.later.live() if e.harm}


def pair_rulebase(base: RuleBase, this: RuleBase) -> RuleBase:
    """Both rule bases as one, for the walk (see the module doc), none of its layers a stance layer
    to the walk. Where the two have the same layers, each layer holds both sides' rules, so that a
    field both sides test is split once, in the layer that reads it, and dropped after it; else the
    layers of the two are interleaved (the base's first of each pair)."""
    sides = {"base": base, "this": this}
    twin = twins(base, this)
    if [l.name for l in base.layers] == [l.name for l in this.layers]:
        pair_layers = [Layer(l.name, False, l.help, l.index) for l in this.layers]

        def layer_of(side: str, name: str) -> str:
            return name

    else:
        layers = sorted(
            ((layer.index, n, side, layer) for n, side in enumerate(SIDES) for layer in sides[side].layers),
            key=lambda item: item[:2],
        )
        pair_layers = [
            Layer(f"{side}:{layer.name}", False, layer.help, i) for i, (_, _, side, layer) in enumerate(layers)
        ]

        def layer_of(side: str, name: str) -> str:
            return f"{side}:{name}"

    pair_layers.append(Layer(LATER, False, "The later evidence's harm findings.", len(pair_layers)))
    rules = []
    for side in SIDES:
        rb = sides[side]
        rules += [
            _side_rule(rule, side, rb, layer_of(side, rule.layer), twin["names"])
            for rule in rb.rules
            if rule.id not in twin["rules"]
        ]
        rules += _harm_rules(rb, side, twin["names"])
    # a twin that makes a fact some other rule reads is held once, in the base's layer; its
    # facts keep their own names, which both sides' rules read (`_renamed` leaves them alone)
    readers = {t.name for r in rules for t in conditions.tests(r.when)}
    for rule in this.rules:
        if rule.id in twin["rules"] and set(rule.derives) & readers:
            then = {"derive": dict(rule.then.get("derive") or {})}
            rules.append(replace(rule, id=f"both:{rule.id}", layer=layer_of("base", rule.layer), then=then))
    pair = copy.copy(this)
    pair.layers, pair.rules, pair.by_id = pair_layers, rules, {r.id: r for r in rules}
    return pair


def shared_domains(base: RuleBase, this: RuleBase) -> Dict[str, list]:
    """Each field's values cut wherever either rule base's tests cut it (the schema is the same)."""
    return domains(SimpleNamespace(rules=list(base.rules) + list(this.rules), schema=this.schema))


class _PairWalk(Walk):
    """The walk over a pair rule base: the check's walk, keeping each side's conclusions to the end."""

    def __init__(self, pair: RuleBase, shared: dict):
        super().__init__(pair, shared=shared)
        kept = {name for rule in pair.rules for name in rule.derives if _concluded(name)}
        for name in self.space.seen_after:
            self.space.seen_after[name] |= kept

    def after_layer(self, state: State, layer):
        """No gap to check: the pair's layers set no stance (and overriding this hook turns off the
        folding of quiet groups, which would drop the warnings it keeps)."""

    def final_states(self, diagnosis: str, total: int) -> List[State]:
        """Every layer of the pair, for one diagnosis of `total` combinations; the states after the last."""
        self._prepare(diagnosis)
        self.tally.start_diagnosis()
        states = [State({"diagnosis": diagnosis}, {}, total, {"diagnosis": diagnosis})]
        for layer in self.rb.layers:
            states = self.walk_layer(states, layer)
        self.tally.end_diagnosis()
        return states


def _concluded(name: str) -> bool:
    """Whether a derived name of the pair is one of a side's conclusions."""
    return any(name in (_stance_by(s), _dose(s)) or name.startswith(f"{s}:warn:") for s in SIDES)


def conclusion(state: State, side: str, gives_ivig: Dict[str, bool]) -> Conclusion:
    """What one side concludes in a final state of the pair's walk, as its engine shows it: the
    first stance and dose fired (by salience, as the walk and the engine fire them), a dose only
    under a stance that gives IVIG (`gives_ivig`: the side's stances), and a critical conflict
    warning where the stances, or the doses shown, disagree."""
    derived = state.derived
    prefix = f"{side}:warn:"
    warnings = {(name[len(prefix) :], v) for name, values in derived.items() if name.startswith(prefix) for v in values}
    stances, doses = derived.get(_stance_by(side), ()), derived.get(_dose(side), ())
    stance = max(stances, key=lambda fired: fired[0])[1] if stances else None
    if len({s for _, s in stances}) > 1:
        warnings.add(("rule-conflict", "critical"))
    dose = None
    if doses and stance is not None and gives_ivig.get(stance):
        dose = max(doses, key=lambda fired: fired[0])[1]
        if len({d for _, d in doses}) > 1:
            warnings.add(("dose-conflict", "critical"))
    return Conclusion(stance, dose, tuple(sorted(warnings)))


def compare(base: RuleBase, this: RuleBase, diagnoses: Optional[List[str]] = None) -> List[Region]:
    """Every region of the fact space, per diagnosis, with what each rule base concludes
    in it (see the module doc); regions where both conclude alike included."""
    shared = shared_domains(base, this)
    walk = _PairWalk(pair_rulebase(base, this), shared)
    regions: List[Region] = []
    for diagnosis in this.schema.fields["diagnosis"].values if diagnoses is None else diagnoses:
        # the combinations of the fields either rule base tests (as `audit check` counts them), though
        # the pair leaves out the twins and what only they test: those fields are never split
        names = {name for rb in (base, this) for name in live_fields(rb, diagnosis, shared)}
        total = prod(len(shared[n]) for n in names)
        regions += _regions(diagnosis, walk.final_states(diagnosis, total), base.stances, this.stances)
    return regions


def _regions(diagnosis: str, states: List[State], base_gives: dict, this_gives: dict) -> List[Region]:
    """The final states as regions, one per pair of conclusions (counts add up, the first keeps
    its witness)."""
    out: Dict[tuple, Region] = {}
    for state in states:
        key = (conclusion(state, "base", base_gives), conclusion(state, "this", this_gives))
        if key in out:
            out[key].combinations += state.count
        else:
            out[key] = Region(diagnosis, key[0], key[1], state.count, dict(state.witness))
    return list(out.values())
