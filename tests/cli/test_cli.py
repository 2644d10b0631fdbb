"""The `ivig` command through click's CliRunner: formats, exit codes, errors with places."""

import json

import pytest
from helpers import ROOT, jsonl


def test_examples_all_evaluate_ok(run_cli):
    out = run_cli("evaluate", "--format", "jsonl", str(ROOT / "examples"))
    results = jsonl(out.stdout)
    assert out.exit_code == 0
    assert len(results) == len(list((ROOT / "examples").glob("*.yaml")))
    assert all(r["status"] == "ok" for r in results)
    stances = {r["id"]: r["ivig"]["stance"] for r in results}
    assert stances["mmn.yaml"] == "first-line"
    assert stances["out-of-scope.yaml"] == "out-of-scope"
    assert stances["als.yaml"] == "not-effective"


def test_text_output_shows_recommendation_dose_warnings_and_chain(run_cli, tmp_path):
    case = tmp_path / "mmn.yaml"
    case.write_text("diagnosis: mmn\nweight_kg: 70\nplanned_cotherapy: [corticosteroids]\n")
    out = run_cli("evaluate", str(case))
    assert out.exit_code == 0
    text = out.stdout
    assert "IVIG first-line" in text
    assert "0.4 g/kg/day x 5 days = 2 g/kg = 140 g" in text
    assert "CRITICAL" in text and "avoid-corticosteroids" in text
    assert "stance = first-line  ← mmn-general" in text
    assert "diagnosis = Multifocal motor neuropathy  (input)" in text
    assert "1 case: 1 ok, 0 errors" in out.stderr


def test_json_format_is_one_array_in_input_order(run_cli, tmp_path):
    path = tmp_path / "cases.yaml"
    path.write_text("cases:\n  - {diagnosis: als}\n  - {diagnosis: mmn}\n  - {diagnosis: cidp}\n")
    out = run_cli("evaluate", "--format", "json", "--quiet", str(path))
    data = json.loads(out.stdout)
    assert [r["id"] for r in data] == ["cases.yaml:1", "cases.yaml:2", "cases.yaml:3"]
    assert [r["ivig"]["stance"] for r in data] == ["not-effective", "first-line", "first-line"]
    assert set(data[0]) >= {"id", "status", "error", "ivig", "dose", "warnings", "trace", "missing"}


def test_bad_cases_get_errors_with_file_line_and_field_and_the_rest_still_run(run_cli, tmp_path):
    path = tmp_path / "batch.jsonl"
    path.write_text(
        '{"diagnosis": "mmn"}\n'
        '{"diagnosis": "mmn", "wieght_kg": 70}\n'
        "this is not json\n"
        "\n"
        '{"diagnosis": "lems", "age": 300}\n'
        '{"diagnosis": "myastenia"}\n'
        '{"diagnosis": "als"}\n'
    )
    out = run_cli("evaluate", "--format", "jsonl", str(path))
    assert out.exit_code == 1
    results = jsonl(out.stdout)
    assert [r["status"] for r in results] == ["ok", "error", "error", "error", "error", "ok"]
    typo, broken, age, mg = (r["error"] for r in results[1:5])
    assert typo["field"] == "wieght_kg" and typo["line"] == 2 and "did you mean 'weight_kg'" in typo["message"]
    assert typo["source"] == str(path)
    assert broken["line"] == 3 and "not valid JSON" in broken["message"]
    assert age["field"] == "age" and age["line"] == 5 and "outside 0-120" in age["message"]
    assert "did you mean 'myasthenia_gravis'" in mg["message"]
    assert "6 cases: 2 ok, 4 errors" in out.stderr


def test_yaml_errors_name_the_line_of_the_field(run_cli, tmp_path):
    path = tmp_path / "case.yaml"
    path.write_text("diagnosis: gbs\nage: 40\nwalks_unaided: maybe\n")
    out = run_cli("evaluate", "--format", "jsonl", str(path))
    error = jsonl(out.stdout)[0]["error"]
    assert (error["field"], error["line"]) == ("walks_unaided", 3)
    assert out.exit_code == 1


def test_yaml_syntax_error_keeps_the_documents_before_it(run_cli, tmp_path):
    path = tmp_path / "multi.yaml"
    path.write_text("diagnosis: als\n---\ndiagnosis: mmn\n---\ndiagnosis: [unclosed\n")
    results = jsonl(run_cli("evaluate", "--format", "jsonl", str(path)).stdout)
    assert [r["status"] for r in results] == ["ok", "ok", "error"]
    assert results[2]["error"]["line"] is not None


@pytest.mark.parametrize(
    "payload",
    [
        "!!python/object/apply:os.system ['touch {marker}']",
        "!!python/object/apply:subprocess.call [['touch', '{marker}']]",
        "!!python/object/apply:builtins.open ['{marker}', 'w']",
        "!!python/object/new:builtins.open ['{marker}', 'w']",
    ],
)
def test_yaml_tags_are_never_executed(run_cli, tmp_path, payload):
    # The proof is the side effect, not the output: a command that ran would have
    # written its output to the real stdout, and the status is "error" either way.
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.yaml"
    path.write_text("diagnosis: " + payload.format(marker=marker) + "\n")
    out = run_cli("evaluate", "--format", "jsonl", str(path))
    assert not marker.exists(), "a YAML tag ran code"
    result = jsonl(out.stdout)[0]
    assert result["status"] == "error" and "python" in result["error"]["message"]
    assert out.exit_code == 1


def test_stdin_jsonl_and_yaml(run_cli):
    out = run_cli("evaluate", "--format", "jsonl", "-", input='{"diagnosis": "als"}\n{"diagnosis": "mmn"}\n')
    assert [r["ivig"]["stance"] for r in jsonl(out.stdout)] == ["not-effective", "first-line"]
    out = run_cli("evaluate", "--format", "jsonl", "-", input="diagnosis: polymyositis\n")
    assert jsonl(out.stdout)[0]["ivig"]["rule"] == "pm-not-established"


def test_usage_errors_exit_2(run_cli):
    assert run_cli("evaluate").exit_code == 2
    assert run_cli("evaluate", "/no/such/file.yaml").exit_code == 2
    assert run_cli("evaluate", "--format", "xml", "x").exit_code == 2


def test_version(run_cli):
    from ivig_advisor import __version__

    out = run_cli("--version")
    assert out.exit_code == 0 and __version__ in out.stdout


def test_no_color_gives_plain_text(run_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    path = tmp_path / "a.yaml"
    path.write_text("diagnosis: als\n")
    assert "\x1b[" not in run_cli("evaluate", str(path)).stdout
