"""`ivig audit`: the reviewers' commands, through the real CLI, on the shipped
rule base and on mutated copies that each break it in one known way."""

import json
import os
import re
import subprocess
import sys
from math import prod
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from helpers import ROOT, cut_point_cases, mutate
from hypothesis import HealthCheck, assume, given, settings

from ivig_advisor.cli import main
from ivig_advisor.engine import Advisor, RuleBase
from ivig_advisor.engine.audit.check import verify, walk_case
from ivig_advisor.engine.core.analysis import domains

GOLDEN = ROOT / "tests" / "cases" / "golden.yaml"
GOLDEN_CASES = len(yaml.safe_load(GOLDEN.read_text(encoding="utf-8")))

EXTRA_RULE = """
  - id: {id}
    title: A rule added by the test
    layer: {layer}
    when: {when}
    then: {then}
    basis: review
    claims: [C23]
    source: {{refs: [49]}}
"""


def add_rule(rules_dir, file="mmn.yaml", **fields):
    path = rules_dir / file
    path.write_text(path.read_text(encoding="utf-8") + EXTRA_RULE.format(**fields), encoding="utf-8")
    lines = path.read_text(encoding="utf-8").splitlines()
    return next(i for i, line in enumerate(lines, 1) if line.strip() == f"- id: {fields['id']}")


def check_json(run_cli, rules_dir=None):
    args = (["--rules", str(rules_dir)] if rules_dir else []) + ["check", "--format", "json"]
    result = run_cli("audit", *args)
    return result.exit_code, json.loads(result.stdout)


# -- the walk is the engine ---------------------------------------------------


def fired_by_engine(advisor, case):
    return sorted(
        {entry["rule"] for entry in advisor.evaluate(case).trace}, key=lambda i: advisor.rulebase.by_id[i].position
    )


def test_the_walk_fires_what_experta_fires_on_every_golden_case(rulebase):
    advisor = Advisor(rulebase)
    for item in yaml.safe_load(GOLDEN.read_text(encoding="utf-8")):
        case = advisor.validate(item["case"])
        assert walk_case(rulebase, case.facts) == fired_by_engine(advisor, case), item["name"]


SHIPPED = Advisor(RuleBase.load())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cut_point_cases(SHIPPED.rulebase, diagnosis="gbs"))
def test_the_walk_fires_what_experta_fires_on_random_cases(data):
    advisor, rulebase = SHIPPED, SHIPPED.rulebase
    assume(rulebase.schema.check_constraints({k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}))
    case = advisor.validate(data)
    assert walk_case(rulebase, case.facts) == fired_by_engine(advisor, case)


# -- check on the shipped base ------------------------------------------------


def test_check_passes_on_the_shipped_rules_and_says_how_much_it_checked(run_cli, rulebase):
    result = run_cli("audit", "check")
    assert result.exit_code == 0, result.output
    counted = re.search(r"Checked exhaustively: ([\d,]+) combinations", result.output)
    assert counted and "OK: no findings" in result.output
    code, report = check_json(run_cli)
    assert code == 0 and report["ok"] and report["findings"] == []
    assert int(counted.group(1).replace(",", "")) == report["combinations"]
    # the count is the product of the cut domains of each diagnosis's fields, worked out here anew
    space = domains(rulebase)
    assert report["combinations"] == sum(prod(len(space[f]) for f in d["fields"]) for d in report["per_diagnosis"])
    assert {d["diagnosis"] for d in report["per_diagnosis"]} == set(rulebase.schema.fields["diagnosis"].values)


def test_every_shipped_rule_is_reachable_in_the_walk(rulebase):
    reach = verify(rulebase).reach
    assert [r.id for r in rulebase.rules if not reach[r.id]] == []


def test_cut_domains_straddle_the_thresholds(rulebase):
    ages = domains(rulebase)["age"]
    assert None in ages and 65 in ages and any(a < 65 for a in ages if a is not None)


# -- check on broken copies ---------------------------------------------------


@pytest.mark.parametrize(
    "edit, kind, words",
    [
        (("mmn.yaml", "id: mmn-general", "id: mmn-maintenance"), "duplicate-id", "duplicate rule id 'mmn-maintenance'"),
        (("cns.yaml", "basis: assumption", "basis: review"), "provenance", "must cite the review"),
        (("mmn.yaml", "when: {diagnosis: mmn}", "when: {diagnosis: mnn}"), "schema", "did you mean 'mmn'?"),
    ],
)
def test_load_errors_are_findings_with_file_and_line(run_cli, rules_copy, edit, kind, words):
    file, old, new = edit
    mutate(rules_copy / file, old, new)
    code, report = check_json(run_cli, rules_copy)
    assert code == 1
    finding = next(f for f in report["findings"] if f["kind"] == kind)
    assert words in finding["message"] and finding["file"].endswith(file) and finding["line"] > 0


def test_a_rule_cited_by_passage_needs_no_refs(run_cli, rules_copy):
    # mmn-general keeps `cite:` (a passage of the review) once its refs are gone: still cited
    mutate(rules_copy / "mmn.yaml", "      refs: [49, 50, 51]\n", "")
    code, report = check_json(run_cli, rules_copy)
    assert code == 0 and report["findings"] == []


def test_a_missing_citation_fails(run_cli, rules_copy):
    line = add_rule(
        rules_copy,
        id="mmn-uncited",
        layer="general",
        when="{diagnosis: mmn}",
        then="{recommend: {stance: first-line, summary: x}}",
    )
    mutate(rules_copy / "mmn.yaml", "    source: {refs: [49]}\n", "")  # the first such line is the new rule's
    result = run_cli("audit", "--rules", str(rules_copy), "check")
    assert result.exit_code == 1
    assert f"mmn.yaml:{line}: provenance: a rule with basis 'review' must cite the review" in result.output


def test_a_contradictory_stance_is_a_conflict_with_a_witness(run_cli, rules_copy):
    line = add_rule(
        rules_copy,
        id="mmn-contradiction",
        layer="general",
        when="{all: [{diagnosis: mmn}, {conduction_block: true}]}",
        then="{recommend: {stance: not-effective, summary: x}}",
    )
    result = run_cli("audit", "--rules", str(rules_copy), "check")
    assert result.exit_code == 1
    assert (
        f"mmn.yaml:{line}: conflict: rules mmn-general (first-line) and mmn-contradiction "
        f"(not-effective) set different stances"
    ) in result.output
    assert "e.g. diagnosis = Multifocal motor neuropathy, conduction block = yes" in result.output


def test_an_unsatisfiable_condition_is_unreachable(run_cli, rules_copy):
    line = add_rule(
        rules_copy,
        id="mmn-never",
        layer="general",
        when="{all: [{diagnosis: mmn}, {diagnosis: gbs}]}",
        then="{recommend: {stance: first-line, summary: x}}",
    )
    code, report = check_json(run_cli, rules_copy)
    assert code == 1
    assert [(f["kind"], f["rule"], f["line"]) for f in report["findings"]] == [("unreachable", "mmn-never", line)]
    assert "can never hold together" in report["findings"][0]["message"]


def test_a_rule_an_earlier_layer_always_preempts_is_unreachable(run_cli, rules_copy):
    add_rule(
        rules_copy,
        id="mmn-shadowed",
        layer="general",
        when="{all: [{diagnosis: mmn}, {treatment_phase: maintenance}]}",
        then="{recommend: {stance: first-line, summary: x}}",
    )
    code, report = check_json(run_cli, rules_copy)
    assert [(f["kind"], f["rule"]) for f in report["findings"]] == [("unreachable", "mmn-shadowed")]
    assert "earlier stance layer always decides first" in report["findings"][0]["message"]


def test_a_narrower_rule_with_the_same_conclusion_is_subsumed(run_cli, rules_copy):
    add_rule(
        rules_copy,
        file="safety.yaml",
        id="migraine-again",
        layer="safety",
        when="{all: [{receives_ivig: true}, {migraine: true}, {age: {ge: 40}}]}",
        then="{warn: {code: aseptic-meningitis-migraine, severity: warning, applies: patient, summary: x, message: x}}",
    )
    code, report = check_json(run_cli, rules_copy)
    assert code == 1
    assert [(f["kind"], f["rule"]) for f in report["findings"]] == [("subsumed", "migraine-again")]
    assert "narrower than aseptic-meningitis" in report["findings"][0]["message"]


@pytest.mark.parametrize(
    "layer, when",
    [
        ("safety", "{all: [{receives_ivig: true}, {migraine: true}, {age: {ge: 40}}]}"),
        ("plan", "{all: [{diagnosis: gbs}, {migraine: true}]}"),  # an earlier layer than the other rule's
    ],
)
def test_a_warning_given_two_severities_at_once_is_a_conflict(run_cli, rules_copy, layer, when):
    add_rule(
        rules_copy,
        file="safety.yaml",
        id="migraine-critical",
        layer=layer,
        when=when,
        then="{warn: {code: aseptic-meningitis-migraine, severity: critical, applies: patient, summary: x, message: x}}",
    )
    code, report = check_json(run_cli, rules_copy)
    assert code == 1
    assert [f["kind"] for f in report["findings"]] == ["conflict"]
    assert "migraine-critical" in report["findings"][0]["message"]
    assert (
        "aseptic-meningitis" in report["findings"][0]["message"]
        and "different severities" in report["findings"][0]["message"]
    )


def test_a_diagnosis_without_a_stance_is_a_gap(run_cli, rules_copy):
    mutate(
        rules_copy / "mmn.yaml", "    when: {diagnosis: mmn}\n", "    when: {diagnosis: mmn, conduction_block: true}\n"
    )
    code, report = check_json(run_cli, rules_copy)
    gaps = [f for f in report["findings"] if f["kind"] == "gap"]
    assert code == 1 and len(gaps) == 1
    assert "no rule sets a stance for diagnosis 'mmn'" in gaps[0]["message"]
    assert gaps[0]["file"] == "facts/case.yaml" and gaps[0]["witness"]["diagnosis"] == "mmn"
    assert gaps[0]["witness"]["conduction_block"] is not True


def test_ivig_given_without_a_regimen_is_a_gap(run_cli, rules_copy):
    mutate(rules_copy / "gbs.yaml", "stance: first-line", "stance: second-line")
    code, report = check_json(run_cli, rules_copy)
    assert code == 1
    assert any(f["kind"] == "gap" and "no rule gives a regimen" in f["message"] for f in report["findings"])


# -- rules, show ----------------------------------------------------------------


def test_rules_json_is_a_stable_list_with_provenance(run_cli, rulebase):
    first = run_cli("audit", "rules", "--format", "json").output
    assert first == run_cli("audit", "rules", "--format", "json").output
    records = json.loads(first)
    assert [r["id"] for r in records] == [r.id for r in rulebase.rules]
    for record in records:
        assert {"id", "title", "basis", "citation", "lifecycle", "plain", "signoff", "hash"} <= set(record)
    mmn = next(r for r in records if r["id"] == "mmn-general")
    assert mmn["plain"] == "IF diagnosis is Multifocal motor neuropathy THEN IVIG is first-line"
    assert mmn["citation"]["refs"] == [49, 50, 51] and mmn["signoff"]["state"] == "missing"


def test_rules_filters(run_cli, rulebase):
    records = json.loads(run_cli("audit", "rules", "--disease", "mg", "--format", "json").output)
    ids = {r["id"] for r in records}
    assert {"mg-crisis", "mg-dose", "anaphylaxis-iga"} <= ids
    assert not ids & {"gbs-severe-first-line", "cidp-general", "lems-dose"}
    assumptions = json.loads(run_cli("audit", "rules", "--basis", "assumption", "--format", "json").output)
    assert {r["id"] for r in assumptions} == {r.id for r in rulebase.rules if r.basis == "assumption"}
    assert json.loads(run_cli("audit", "rules", "--status", "approved", "--format", "json").output) == []
    bad = run_cli("audit", "rules", "--disease", "flu")
    assert bad.exit_code == 2 and "no diagnosis 'flu'" in bad.output


def test_rules_text_and_markdown_read_as_sentences(run_cli):
    text = run_cli("audit", "rules", "--disease", "mmn").output
    assert "IF diagnosis is Multifocal motor neuropathy AND corticosteroids" not in text
    assert "== Multifocal motor neuropathy, and ALS as its mimic (mmn) ==" in text
    assert "WARN (critical) avoid corticosteroids" in text
    markdown = run_cli("audit", "rules", "--format", "markdown").output
    assert markdown.startswith("# Rules of ") and "### `mmn-general` — " in markdown


def test_show_gives_the_rule_its_links_and_its_cases(run_cli):
    out = run_cli("audit", "show", "gbs-severe").output
    assert "Feeds: gbs-severe-first-line" in out and "Fed by: the case's fields only" in out
    assert "Assumption A01:" in out and "Evidence ref36:" in out
    assert "Maintenance: author ivig-advisor developers; specialist unassigned" in out
    assert re.search(r"Cases that fire it \(\d+\): .*gbs-cannot-walk", out)
    data = json.loads(run_cli("audit", "show", "thrombosis", "--format", "json").output)
    assert data["fed_by"] == [
        "receives-ivig-by-stance",
        "receives-ivig-planned",
        "thrombosis-risk-group",
        "thrombosis-risk-thrombocytosis",
        "thrombosis-risk-paraprotein",
    ]
    assert data["feeds"] == [] and data["cases"]
    wrong = run_cli("audit", "show", "gbs-sever")
    assert wrong.exit_code == 2 and "did you mean 'gbs-severe'?" in wrong.output


# -- coverage, why-not, diff -------------------------------------------------


def test_coverage_counts_rules_over_a_corpus(run_cli, rulebase):
    full = json.loads(run_cli("audit", "coverage", str(GOLDEN), "--format", "json").output)
    assert full["never_fired"] == [] and full["cases"] == GOLDEN_CASES
    one = run_cli("audit", "coverage", str(ROOT / "examples" / "mmn.yaml"), "--require-all")
    assert one.exit_code == 1 and "Never fired (" in one.output
    counts = json.loads(run_cli("audit", "coverage", str(ROOT / "examples" / "mmn.yaml"), "--format", "json").output)
    fired = {r["id"]: r["fired"] for r in counts["rules"]}
    assert fired["mmn-general"] == 1 and fired["gbs-dose"] == 0


def test_why_not_names_the_failed_test_and_the_value_that_would_fire(run_cli):
    case = ROOT / "examples" / "gbs-unable-to-walk.yaml"
    out = run_cli("audit", "why-not", str(case), "gbs-mild-ambulatory").output
    assert "did not fire" in out and "✗ walks unaided is yes   (no)" in out
    assert "walks unaided were yes" in out
    blocked = run_cli("audit", "why-not", str(case), "gbs-general").output
    assert (
        "Blocked: the earlier layer 'situation' already set the stance (first-line, rule gbs-severe-first-line)"
        in blocked
    )
    data = json.loads(run_cli("audit", "why-not", str(case), "thrombosis", "--format", "json").output)
    assert (
        data["fired"] is False and {"age": 65} in data["would_fire_if"] and {"diabetes": True} in data["would_fire_if"]
    )
    fired = run_cli("audit", "why-not", str(case), "gbs-severe-first-line").output
    assert "fired for case" in fired


def test_why_not_picks_one_case_from_a_file_of_several(run_cli):
    several = run_cli("audit", "why-not", str(GOLDEN), "gbs-dose")
    assert several.exit_code == 2 and "choose one with --id" in several.output
    one = run_cli("audit", "why-not", str(GOLDEN), "gbs-dose", "--id", "gbs-mild-ambulatory")
    assert one.exit_code == 0 and "stance is first-line" in one.output


def test_diff_shows_the_cases_an_edit_changes(run_cli, rules_copy):
    same = run_cli("audit", "--rules", str(rules_copy), "diff", "--base", str(ROOT / "rules"), str(GOLDEN))
    assert same.exit_code == 0 and same.output.strip().endswith(f"0 of {GOLDEN_CASES} cases differ")
    mutate(rules_copy / "safety.yaml", "severity: critical", "severity: warning")  # anaphylaxis-iga
    changed = run_cli(
        "audit", "--rules", str(rules_copy), "diff", "--base", str(ROOT / "rules"), str(GOLDEN), "--format", "json"
    )
    assert changed.exit_code == 1
    report = json.loads(changed.output)
    assert report["compared"] == GOLDEN_CASES and report["differ"] >= 1
    evaluated = {r["id"]: r for r in json.loads(run_cli("evaluate", str(GOLDEN), "--format", "json").stdout)}
    for case in report["cases"]:
        assert case["changed"] == ["warnings"]
        # one shape with `ivig evaluate`: `id`, and warnings as objects with code, severity and rule
        assert {"code": "anaphylaxis-iga", "severity": "critical", "rule": "anaphylaxis-iga"} in case["base"][
            "warnings"
        ]
        assert {"code": "anaphylaxis-iga", "severity": "warning", "rule": "anaphylaxis-iga"} in case["this"]["warnings"]
        result = evaluated[case["id"]]
        assert case["base"]["ivig"] == {k: result["ivig"][k] for k in ("stance", "rule")}
        assert case["base"]["warnings"] == [{k: w[k] for k in ("code", "severity", "rule")} for w in result["warnings"]]
    text = run_cli("audit", "--rules", str(rules_copy), "diff", "--base", str(ROOT / "rules"), str(GOLDEN)).output
    assert "anaphylaxis-iga (critical)" in text and "anaphylaxis-iga (warning)" in text


# -- sign-off -----------------------------------------------------------------


def test_sign_off_is_recorded_and_goes_stale_when_the_rule_changes(run_cli, rules_copy):
    signed = run_cli(
        "audit",
        "--rules",
        str(rules_copy),
        "sign",
        "mmn-general",
        "gbs-dose",
        "--verdict",
        "approved",
        "--reviewer",
        "Dr Rev",
        "--date",
        "2026-11-20",
    )
    assert signed.exit_code == 0, signed.output
    needs = run_cli(
        "audit", "--rules", str(rules_copy), "sign", "mg-dose", "--verdict", "needs-change", "--reviewer", "Dr Rev"
    )
    assert needs.exit_code == 2 and "needs a comment" in needs.output

    def states():
        records = json.loads(run_cli("audit", "--rules", str(rules_copy), "rules", "--format", "json").output)
        return {r["id"]: r["signoff"]["state"] for r in records}

    assert states()["mmn-general"] == "approved" and states()["gbs-dose"] == "approved"
    mutate(
        rules_copy / "mmn.yaml",
        "title: IVIG is the treatment of choice for MMN",
        "title: IVIG is the treatment of choice in MMN",
    )
    assert states()["mmn-general"] == "stale" and states()["gbs-dose"] == "approved"
    strict = run_cli("audit", "--rules", str(rules_copy), "check", "--strict")
    assert strict.exit_code == 1
    assert "sign-off: rule mmn-general: stale: approved by Dr Rev on 2026-11-20" in strict.output
    assert ", 1 approved, 0 needs-change, 1 stale\n" in run_cli("audit", "--rules", str(rules_copy), "check").output
    log = yaml.safe_load((rules_copy / "review-log.yaml").read_text(encoding="utf-8"))
    assert [e["rule"] for e in log["signoffs"]] == ["mmn-general", "gbs-dose"]


def test_a_broken_review_log_is_a_finding_with_its_line(run_cli, rules_copy):
    (rules_copy / "review-log.yaml").write_text(
        "signoffs:\n- rule: mmn-general\n  verdict: approved\n  reviewer: A\n  date: 2026-01-01\n  hash: x\n"
        "- rule: mmn-generall\n  verdict: approved\n  reviewer: A\n  date: 2026-01-01\n  hash: x\n"
        "- rule: gbs-dose\n  verdict: maybe\n  reviewer: A\n  date: 2026-01-01\n  hash: x\n",
        encoding="utf-8",
    )
    code, report = check_json(run_cli, rules_copy)
    assert code == 1
    found = {(f["line"], f["message"]) for f in report["findings"] if f["kind"] == "review-log"}
    assert (
        7,
        "no rule 'mmn-generall'; did you mean 'mmn-general'? (a sign-off of a rule no longer in the rule base)",
    ) in found
    assert (12, "verdict must be one of approved, needs-change") in found
    # a damaged log is not read as "no sign-offs", nor half read: no sign-off is taken from it
    assert report["signoff"]["unknown"] == len(json.loads(run_cli("audit", "rules", "--format", "json").stdout))
    records = json.loads(run_cli("audit", "--rules", str(rules_copy), "rules", "--format", "json").stdout)
    assert {r["signoff"]["state"] for r in records} == {"unreadable"}


# -- rule files stay in the rule directory ------------------------------------------


def manifest_line(rules_dir, text):
    lines = (rules_dir / "rulebase.yaml").read_text(encoding="utf-8").splitlines()
    return next(i for i, line in enumerate(lines, 1) if line == text)


@pytest.mark.parametrize("name", ["/etc/passwd", "../outside.yaml", "gbs/../../outside.yaml", "link.yaml"])
def test_a_rule_file_outside_the_rule_directory_is_refused(run_cli, rules_copy, name):
    outside = rules_copy.parent / "outside.yaml"
    outside.write_text("topic: outside\nrules: []\n", encoding="utf-8")
    (rules_copy / "link.yaml").symlink_to(outside)
    mutate(rules_copy / "rulebase.yaml", "  - safety.yaml\n", f"  - safety.yaml\n  - {name}\n")
    line = manifest_line(rules_copy, f"  - {name}")
    code, report = check_json(run_cli, rules_copy)
    assert code == 1
    assert any(
        f["file"].endswith("rulebase.yaml") and f["line"] == line and "outside the rule directory" in f["message"]
        for f in report["findings"]
    ), report["findings"]
    case = ROOT / "examples" / "mmn.yaml"
    refused = run_cli("evaluate", "--rules", str(rules_copy), str(case))
    assert refused.exit_code == 2 and f"rulebase.yaml:{line}:" in refused.output
    assert "root:" not in refused.output  # nothing of /etc/passwd is read or shown


def test_a_data_file_outside_the_rule_directory_is_refused(run_cli, rules_copy):
    mutate(rules_copy / "rulebase.yaml", "  claims: claims.yaml", "  claims: ../claims.yaml")
    line = manifest_line(rules_copy, "  claims: ../claims.yaml")
    refused = run_cli("evaluate", "--rules", str(rules_copy), str(ROOT / "examples" / "mmn.yaml"))
    assert refused.exit_code == 2 and f"rulebase.yaml:{line}:" in refused.output
    assert "outside the rule directory" in refused.output


def test_a_rule_file_the_manifest_does_not_list_is_a_finding(run_cli, rules_copy):
    assert (
        run_cli(
            "audit", "--rules", str(rules_copy), "sign", "mmn-general", "--verdict", "approved", "--reviewer", "Dr R"
        ).exit_code
        == 0
    )  # the review log is not a rule file
    (rules_copy / "mmn-extra.yaml").write_text((rules_copy / "mmn.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    code, report = check_json(run_cli, rules_copy)
    assert code == 1
    assert [(f["kind"], f["file"].rsplit("/", 1)[-1]) for f in report["findings"]] == [("unlisted", "mmn-extra.yaml")]
    assert "not listed in rulebase.yaml" in report["findings"][0]["message"]
    assert "not loaded" in report["findings"][0]["message"]


def test_every_yaml_file_below_the_rule_directory_not_listed_is_a_finding(rules_copy, tmp_path):
    """Any depth, any case of the extension; a link out of the directory is never entered, a link
    loop never hangs, and a link in it to a file outside is named (its rules are not loaded)."""
    rule_file = "topic: stray\nrules: []\n"
    (rules_copy / "sub" / "deeper").mkdir(parents=True)
    (rules_copy / ".git").mkdir()  # a hidden folder is a tool's: not entered
    for name in ("Stray2.YML", "sub/x.yaml", "sub/deeper/y.Yaml", "sub/deeper/z.yMl", ".git/hidden.yaml"):
        (rules_copy / name).write_text(rule_file, encoding="utf-8")
    (rules_copy / "sub" / "notes.txt").write_text(rule_file, encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "outside.yaml").write_text(rule_file, encoding="utf-8")
    (rules_copy / "out").symlink_to(elsewhere, target_is_directory=True)
    (rules_copy / "sub" / "loop").symlink_to(rules_copy, target_is_directory=True)
    (rules_copy / "far.yml").symlink_to(elsewhere / "outside.yaml")
    ivig = Path(sys.executable).parent / "ivig"
    out = subprocess.run(
        [str(ivig), "audit", "check", "--rules", str(rules_copy), "--format", "json"],
        capture_output=True,
        text=True,
        timeout=600,
    )  # a loop followed would never end
    assert out.returncode == 1, out.stderr
    findings = json.loads(out.stdout)["findings"]
    assert [(f["kind"], f["file"]) for f in findings] == [
        ("unlisted", f"{rules_copy}/{name}")
        for name in ("Stray2.YML", "far.yml", "sub/deeper/y.Yaml", "sub/deeper/z.yMl", "sub/x.yaml")
    ]
    assert findings[-1]["message"].startswith("sub/x.yaml is in the rule directory but not listed")


# -- markdown from rule text ------------------------------------------------------------


def test_markdown_escapes_what_the_rules_say(run_cli, rules_copy):
    mutate(
        rules_copy / "mmn.yaml",
        "title: IVIG is the treatment of choice for MMN",
        "title: <script>alert(1)</script> *bold* [link](javascript:alert(1)) `code`",
    )
    # the quote comes from a passage the rule cites: forged there, it must be escaped all the same
    mutate(
        rules_copy / "passages.yaml",
        '  quote: "対照臨床試験に基づいて、IVIGはギラン・バレー症候群、多巣性運動ニューロパチー、CIDPの治療に選択され…"',
        '  quote: "x\\n\\n# Forged heading\\n<img src=x onerror=alert(1)>"',
    )
    markdown = run_cli("audit", "--rules", str(rules_copy), "rules", "--format", "markdown").output
    assert "<script>" not in markdown and "<img" not in markdown
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in markdown
    assert "[link](" not in markdown and "\\[link\\](javascript" in markdown and "\\*bold\\*" in markdown
    assert "\n# Forged heading" not in markdown and "\\# Forged heading" in markdown


def test_text_shows_control_characters_from_the_rules_and_the_log_as_visible_escapes(rules_copy):
    from click.testing import CliRunner

    from ivig_advisor.cli import main

    mutate(
        rules_copy / "mmn.yaml", "title: IVIG is the treatment of choice for MMN", 'title: "IVIG\\e[2J\\e[1;1H for MMN"'
    )
    runner = CliRunner()
    signed = runner.invoke(
        main,
        [
            "audit",
            "--rules",
            str(rules_copy),
            "sign",
            "mmn-general",
            "--verdict",
            "approved",
            "--reviewer",
            "Dr \x1b]0;owned\x07R",
        ],
    )
    assert signed.exit_code == 0, signed.output
    for args in (["rules", "--disease", "mmn"], ["show", "mmn-general"]):
        out = runner.invoke(main, ["audit", "--rules", str(rules_copy), *args], color=True).output
        assert "\x1b[2J" not in out and "\x07" not in out and "\x1b]0" not in out
        assert "IVIG\\e[2J\\e[1;1H for MMN" in out


# -- the regimen table ----------------------------------------------------------------


def test_audit_doses_lists_every_regimen_with_the_rules_that_give_it(run_cli, rulebase):
    rows = json.loads(run_cli("audit", "doses", "--format", "json").stdout)
    assert [r["regimen"] for r in rows] == list(rulebase.extras["regimens"])
    dose_rules = sorted(r.id for r in rulebase.rules if "dose" in r.then)
    assert sorted(i for row in rows for i in row["rules"]) == dose_rules
    gbs = next(r for r in rows if r["regimen"] == "gbs")
    assert (gbs["dose"], gbs["rules"], gbs["diagnosis_label"]) == (
        "0.4 g/kg/day x 5 days = 2 g/kg",
        ["gbs-dose"],
        "Guillain-Barré syndrome",
    )
    text = run_cli("audit", "doses").stdout
    assert all(f"rules: {', '.join(r['rules'])}" in text for r in rows)


def test_a_regimen_no_rule_names_shows_as_unused_and_cells_are_escaped(run_cli, rules_copy):
    mutate(
        rules_copy / "regimens.yaml",
        "sps: {",
        'spare: {diagnosis: gbs, situation: "a | b", total_g_per_kg: 1.0,\n'
        "  g_per_kg_per_day: null, days: null, repeat: null, note: null}\n\nsps: {",
    )
    rows = json.loads(run_cli("audit", "doses", "--rules", str(rules_copy), "--format", "json").stdout)
    assert next(r for r in rows if r["regimen"] == "spare")["rules"] == []
    assert "rules: none (an unused row)" in run_cli("audit", "doses", "--rules", str(rules_copy)).stdout
    markdown = run_cli("audit", "doses", "--rules", str(rules_copy), "--format", "markdown").stdout
    assert "| a \\| b |" in markdown


def test_audit_rules_gives_the_english_of_every_quote_as_show_and_the_report_do(run_cli):
    from ivig_advisor.engine import RuleBase

    rule = RuleBase.load().by_id["receives-ivig-planned"]
    english = rule.source["quote_en"]
    for fmt in ("text", "markdown"):
        shown = run_cli("audit", "rules", "--format", fmt).output
        assert (f"In English: {english}" if fmt == "text" else "- in English: The adverse reactions") in shown, fmt
    assert sum(1 for r in RuleBase.load().rules if r.source.get("quote_en")) == run_cli("audit", "rules").output.count(
        "  In English: "
    )


def test_coverage_reads_the_shipped_cases_by_default_as_show_and_report_do(run_cli, rules_copy):
    """One rule for the three: without CASES, the golden cases and examples beside the rules."""
    default = json.loads(run_cli("audit", "coverage", "--format", "json").stdout)
    named = json.loads(
        run_cli("audit", "coverage", str(ROOT / "tests" / "cases"), str(ROOT / "examples"), "--format", "json").stdout
    )
    assert default == named and default["cases"] > 50 and sum(r["fired"] for r in default["rules"]) > 0
    alone = CliRunner().invoke(main, ["audit", "coverage", "--rules", str(rules_copy)])
    assert alone.exit_code == 2 and "no CASES given, and no golden cases or examples beside the rules" in alone.output


def test_shell_completion_offers_rule_ids_of_the_rules_named(rules_copy):
    """`_IVIG_COMPLETE` (click's protocol, as bash calls it) completes a rule id for
    show, why-not and sign, from --rules when given."""
    mutate(rules_copy / "mmn.yaml", "id: mmn-general\n", "id: mmn-general-renamed\n")
    mutate(rules_copy / "later-evidence.yaml", "[mmn-general,", "[mmn-general-renamed,")  # the entry speaking to it

    def complete(words):
        env = dict(os.environ, _IVIG_COMPLETE="bash_complete", COMP_WORDS=words, COMP_CWORD=str(len(words.split()) - 1))
        ivig = Path(sys.executable).parent / "ivig"  # the installed command: bash completes by its name
        out = subprocess.run([str(ivig)], env=env, capture_output=True, text=True)
        return [line.split(",", 1)[1] for line in out.stdout.splitlines()]

    assert "mmn-general" in complete("ivig audit show mmn-g")
    assert complete(f"ivig audit show --rules {rules_copy} mmn-gen") == ["mmn-general-renamed"]
    assert "gbs-dose" in complete("ivig audit sign mmn-general gbs-d")
    assert complete("ivig audit why-not case.yaml mmn-ma") == ["mmn-maintenance", "mmn-maintenance-dose"]
