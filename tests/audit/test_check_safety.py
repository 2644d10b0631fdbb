"""Safety before efficacy, over the whole fact space.

The adverse events of the review (TR L159-163, claims C48-C53) belong to
IVIG, not to a disease: every patient who receives or is about to receive
IVIG must get every warning that applies. This test walks every diagnosis's
fact space exhaustively, as `ivig audit check` does (its layer-by-layer
walk, which tests/audit/test_views.py holds to the experta engine), and checks the
requirements below in every state the walk reaches. The requirements are
written here, from the review, independently of the rules they check.
"""

import re
import shutil

import pytest
import yaml
from helpers import ROOT

from ivig_advisor.engine import RuleBase
from ivig_advisor.engine.audit.check import Walk
from ivig_advisor.engine.core import conditions
from ivig_advisor.engine.core.rulebase import SEVERITIES, STANCE

# Stances after which IVIG may be given: not-effective advises against it, and
# out-of-scope says nothing; those patients are warned only when the case says
# IVIG is planned (ivig_planned).
OFF_THE_TABLE = {"not-effective", "out-of-scope"}

ANY = object()  # a field the walk did not split on: the state stands for all its values


def _is(value, wanted):
    """Whether a field's value in a state can be `wanted` (ANY: it can)."""
    return value is ANY or value == wanted


# (what, when it applies, warning code, lowest acceptable severity, the review's grade of the adverse
# event); checked in the states of the last layer, where these fields are exact. What applies to every
# infusion is said among the general precautions (info); what is about this patient is louder.
REQUIREMENTS = [
    (
        "any patient given IVIG: infusion-rate reactions, mild (C48)",
        lambda f: True,
        "infusion-reactions",
        "info",
        "mild",
    ),
    ("any patient given IVIG: skin reactions, moderate (C50)", lambda f: True, "skin-reactions", "info", "moderate"),
    (
        "any patient given IVIG without migraine: aseptic meningitis, moderate (C49)",
        lambda f: not _is(f("migraine"), True),
        "aseptic-meningitis",
        "info",
        "moderate",
    ),
    (
        "a history of migraine: aseptic meningitis especially, moderate (C49)",
        lambda f: _is(f("migraine"), True),
        "aseptic-meningitis-migraine",
        "warning",
        "moderate",
    ),
    (
        "severe IgA deficiency with anti-IgA antibodies (C51)",
        lambda f: _is(f("iga_deficiency"), True) and _is(f("anti_iga_antibodies"), True),
        "anaphylaxis-iga",
        "critical",
        "severe",
    ),
    (
        "severe IgA deficiency, antibodies unknown (C51, A30)",
        lambda f: _is(f("iga_deficiency"), True) and _is(f("anti_iga_antibodies"), None),
        "anaphylaxis-iga",
        "warning",
        "severe",
    ),
    (
        "anti-IgA antibodies, IgA level unknown (C51, A30 the other way)",
        lambda f: _is(f("iga_deficiency"), None) and _is(f("anti_iga_antibodies"), True),
        "anaphylaxis-iga",
        "warning",
        "severe",
    ),
    (
        "kidney disease with volume depletion (C52)",
        lambda f: _is(f("renal_disease"), True) and _is(f("volume_depletion"), True),
        "renal-failure",
        "critical",
        "severe",
    ),
    (
        "kidney disease, volume status unknown (C52, A31)",
        lambda f: _is(f("renal_disease"), True) and _is(f("volume_depletion"), None),
        "renal-failure",
        "warning",
        "severe",
    ),
    (
        "kidney disease without volume depletion (C52, A31)",
        lambda f: _is(f("renal_disease"), True),
        "renal-failure",
        "info",
        "severe",
    ),
    ("in the thrombosis risk group (C53)", lambda f: f(RISK_GROUP) is True, "thrombosis", "warning", "not-graded"),
]
ADVERSE_EVENTS = {code for _, _, code, _, _ in REQUIREMENTS}
RECEIVES = "receives_ivig"  # the derived fact that says the patient is given IVIG (rules/scope.yaml)

# The thrombosis risk group is read in the first layer and its fields are
# merged away after it (the walk keeps one history per merged state), so it
# is checked in two steps: in the first layer, each risk factor must put the
# patient in the group; in the last, the group must be warned.
RISK_GROUP = "thrombosis_risk"
RISK_FACTORS = [
    ("elderly, 65 or more (A29)", lambda f: f("age") is ANY or any(v is not None and v >= 65 for v in f("age"))),
    ("diabetes", lambda f: _is(f("diabetes"), True)),
    ("thrombocytopenia, as translated", lambda f: _is(f("thrombocytopenia"), True)),
    ("thrombocytosis, a plausible alternative reading (A28)", lambda f: _is(f("thrombocytosis"), True)),
    ("hypergammaglobulinemia", lambda f: _is(f("hypergammaglobulinemia"), True)),
]


class SafetyWalk(Walk):
    """The verifier's walk, checking the requirements on every input it fires rules on.

    The walk merges histories that no later rule can tell apart, and inside
    the last layer it merges inputs that fire the same rules, keeping one as
    the witness; so the check runs where each input is still whole: in
    `fire`, once per distinct input of each group of rules, with every field
    the group reads split (a field absent was not needed: any value).
    """

    def __init__(self, rulebase):
        super().__init__(rulebase)
        self.first, self.last = rulebase.layers[0].name, rulebase.layers[-1].name
        self.violations = []
        self.checked = {what: 0 for what, *_ in REQUIREMENTS + RISK_FACTORS}
        self.quiet = 0

    def after_layer(self, state, layer):
        """Where `receives_ivig` is decided: it holds exactly for the patients given IVIG (the
        requirements above are checked only where a warning rule can fire, so a patient left
        off the table by mistake would never be seen there)."""
        super().after_layer(state, layer)
        if not any(RECEIVES in r.derives for r in self.rb.rules if r.layer == layer.name):
            return
        stances = state.derived.get(STANCE, ())
        stance = stances[0] if stances else None
        planned = state.assign.get("ivig_planned", state.witness.get("ivig_planned", ANY))
        if planned is ANY:
            return
        given = planned is True or (stance is not None and stance not in OFF_THE_TABLE and planned is not False)
        if given != bool(state.derived.get(RECEIVES)):
            self.violations.append(f"receives IVIG should be {given} for {state.witness} (stance {stance})")

    def fire(self, group, assign, before):
        fired, derived, need = super().fire(group, assign, before)
        rules = getattr(group, "rules", group)  # a group of rules, or the list of them
        if need is None and rules[0].layer == self.first:
            self.check_risk_group(assign, rules, derived)
        if need is None and rules[0].layer == self.last:
            self.check(assign, rules, derived, fired)
        return fired, derived, need

    def values(self, assign, name):
        """A number's possible values: the walk holds an interval of its cut
        domain, (low, high) positions, or one value."""
        value = assign.get(name, ANY)
        if value is ANY:
            return ANY
        if isinstance(value, tuple) and name in getattr(self, "numeric", ()):
            return self.domains[name][value[0] : value[1]]
        return [value]

    def check_risk_group(self, assign, rules, derived):
        if not any(RISK_GROUP in r.derives for r in rules):
            return

        def field(name):
            return self.values(assign, name) if name == "age" else assign.get(name, ANY)

        for what, applies in RISK_FACTORS:
            if applies(field):
                self.checked[what] += 1
                if not derived.get(RISK_GROUP):
                    self.violations.append(f"{what}: not in the thrombosis risk group: {assign}")

    def check(self, assign, rules, derived, fired):
        def field(name):
            if name == RISK_GROUP:
                return bool(derived.get(RISK_GROUP))
            return assign.get(name, ANY)

        codes = {w["code"] for r in rules for w in r.warnings}
        warned, grades = {}, {}
        for rule in fired:
            for w in rule.warnings:
                level = SEVERITIES.index(w["severity"])
                warned[w["code"]] = min(level, warned.get(w["code"], level))
                grades.setdefault(w["code"], set()).add(w["grade"])
        stances = derived.get(STANCE, [])
        stance = stances[0] if stances else None
        planned = field("ivig_planned")
        if planned is True or (stance not in OFF_THE_TABLE and planned is not False):
            for what, applies, code, lowest, grade in REQUIREMENTS:
                if code in codes and applies(field):
                    self.checked[what] += 1
                    if warned.get(code, len(SEVERITIES)) > SEVERITIES.index(lowest):
                        self.violations.append(f"{what}: no {lowest} '{code}' for {assign} (stance {stance})")
                    elif grades.get(code) != {grade}:
                        self.violations.append(f"{what}: '{code}' graded {grades.get(code)}, not {grade}, for {assign}")
        elif stance is not None and stance not in OFF_THE_TABLE:  # IVIG not planned: no adverse event, one line
            self.quiet += 1
            given = ADVERSE_EVENTS & set(warned)
            if given:
                self.violations.append(f"adverse-event warnings {sorted(given)} with IVIG not planned: {assign}")
            if "adverse-events-not-shown" in codes and "adverse-events-not-shown" not in warned:
                self.violations.append(f"IVIG not planned, and no line says the warnings are not shown: {assign}")
        elif planned is ANY:
            if codes & ADVERSE_EVENTS:
                self.violations.append(f"IVIG off the table, but ivig_planned never looked at: {assign}")
        else:
            self.quiet += 1
            given = ADVERSE_EVENTS & set(warned)
            if given:
                self.violations.append(f"adverse-event warnings {sorted(given)} for a patient not given IVIG: {assign}")


def walk(rulebase):
    checker = SafetyWalk(rulebase)
    checker.run()
    # the risk group must lead to the warning: if no rule reads it, the walk
    # drops it after the first layer and the last layer could not see it
    if not any(t.name == RISK_GROUP for r in rulebase.rules if r.warnings for t in conditions.tests(r.when)):
        checker.violations.append(f"no warning rule reads the thrombosis risk group ({RISK_GROUP})")
    given = {w["code"] for r in rulebase.rules if r.layer == checker.last for w in r.warnings}
    for what, _, code, _, _ in REQUIREMENTS:  # a requirement is checked where its warning is given
        if code not in given:
            checker.violations.append(f"{what}: no rule gives '{code}'")
    assert all(rule.layer == checker.last for rule in rulebase.rules if rule.warnings), (
        "a warning outside the last layer: the walk checks the last layer only"
    )
    return checker


def test_no_patient_given_ivig_goes_without_a_warning_that_applies(rulebase):
    checker = walk(rulebase)
    assert checker.violations == []
    # not vacuous: every requirement met in some state, and some patients not given IVIG seen
    assert all(checker.checked.values()), checker.checked
    assert checker.quiet > 0


def _mutated(tmp_path, change):
    target = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", target)
    # without its later evidence, which names the rules it speaks to (a dropped rule would fail the
    # load); later evidence never changes a warning the rules give, which is what the walk checks
    manifest = target / "rulebase.yaml"
    manifest.write_text(re.sub(r"(?m)^later_evidence:.*\n", "", manifest.read_text(encoding="utf-8")), encoding="utf-8")
    path = target / "safety.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return RuleBase.load(target)


def _drop(rule_id):
    def change(data):
        data["rules"] = [r for r in data["rules"] if r["id"] != rule_id]

    return change


def _retarget(rule_id, when):
    def change(data):
        next(r for r in data["rules"] if r["id"] == rule_id)["when"] = when

    return change


def _regrade(rule_id, grade):
    def change(data):
        next(r for r in data["rules"] if r["id"] == rule_id)["then"]["warn"]["grade"] = grade

    return change


def _relevel(rule_id, severity):
    def change(data):
        next(r for r in data["rules"] if r["id"] == rule_id)["then"]["warn"]["severity"] = severity

    return change


@pytest.mark.parametrize(
    "change, expected",
    [
        (_drop("thrombosis-risk-thrombocytosis"), "thrombocytosis"),
        (_drop("thrombosis"), "thrombosis risk group"),
        (_drop("aseptic-meningitis-any-patient"), "aseptic meningitis"),
        (
            _retarget(
                "anaphylaxis-iga",
                {
                    "all": [
                        {"receives_ivig": True},
                        {"iga_deficiency": True},
                        {"anti_iga_antibodies": True},
                        {"migraine": True},
                    ]
                },
            ),
            "anti-IgA",
        ),
        (_drop("anaphylaxis-iga-deficiency-unknown"), "IgA level unknown"),
        (_drop("renal-disease-without-depletion"), "kidney disease without volume depletion"),
        (_regrade("skin-reactions", "mild"), "skin reactions, moderate"),
        (_relevel("aseptic-meningitis", "info"), "migraine"),
    ],
    ids=[
        "risk factor dropped",
        "group warning dropped",
        "general warning dropped",
        "warning narrowed",
        "mirror rule dropped",
        "info rule dropped",
        "grade changed",
        "migraine made quiet",
    ],
)
def test_the_walk_finds_a_missing_warning(tmp_path, change, expected):
    checker = walk(_mutated(tmp_path, change))
    assert any(expected in v for v in checker.violations), checker.violations[:3]


def _scope_edited(tmp_path, old, new):
    """The shipped rules with one text of scope.yaml (which must be there) replaced once."""
    target = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", target)
    scope = target / "scope.yaml"
    text = scope.read_text(encoding="utf-8")
    assert old in text
    scope.write_text(text.replace(old, new, 1), encoding="utf-8")
    return RuleBase.load(target)


def test_the_walk_finds_warnings_gated_on_efficacy_again(tmp_path):
    """The defect of issue 10: warnings only where the stance gives IVIG."""
    checker = walk(
        _scope_edited(
            tmp_path,
            "        - stance: {not_in: [not-effective, out-of-scope]}\n        - any:",
            "        - stance: {in: [first-line, second-line, trial-justified]}\n        - any:",
        )
    )
    assert any("not-established" in v for v in checker.violations), checker.violations[:3]


def test_the_walk_finds_warnings_for_a_patient_with_ivig_not_planned(tmp_path):
    """The defect of issue 26: ivig_planned false was ignored where the stance keeps IVIG on the table."""
    either = "            - ivig_planned: {known: false}\n            - ivig_planned: true\n"
    checker = walk(_scope_edited(tmp_path, either, either + "            - ivig_planned: false\n"))
    assert any("receives IVIG should be False" in v and "'ivig_planned': False" in v for v in checker.violations), (
        checker.violations[:3]
    )
