"""What the check looks for: conflicts and gaps in each case, as the walk
concludes each layer (`CaseChecks`), and unreachable, redundant and subsumed
rules once the walk has seen where each rule fires (`RuleChecks`)."""

from itertools import product
from typing import Dict, List

from ...core import conditions
from ...core.rulebase import STANCE, RuleBase, RuleSpec
from .findings import Findings
from .space import FactSpace, State, verdict
from .tally import Tally


class CaseChecks:
    """The checks that read one case's conclusions: conflicting stances, doses and
    warning severities, and gaps (no stance, or no regimen where IVIG is given).
    Each carries forward, in the state after a layer, what later layers' checks need."""

    def __init__(self, space: FactSpace, findings: Findings):
        self.space, self.rb, self.findings = space, space.rb, findings

    def conclusions(self, fired: List[RuleSpec], state: State, after: State, layer):
        """The checks of the rules `fired` by a layer over `state` (one combination)."""
        self.stance_conflicts(fired, state, after, layer)
        self.dose_conflicts(fired, state, after)
        self.severity_conflicts(fired, state, after)

    def gaps(self, state: State, layer):
        """Gaps: checked where the layer that should have closed them has run."""
        self.stance_gaps(state, layer)
        self.dose_gaps(state, layer)

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
            self.findings.add(
                "conflict",
                f"rules {stances[0].id} ({stances[0].then['recommend']['stance']}) and "
                f"{pair[0].id} ({pair[0].then['recommend']['stance']}) set different stances "
                f"for one case",
                pair[0],
                state.witness,
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
                self.findings.add(
                    "conflict",
                    f"rules {after.dose[0]} and {rule.id} give different doses for one case",
                    rule,
                    state.witness,
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
                    self.findings.add(
                        "conflict",
                        f"rules {other[0].id} and {rule.id} give warning "
                        f"'{warning['code']}' different severities for one case",
                        rule,
                        state.witness,
                        state.count,
                        ("severity", other[0].id, rule.id),
                    )
                elif warning["code"] in self.space.multi_severity and other[0] is rule:
                    after.warned += ((warning["code"], warning["severity"], rule.id),)

    def stance_gaps(self, state: State, layer):
        """Gap: a case of a diagnosis for which no rule sets a stance, checked once
        the last stance layer has run. A gap belongs to no rule: one finding per
        diagnosis, placed at the diagnosis in the case schema."""
        diagnosis = state.witness["diagnosis"]
        if layer.name == self.space.last_stance and STANCE not in state.derived:
            self.findings.add(
                "gap",
                f"no rule sets a stance for diagnosis '{diagnosis}' in this situation",
                None,
                state.witness,
                state.count,
                ("gap", diagnosis),
            )

    def dose_gaps(self, state: State, layer):
        """Gap: a stance under which IVIG is given, but no rule gives a regimen,
        checked once the last layer has run; reported on the stance's rule."""
        diagnosis = state.witness["diagnosis"]
        if layer.index == len(self.rb.layers) - 1:
            given = [s for s in state.derived.get(STANCE, ()) if s in self.rb.ivig_given]
            if given and state.dose is None:
                self.findings.add(
                    "gap",
                    f"IVIG is {given[0]} for diagnosis '{diagnosis}' (rule {state.stance_rule}) "
                    f"but no rule gives a regimen",
                    self.rb.by_id.get(state.stance_rule),
                    state.witness,
                    state.count,
                    ("dose-gap", diagnosis, given[0]),
                )


class RuleChecks:
    """The checks after the walk, which read where each rule fired (`Tally`)."""

    def __init__(self, space: FactSpace, tally: Tally, findings: Findings):
        self.space, self.rb, self.tally, self.findings = space, space.rb, tally, findings

    def run(self):
        self.unreachable()
        self.redundant()

    def unreachable(self):
        """Unreachable: a rule that fires in none of the combinations walked, and
        why: its condition can never hold (`satisfiable`), or it can but never
        where the rule could fire (an earlier stance layer decides first, or a
        fact it tests is never derived)."""
        for rule in self.rb.rules:
            if self.tally.reach[rule.id]:
                continue
            if satisfiable(rule, self.space.domains, self.rb):
                why = (
                    "its conditions can hold, but never when it could fire: an earlier stance "
                    "layer always decides first, or a fact it tests is never derived"
                )
            else:
                why = "its conditions can never hold together"
            self.findings.add("unreachable", f"rule {rule.id} fires in none of the combinations: {why}", rule, {}, 0)

    def redundant(self):
        """Redundancy and subsumption: a rule that always fires with another that
        concludes at least as much adds nothing (see `_overlap`). One finding
        per rule, against the first such rule in id order."""
        reach, cofire = self.tally.reach, self.tally.cofire
        for rule in self.rb.rules:
            if not reach[rule.id]:
                continue
            for other_id in sorted(cofire.get(rule.id, ()) - {rule.id}):
                overlap = self._overlap(rule, self.rb.by_id[other_id])
                if overlap is None:
                    continue
                kind, how = overlap
                self.findings.add(
                    kind,
                    f"rule {rule.id} is {how} {other_id}: whenever it fires, {other_id} fires and concludes the same",
                    rule,
                    {},
                    reach[rule.id],
                    (kind, rule.id, other_id),
                )
                break

    def _overlap(self, rule: RuleSpec, other: RuleSpec):
        """How `rule` overlaps `other`, which fires whenever it fires: subsumed if
        `other` fires in more combinations (`rule` is the narrower), redundant if
        in as many (an equivalent pair is reported once, on the later rule);
        None if `other` does not conclude everything `rule` does."""
        reach, cofire = self.tally.reach, self.tally.cofire
        if not concludes_all(other, rule):
            return None
        if reach[other.id] > reach[rule.id]:
            return "subsumed", "narrower than"
        if rule.id in cofire.get(other.id, ()) and concludes_all(rule, other) and rule.position < other.position:
            return None  # reported on `other`
        return "redundant", "equivalent to"


def atoms(rule: RuleSpec) -> set:
    """What a rule concludes: facts derived, warnings, a stance, a dose."""
    out = {("derive", k, v) for k, v in (rule.then.get("derive") or {}).items()}
    out |= {("warn", w["code"], w["severity"]) for w in rule.warnings}
    if "recommend" in rule.then:
        out.add(("stance", rule.then["recommend"]["stance"]))
    if "dose" in rule.then:
        out.add(("dose", tuple(sorted(rule.then["dose"].items()))))
    return out


def concludes_all(a: RuleSpec, b: RuleSpec) -> bool:
    """Whether `a` concludes everything `b` does, and shows first where only one is shown."""
    if not atoms(b) <= atoms(a):
        return False
    shown_first = "recommend" in b.then or "dose" in b.then
    return a.salience > b.salience if shown_first else True


def satisfiable(rule: RuleSpec, domains: Dict[str, list], rulebase: RuleBase) -> bool:
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
                    ways.setdefault(tuple(verdict(t, value) for t in tested), value)
            values = list(ways.values())
        else:
            values = list(dict.fromkeys(r.derives[name] for r in rulebase.producers(name)))
        choices.append([[]] + [[v] for v in values])
    for combo in product(*choices):
        table = dict(zip(names, combo))
        if conditions.truth(rule.when, table.__getitem__):
            return True
    return False
