"""`ivig test`: scenario files (a case with name, description and expect:),
pass or fail per scenario with the difference shown, exit 1 on any failure;
and `ivig evaluate` reading the same files as cases."""

import json

import pytest
from helpers import ROOT, jsonl, mutate

PASSING = """\
name: gbs-cannot-walk
description: the trials' patients, unable to walk unaided
diagnosis: gbs
walks_unaided: false
weight_kg: 70
expect:
  stance: first-line
  rule: gbs-severe-first-line
  dose: {rule: gbs-dose, total_g: 140.0, days: 5}
  fired: [gbs-severe, gbs-dose]
  not_fired: [gbs-general]
  missing: [migraine]
  not_missing: [walks_unaided]
  max_severity: info
  severity: {general-precautions: info}
  precautions: [skin-reactions, aseptic-meningitis, infusion-reactions]
  grade: {skin-reactions: moderate, infusion-reactions: mild}
"""


def scenario_file(tmp_path, text, name="s.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_a_passing_scenario_file(run_cli, tmp_path):
    path = scenario_file(tmp_path, PASSING)
    out = run_cli("test", path)
    assert out.exit_code == 0, out.output
    assert out.output == f"PASS  gbs-cannot-walk  ({path}:1)\n1 scenario: 1 passed, 0 failed, 0 errors\n"


FAILING = """\
- name: mild-gbs-said-severe
  case: {diagnosis: gbs, walks_unaided: true, weight_kg: 70}
  expect:
    stance: first-line
    rule: gbs-severe-first-line
    dose: {total_g: 140.0}
    warnings: [skin-reactions, thrombosis]
    fired: [gbs-severe]
    not_fired: [gbs-mild-ambulatory]
    missing: [walks_unaided]
    not_missing: [migraine]
    max_severity: critical
    severity: {skin-reactions: critical, anaphylaxis-iga: critical}
- name: dosed-said-undosed
  case: {diagnosis: mmn, weight_kg: 60}
  expect: {dose: null, missing: []}
- name: still-fine
  case: {diagnosis: als, ivig_planned: false}
  expect: {stance: not-effective}
"""


def test_a_failing_scenario_shows_each_difference_and_exits_1(run_cli, tmp_path):
    path = scenario_file(tmp_path, FAILING)
    out = run_cli("test", path)
    assert out.exit_code == 1
    lines = out.output.splitlines()
    assert lines[0] == f"FAIL  mild-gbs-said-severe  ({path}:1)"
    assert lines[1:13] == [
        "        stance: expected first-line, got not-established (line 4)",
        "        rule: expected gbs-severe-first-line, got gbs-mild-ambulatory (line 5)",
        "        dose: expected a dose, got none (line 6)",
        "        warnings: not given: skin-reactions, thrombosis; not expected: general-precautions (line 7)",
        "        fired: gbs-severe did not fire (line 8)",
        "        not_fired: gbs-mild-ambulatory fired (line 9)",
        "        missing: walks_unaided is not reported missing (line 10)",
        "        not_missing: migraine is reported missing (line 11)",
        "        max_severity: expected critical, got info (line 12)",
        "        severity.skin-reactions: expected critical, there is no such warning (line 13)",
        "        severity.anaphylaxis-iga: expected critical, there is no such warning (line 13)",
        f"FAIL  dosed-said-undosed  ({path}:14)",
    ]
    assert lines[13].startswith(
        "        dose: expected no dose, got 0.4 g/kg/day x 5 days = 2 g/kg (rule mmn-dose) (line 16)"
    )
    assert lines[14].startswith("        missing: expected none missing, got ")
    assert lines[15:] == [f"PASS  still-fine  ({path}:17)", "3 scenarios: 1 passed, 2 failed, 0 errors"]


def test_each_key_of_a_dose_is_compared(run_cli, tmp_path):
    path = scenario_file(
        tmp_path,
        PASSING.replace(
            "{rule: gbs-dose, total_g: 140.0, days: 5}",
            "{rule: gbs-dose, total_g: 150.0, days: 5, g_per_kg_per_day: 0.4}",
        ),
    )
    out = run_cli("test", path)
    assert out.exit_code == 1
    assert out.output.splitlines()[1:3] == [
        "        dose.total_g: expected 150.0, got 140.0 (line 9)",
        "1 scenario: 0 passed, 1 failed, 0 errors",
    ]


def test_json_gives_the_same_report_as_data(run_cli, tmp_path):
    path = scenario_file(tmp_path, FAILING)
    out = run_cli("test", "--format", "json", path)
    assert out.exit_code == 1
    report = json.loads(out.output)
    assert (report["passed"], report["failed"], report["errors"]) == (1, 2, 0)
    first = report["scenarios"][0]
    assert (first["name"], first["status"], first["source"], first["line"]) == (
        "mild-gbs-said-severe",
        "failed",
        path,
        1,
    )
    assert first["differences"][0] == {
        "key": "stance",
        "expected": "first-line",
        "actual": "not-established",
        "message": "expected first-line, got not-established",
        "line": 4,
    }
    assert first["differences"][3]["expected"] == ["skin-reactions", "thrombosis"]


@pytest.mark.parametrize(
    "expect, words, line",
    [
        ("  stanse: first-line\n", "unknown key 'stanse' in 'expect' (keys: stance, ", 3),
        ("  stanse: first-line\n", "did you mean 'stance'?", 3),
        ("  stance: first line\n", "'first line' is not a stance of the rule base; did you mean 'first-line'?", 3),
        ("  rule: mmn-generl\n", "'mmn-generl' is not a rule of the rule base; did you mean 'mmn-general'?", 3),
        ("  not_fired: [mmn-dose, gbs-dosse]\n", "'gbs-dosse' is not a rule", 3),
        ("  not_missing: [wieght_kg]\n", "'wieght_kg' is not a field of the rule base; did you mean 'weight_kg'?", 3),
        ("  dose: {total_gram: 2}\n", "unknown key 'total_gram' in 'dose'", 3),
        ("  dose: 140\n", "'dose' must be null (no dose) or a mapping", 3),
        ("  warnings: skin-reactions\n", "'warnings' must be a list of texts", 3),
        ("  max_severity: severe\n", "'severe' is not a severity", 3),
        ("  severity: {skin-reactions: high}\n", "'high' is not a severity", 3),
        ("  severity: []\n", "'severity' must map warning codes to a severity", 3),
    ],
)
def test_an_expect_block_is_checked_on_load_with_file_line_and_key(run_cli, tmp_path, expect, words, line):
    path = scenario_file(tmp_path, "name: x\ndiagnosis: mmn\nexpect:\n" + expect.replace("  ", "  ", 1))
    out = run_cli("test", "--format", "json", path)
    assert out.exit_code == 1
    (scenario,) = json.loads(out.output)["scenarios"]
    assert scenario["status"] == "error" and scenario["differences"] == []
    (error,) = scenario["errors"]
    assert words in error["message"] and (error["source"], error["line"]) == (path, line + 1)
    assert error["field"] == "expect." + expect.split(":")[0].strip()


@pytest.mark.parametrize(
    "text, words",
    [
        ("name: x\ndiagnosis: mmn\n", "no 'expect:' block"),
        ("name: x\ndiagnosis: mmn\nexpect: {}\n", "'expect' must be a mapping of at least one of"),
        (
            "name: x\ndescription: " + "words " * 60 + "\ndiagnosis: mmn\nexpect: {stance: first-line}\n",
            "'description' must be a text of at most 300 characters",
        ),
        ("name: x\ndiagnosis: mnm\nexpect: {stance: first-line}\n", "did you mean 'mmn'?"),  # the case itself
        ("name: x\ncase: {diagnosis: mmn}\nage: 4\nexpect: {stance: first-line}\n", "under 'case:' or beside its keys"),
        ("name: x\ncase: mmn\nexpect: {stance: first-line}\n", "'case' must be a mapping of fields"),
        ("name: {a: 1}\ndiagnosis: mmn\nexpect: {stance: first-line}\n", "'name' must be a text"),
        (
            "- {name: x, diagnosis: mmn, expect: {stance: first-line}}\n- {name: x, diagnosis: als, expect: {stance: "
            "not-effective}}\n",
            "the name 'x' is used already, at ",
        ),
    ],
)
def test_a_scenario_that_cannot_run_is_an_error(run_cli, tmp_path, text, words):
    out = run_cli("test", scenario_file(tmp_path, text))
    assert out.exit_code == 1 and words in out.output, out.output
    assert out.output.splitlines()[-1].endswith(" 1 error")


def test_ivig_test_on_a_rule_base_after_an_edit(run_cli, rules_copy):
    """A reviewer's use: the golden scenarios against an edited rule base say what changed."""
    mutate(rules_copy / "mmn.yaml", "stance: first-line", "stance: second-line")
    out = run_cli("test", "--rules", str(rules_copy), str(ROOT / "tests" / "cases" / "golden.yaml"))
    assert out.exit_code == 1
    assert "        stance: expected first-line, got second-line (line " in out.output
    assert " failed, 0 errors" in out.output.splitlines()[-1]


def test_scenarios_from_standard_input_and_every_format(run_cli, tmp_path):
    out = run_cli("test", "-", input=PASSING)
    assert out.exit_code == 0 and "PASS  gbs-cannot-walk  (<stdin>:1)" in out.output
    line = {"name": "mmn", "diagnosis": "mmn", "expect": {"stance": "first-line"}}
    paths = [
        scenario_file(tmp_path, json.dumps(line) + "\n", "a.jsonl"),
        scenario_file(tmp_path, json.dumps([dict(line, name="mmn2")]), "b.json"),
    ]
    out = run_cli("test", *paths)
    assert out.exit_code == 0 and out.output.splitlines()[-1] == "2 scenarios: 2 passed, 0 failed, 0 errors"


def test_a_file_with_no_scenario_does_not_pass(run_cli, tmp_path):
    from ivig_advisor.engine.audit.scenarios import run_scenarios

    report = run_scenarios([scenario_file(tmp_path, "")])
    assert not report.ok and report.to_dict()["errors"] == 1
    assert not run_scenarios([]).ok  # nothing run is nothing passed


# -- ivig evaluate reads scenario files as cases -------------------------------------------


def test_evaluate_reads_scenario_files_as_their_cases(run_cli, tmp_path):
    flat = scenario_file(tmp_path, PASSING, "flat.yaml")
    nested = scenario_file(tmp_path, FAILING, "nested.yaml")
    plain = scenario_file(tmp_path, "diagnosis: gbs\nwalks_unaided: false\nweight_kg: 70\n", "plain.yaml")
    out = run_cli("evaluate", "--format", "jsonl", "-q", flat, nested, plain)
    assert out.exit_code == 0, out.output
    results = jsonl(out.stdout)
    assert [r["id"] for r in results] == [
        "gbs-cannot-walk",
        "mild-gbs-said-severe",
        "dosed-said-undosed",
        "still-fine",
        "plain.yaml",
    ]
    assert {k: v for k, v in results[0].items() if k not in ("id", "source")} == {
        k: v for k, v in results[-1].items() if k not in ("id", "source")
    }
    assert [r["line"] for r in results[1:4]] == [1, 14, 17]


def test_evaluate_reads_the_golden_file_that_it_once_refused(run_cli):
    out = run_cli("evaluate", "--format", "jsonl", "-q", str(ROOT / "tests" / "cases" / "golden.yaml"))
    assert out.exit_code == 0 and "unknown field 'name'" not in out.stdout


def test_a_scenario_name_column_names_the_case(run_cli, tmp_path):
    path = scenario_file(tmp_path, "name,description,diagnosis\nmmn-plain,the simplest MMN,mmn\n", "s.csv")
    (result,) = jsonl(run_cli("evaluate", "--format", "jsonl", "-q", path).stdout)
    assert (result["status"], result["id"]) == ("ok", "mmn-plain")


def test_a_scenario_keeps_its_case_id_and_its_name_as_written(run_cli, tmp_path):
    path = scenario_file(tmp_path, "- {name: 00123, diagnosis: mmn}\n- {name: n, id: p7, diagnosis: als}\n")
    results = jsonl(run_cli("evaluate", "--format", "jsonl", "-q", path).stdout)
    assert [r["id"] for r in results] == ["00123", "p7"]
