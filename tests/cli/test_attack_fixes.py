"""Defects an attack on the released commands found after issue 11, each
reproduced through the real CLI."""

import json
import shutil

from helpers import ROOT, ivig


def test_a_lone_surrogate_costs_its_own_case_not_the_run(run_cli, tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text(
        '{"diagnosis": "als"}\n{"diagnosis": "als", "id": "x\\udfff"}\n'
        '{"diagnosis": "gbs", "foo\\ud800": 1}\n{"diagnosis": "mmn"}\n',
        encoding="utf-8",
    )
    for fmt in ("text", "json", "jsonl", "csv"):
        out = run_cli("evaluate", "--format", fmt, "--quiet", str(path))
        assert out.exit_code == 1, (fmt, out.output)
    results = [
        json.loads(line) for line in run_cli("evaluate", "--format", "jsonl", "--quiet", str(path)).output.splitlines()
    ]
    assert [r["status"] for r in results] == ["ok", "error", "error", "ok"]
    assert results[1]["error"]["line"] == 2 and "surrogate" in results[1]["error"]["message"]


def test_a_null_tag_never_drops_a_written_value(run_cli, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "diagnosis: gbs\nwalks_unaided: false\niga_deficiency: !!null true\nanti_iga_antibodies: true\n",
        encoding="utf-8",
    )
    result = json.loads(run_cli("evaluate", "--format", "jsonl", "--quiet", str(path)).output)
    assert result["status"] == "error" and result["error"]["line"] == 3
    path.write_text("diagnosis: gbs\nweight_kg: !!null\n", encoding="utf-8")
    assert json.loads(run_cli("evaluate", "--format", "jsonl", "--quiet", str(path)).output)["status"] == "ok"


def test_signing_into_a_log_that_is_not_utf8_is_refused_and_leaves_it(tmp_path):
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    (rules / "review-log.yaml").write_bytes(b"\xff\xfe")
    run = ivig("audit", "--rules", rules, "sign", "mmn-general", "--verdict", "approved", "--reviewer", "X")
    assert run.returncode == 2 and "not UTF-8" in run.stderr
    assert (rules / "review-log.yaml").read_bytes() == b"\xff\xfe"


def test_save_names_that_are_not_files_are_refused_or_asked_again(tmp_path):
    empty = ivig("interview", "--save", "", input="other\nno\n", cwd=tmp_path)
    assert empty.returncode == 2 and "not a file name" in empty.stderr
    asked = ivig("interview", input="other\nno\n.\n/\nunknown\nhelp\nquit\n", cwd=tmp_path)
    assert asked.returncode == 0, asked.stderr
    assert "not a file name" in asked.stdout and "diagnosis: other" in asked.stdout  # the answers are shown
    assert list(tmp_path.iterdir()) == []  # no file named 'unknown' or 'help'


def test_a_yaml_syntax_error_says_the_rest_of_the_file_was_not_read(run_cli, tmp_path):
    path = tmp_path / "b.yaml"
    path.write_text("---\ndiagnosis: als\n---\ndiagnosis: gbs\n  bad: indent\n---\ndiagnosis: mmn\n", encoding="utf-8")
    results = [
        json.loads(line) for line in run_cli("evaluate", "--format", "jsonl", "--quiet", str(path)).output.splitlines()
    ]
    assert [r["status"] for r in results] == ["ok", "error"]
    assert results[1]["error"]["line"] == 5 and "nothing after this point" in results[1]["error"]["message"]
