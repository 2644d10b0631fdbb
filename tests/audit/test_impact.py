"""Change impact over every patient (issue 29): `audit check --against BASE` and `audit diff`
walk two rule bases together over the whole fact space; a safety regression is a finding, with
a representative patient, until a reviewer acknowledges it in the review log."""

import json
import subprocess
from collections import Counter

import pytest
import yaml
from helpers import ROOT, git, mutate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ivig_advisor.engine import Advisor, RuleBase
from ivig_advisor.engine.audit.check import verify
from ivig_advisor.engine.audit.check.compare import compare, shared_domains, twins
from ivig_advisor.engine.audit.impact import _all_warnings, impact
from ivig_advisor.engine.audit.rulediff import rule_changes
from ivig_advisor.engine.core import conditions

SHIPPED = str(ROOT / "rules")

# the three edits the issue names, and what each must be found as
LOWER_A_CRITICAL = ("mmn.yaml", "        severity: critical", "        severity: warning")
RAISE_THE_AGE = ("safety.yaml", "when: {age: {ge: 65}}", "when: {age: {ge: 70}}")
DROP_A_RISK_FACTOR = ("safety.yaml", "        - diabetes: true\n", "")


def check_against(run_cli, rules, against=SHIPPED, *more):
    shown = run_cli("audit", "check", "--rules", str(rules), "--against", against, "--format", "json", *more)
    return shown.exit_code, json.loads(shown.stdout)


def regressions(data) -> list:
    return [f for f in data["findings"] if f["kind"] == "regression"]


@pytest.mark.parametrize(
    "edit, words, patient",
    [
        (LOWER_A_CRITICAL, "severity lowered: avoid-corticosteroids: critical -> warning", {"diagnosis": "mmn"}),
        (RAISE_THE_AGE, "warning narrowed (no longer given to these patients): thrombosis: warning -> (none)", {}),
        (DROP_A_RISK_FACTOR, "thrombosis: warning -> (none)", {"diabetes": True}),
    ],
    ids=["critical lowered to warning", "age threshold raised by 5", "risk factor dropped"],
)
def test_each_unsafe_edit_is_a_regression_with_a_representative_patient(run_cli, rules_copy, edit, words, patient):
    mutate(rules_copy / edit[0], edit[1], edit[2])
    status, data = check_against(run_cli, rules_copy)
    assert status == 1
    # the review's warning, and where the thrombosis risk group is edited the later evidence's harm
    # findings that follow it (the FDA's boxed warning, ProDERM's), each a regression of its own
    found = [f for f in regressions(data) if words in f["message"]]
    assert len(found) == 1
    others = {c["subject"] for c in data["against"]["changes"]} - {"thrombosis", "avoid-corticosteroids"}
    assert others <= {"later-thrombosis-boxed-warning", "later-dermatomyositis-thromboembolism"}
    assert len(regressions(data)) == len(data["against"]["changes"])
    witness = found[0]["witness"]
    assert {k: witness[k] for k in patient} == patient
    assert data["findings"][0]["kind"] == "regression"  # listed first
    if edit is RAISE_THE_AGE:
        assert 65 <= witness["age"] < 70  # a patient the corpus never had


def test_the_representative_patient_gets_the_change_from_the_real_engines(rules_copy):
    mutate(rules_copy / "safety.yaml", RAISE_THE_AGE[1], RAISE_THE_AGE[2])
    (change,) = [
        c
        for c in impact(Advisor(RuleBase.load()), Advisor(RuleBase.load(rules_copy))).changes
        if c.subject == "thrombosis"
    ]
    case = change.case()
    before, after = (Advisor(rb).evaluate_mapping(case) for rb in (RuleBase.load(), RuleBase.load(rules_copy)))
    assert "thrombosis" in [w["code"] for w in _all_warnings(before)]
    assert "thrombosis" not in [w["code"] for w in _all_warnings(after)]
    assert change.edited == ["elderly"] and change.base_rules == ["thrombosis"] and change.this_rules == []


def test_the_unchanged_rules_give_no_finding(run_cli, rules_copy):
    status, data = check_against(run_cli, rules_copy)
    assert status == 0 and regressions(data) == [] and data["against"]["changes"] == []
    shown = run_cli("audit", "check", "--rules", str(rules_copy), "--against", SHIPPED)
    assert "the rules that can fire are the same, word for word, for every diagnosis" in shown.output


def test_the_walk_of_two_rule_bases_covers_what_the_check_covers(rulebase):
    """Every combination the check counts lies in exactly one region of the comparison."""
    want = {c.diagnosis: c.combinations - c.excluded for c in verify(rulebase).coverage}
    got: Counter = Counter()
    for region in compare(rulebase, rulebase):
        assert not region.differs
        got[region.diagnosis] += region.combinations
    assert got == want


def _shown(result, left_out: set) -> tuple:
    """A result's stance and its warnings (the later evidence's harm and the conflicts among them),
    but for those only rules alike on both sides give, which the comparison leaves out."""
    codes = {(w["code"], w["severity"]) for w in _all_warnings(result) if w["code"] not in left_out}
    return (result.ivig or {}).get("stance"), codes


@pytest.mark.parametrize("edit", [LOWER_A_CRITICAL, RAISE_THE_AGE], ids=["severity", "age"])
def test_every_region_s_patient_gets_from_each_engine_what_the_walk_says(rulebase, tmp_path, edit):
    """The walk's reading of both rule bases, held to experta's on one patient of every region."""
    copy = tmp_path / "rules"
    subprocess.run(["cp", "-r", SHIPPED, str(copy)], check=True)
    mutate(copy / edit[0], edit[1], edit[2])
    this = RuleBase.load(copy)
    engines = {"base": Advisor(rulebase), "this": Advisor(this)}
    regions = compare(rulebase, this, ["mmn", "gbs"])
    alike = {w["code"] for rule_id in twins(rulebase, this)["rules"] for w in this.by_id[rule_id].warnings}
    assert len(regions) > 500
    for region in regions:
        case = {k: list(v) if isinstance(v, tuple) else v for k, v in region.witness.items() if v is not None}
        for side, conclusion in (("base", region.base), ("this", region.this)):
            stance, warnings = _shown(engines[side].evaluate_mapping(case), alike)
            assert stance == conclusion.stance, (side, case)
            assert warnings == set(conclusion.warnings), (side, case)


def test_a_stance_made_more_favourable_is_a_regression(run_cli, rules_copy):
    mutate(rules_copy / "mmn.yaml", "stance: not-effective", "stance: trial-justified")  # ALS
    status, data = check_against(run_cli, rules_copy)
    assert status == 1
    (found,) = [f for f in regressions(data) if "stance more favourable to IVIG" in f["message"]]
    assert "not-effective -> trial-justified" in found["message"] and found["witness"]["diagnosis"] == "als"


def test_a_dose_raised_is_a_regression_and_a_dose_lowered_is_not(run_cli, rules_copy):
    course = "total_g_per_kg: 2.0, g_per_kg_per_day: 0.4, days: 5,"
    mutate(rules_copy / "regimens.yaml", course, "total_g_per_kg: 2.4, g_per_kg_per_day: 0.4, days: 6,")
    status, data = check_against(run_cli, rules_copy)
    assert status == 1 and any("dose raised" in f["message"] for f in regressions(data))
    mutate(
        rules_copy / "regimens.yaml",
        "total_g_per_kg: 2.4, g_per_kg_per_day: 0.4, days: 6,",
        "total_g_per_kg: 1.6, g_per_kg_per_day: 0.4, days: 4,",
    )
    status, data = check_against(run_cli, rules_copy)
    assert {c["kind"] for c in data["against"]["changes"]} == {"dose-lowered"} and regressions(data) == []


def test_a_stance_made_less_favourable_is_a_change_not_a_regression(run_cli, rules_copy):
    mutate(rules_copy / "mmn.yaml", "stance: first-line", "stance: second-line")
    status, data = check_against(run_cli, rules_copy)
    kinds = {c["kind"] for c in data["against"]["changes"]}
    assert "stance-less-favourable" in kinds and regressions(data) == []


def test_an_acknowledged_regression_passes_until_its_rule_is_edited_again(run_cli, rules_copy):
    mutate(rules_copy / LOWER_A_CRITICAL[0], LOWER_A_CRITICAL[1], LOWER_A_CRITICAL[2])
    _, data = check_against(run_cli, rules_copy)
    regression_id = data["against"]["changes"][0]["id"]
    sign = ["audit", "sign", "--rules", str(rules_copy), "--reviewer", "Dr A", "--against", SHIPPED]
    refused = run_cli(*sign, "--acknowledge", regression_id)  # no reason
    assert refused.exit_code == 2 and "reason" in refused.output and not (rules_copy / "review-log.yaml").exists()
    typo = run_cli(*sign, "--acknowledge", "R-0123456789", "--reason", "x")
    assert typo.exit_code == 2 and regression_id in typo.output and not (rules_copy / "review-log.yaml").exists()
    done = run_cli(*sign, "--acknowledge", regression_id, "--reason", "our service grades it a warning")
    assert done.exit_code == 0, done.output
    (entry,) = yaml.safe_load((rules_copy / "review-log.yaml").read_text(encoding="utf-8"))["signoffs"]
    assert entry["acknowledge"] == regression_id and entry["reason"] == "our service grades it a warning"
    assert entry["reviewer"] == "Dr A" and "critical -> warning" in entry["regression"]
    status, data = check_against(run_cli, rules_copy)
    assert status == 0 and regressions(data) == []
    assert [f["kind"] for f in data["against"]["acknowledged"]] == ["regression"]
    shown = run_cli("audit", "check", "--rules", str(rules_copy), "--against", SHIPPED)
    assert f"{regression_id} acknowledged by Dr A" in shown.output and "our service grades it a warning" in shown.output
    # a further edit of the rule behind it asks again
    mutate(
        rules_copy / "mmn.yaml", "action: Do not give corticosteroids for MMN.", "action: Avoid corticosteroids in MMN."
    )
    status, data = check_against(run_cli, rules_copy)
    assert status == 1 and regressions(data)[0]["message"].split()[2] != regression_id


def test_sign_names_either_rules_or_a_regression(run_cli, rules_copy):
    both = run_cli(
        "audit", "sign", "r", "--rules", str(rules_copy), "--reviewer", "A", "--acknowledge", "R-0123456789",
        "--against", SHIPPED, "--reason", "x",
    )  # fmt: skip
    assert both.exit_code == 2 and "one or the other" in both.output
    no_base = run_cli("audit", "sign", "--rules", str(rules_copy), "--reviewer", "A", "--acknowledge", "R-0123456789")
    assert no_base.exit_code == 2 and "--against" in no_base.output


def _repo_of_the_rules(tmp_path):
    """A git repository holding a copy of the shipped rules, committed."""
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["cp", "-r", SHIPPED, str(repo / "rules")], check=True)
    git(repo, "init", "-q")
    git(repo, "add", "rules")
    git(repo, "commit", "-qm", "rules")
    return repo


def test_against_a_git_revision_reads_the_rules_as_they_were(run_cli, tmp_path):
    repo = _repo_of_the_rules(tmp_path)
    mutate(repo / "rules" / "safety.yaml", RAISE_THE_AGE[1], RAISE_THE_AGE[2])
    status, data = check_against(run_cli, repo / "rules", "HEAD")
    assert status == 1 and "thrombosis" in regressions(data)[0]["message"]
    missing = run_cli("audit", "check", "--rules", str(repo / "rules"), "--against", "no-such-revision")
    assert missing.exit_code == 2 and "neither a directory nor a git revision" in missing.output


def test_audit_diff_finds_over_every_patient_what_the_corpus_misses(run_cli, rules_copy):
    mutate(rules_copy / "safety.yaml", RAISE_THE_AGE[1], RAISE_THE_AGE[2])
    shown = run_cli("audit", "diff", "--rules", str(rules_copy), "--base", SHIPPED)
    assert shown.exit_code == 1
    assert "SAFETY REGRESSION R-" in shown.output and "age = 65" in shown.output
    assert "0 of " in shown.output  # the corpus: no patient of 65-69
    data = json.loads(
        run_cli("audit", "diff", "--rules", str(rules_copy), "--base", SHIPPED, "--format", "json").stdout
    )
    assert data["differ"] == 0 and data["every_patient"]["regressions"] == 3  # the review's and two later
    only = run_cli("audit", "diff", "--rules", str(rules_copy), "--base", SHIPPED, "--cases-only")
    assert only.exit_code == 0 and "SAFETY REGRESSION" not in only.output


def test_the_report_lists_the_regressions_first(run_cli, rules_copy, tmp_path):
    mutate(rules_copy / LOWER_A_CRITICAL[0], LOWER_A_CRITICAL[1], LOWER_A_CRITICAL[2])
    out = tmp_path / "report.html"
    run_cli("audit", "report", "--rules", str(rules_copy), "--against", SHIPPED, "-o", str(out))
    page = out.read_text(encoding="utf-8")
    assert page.index('id="regressions"') < page.index('id="summary"')
    assert "severity lowered: avoid-corticosteroids: critical -&gt; warning" in page


@pytest.fixture(scope="module")
def raised_age(tmp_path_factory):
    """The shipped rules and a copy with the elderly threshold raised, and the changes between them."""
    copy = tmp_path_factory.mktemp("raised") / "rules"
    subprocess.run(["cp", "-r", SHIPPED, str(copy)], check=True)
    mutate(copy / RAISE_THE_AGE[0], RAISE_THE_AGE[1], RAISE_THE_AGE[2])
    base, this = Advisor(RuleBase.load()), Advisor(RuleBase.load(copy))
    return base, this, impact(base, this)


def _lost_codes_are_found(base, this, found, case):
    """The warnings the engines give `case` under the base and not under this rule base are
    changes the walk found for its diagnosis; the stance does not change with the age."""
    before, after = (_shown(a.evaluate_mapping(case), set()) for a in (base, this))
    lost = {code for code, _ in before[1] - after[1]} - {code for code, _ in after[1]}
    for code in lost:
        assert any(c.subject == code and case["diagnosis"] in c.diagnoses for c in found.changes), (code, case)
    assert before[0] == after[0]
    return lost


def _edited_fields(base, this) -> set:
    changed = rule_changes(base.rulebase, this.rulebase)
    return {t.name for c in changed for t in conditions.tests(this.rulebase.by_id[c.id].when)}


def test_every_value_of_the_edited_field_for_every_diagnosis_lies_in_a_change_found(raised_age):
    base, this, found = raised_age
    values = shared_domains(base.rulebase, this.rulebase)
    lost = set()
    for diagnosis in values["diagnosis"][1:]:
        for name in _edited_fields(base, this):
            for value in values[name][1:]:
                for planned in ({}, {"ivig_planned": True}):
                    lost |= _lost_codes_are_found(base, this, found, {"diagnosis": diagnosis, name: value, **planned})
    # the edit's effect was met, not only cases where nothing changes
    assert lost == {"thrombosis", "later-thrombosis-boxed-warning", "later-dermatomyositis-thromboembolism"}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_patient_whose_advice_changes_lies_in_a_change_found(raised_age, data):
    """Whatever patient the engines advise differently, the walk found that change for its diagnosis."""
    base, this, found = raised_age
    values = shared_domains(base.rulebase, this.rulebase)
    # the fields the edited rules test always known; the others mostly unknown, so that the edited
    # risk factor is often the only one
    edited = _edited_fields(base, this)
    case = {
        name: data.draw(st.sampled_from(options[1:] if name in edited else [None] * 4 + options), label=name)
        for name, options in values.items()
    }
    case["diagnosis"] = data.draw(st.sampled_from(values["diagnosis"][1:]), label="diagnosis")
    _lost_codes_are_found(
        base, this, found, {k: list(v) if isinstance(v, tuple) else v for k, v in case.items() if v is not None}
    )


def test_a_folder_named_like_the_revision_gives_way_to_it(run_cli, tmp_path, monkeypatch):
    """`--against main` beside a folder called main that holds no rule base reads the branch."""
    repo = _repo_of_the_rules(tmp_path)
    git(repo, "tag", "before")
    mutate(repo / "rules" / LOWER_A_CRITICAL[0], LOWER_A_CRITICAL[1], LOWER_A_CRITICAL[2])
    monkeypatch.chdir(tmp_path)
    (tmp_path / "before").mkdir()  # an unrelated folder of the same name
    status, data = check_against(run_cli, repo / "rules", "before")
    assert status == 1 and "avoid-corticosteroids" in regressions(data)[0]["message"]


def test_an_acknowledgement_in_a_damaged_log_is_not_taken(run_cli, rules_copy):
    """As no verdict is taken from a log with errors (it may hide a newer entry), no acknowledgement is."""
    mutate(rules_copy / LOWER_A_CRITICAL[0], LOWER_A_CRITICAL[1], LOWER_A_CRITICAL[2])
    _, data = check_against(run_cli, rules_copy)
    regression_id = data["against"]["changes"][0]["id"]
    (rules_copy / "review-log.yaml").write_text(
        "signoffs:\n"
        f"- {{acknowledge: {regression_id}, reason: accepted, reviewer: A, date: '2026-12-01'}}\n"
        "- {rule: no-such-key-here, verdict: maybe}\n",
        encoding="utf-8",
    )
    status, data = check_against(run_cli, rules_copy)
    assert status == 1 and regressions(data) and data["against"]["acknowledged"] == []
