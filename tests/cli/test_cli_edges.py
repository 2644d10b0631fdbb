"""The command line at its edges (issue 25): closed standard streams, an output file that is a
case file, the format an output file's name implies, what the summary and progress line say,
and CSV cells that hold line breaks.

Through the real command: a subprocess where the process's streams matter (a closed descriptor
cannot be faked in process), click's CliRunner elsewhere.
"""

import csv
import io
import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner
from helpers import ROOT, jsonl

from ivig_advisor.cli import main

IVIG = [sys.executable, "-m", "ivig_advisor.cli"]
ENV = dict(os.environ, NO_COLOR="1")


def shell(command: str, cwd=None):
    """`command` run by bash, where `ivig` is the real command (redirections such as >&- apply)."""
    script = f'ivig() {{ {" ".join(IVIG)} "$@"; }}; {command}'
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=ENV, cwd=cwd, timeout=120)


def lines(text: str) -> list:
    return [line for line in text.splitlines() if line.strip()]


# -- closed standard streams -----------------------------------------------------------------


def test_evaluate_with_standard_output_closed_is_one_line_and_74():
    run = shell("ivig evaluate examples >&-", cwd=ROOT)
    assert run.returncode == 74, run.stderr
    assert lines(run.stderr) == [
        "error: standard output is closed (ivig was started with it closed): write to a file with -o FILE"
    ]


def test_evaluate_with_standard_input_closed_is_one_line_and_74():
    run = shell("ivig evaluate - <&-")
    assert run.returncode == 74, run.stderr
    assert lines(run.stderr) == [
        "error: standard input is closed (ivig was started with it closed): '-' has nothing to read"
    ]
    assert run.stdout == ""


@pytest.mark.parametrize(
    "command, hint", [("ivig schema", ": write to a file with -o FILE"), ("ivig audit rules --disease mmn", "")]
)
def test_a_command_that_prints_does_not_succeed_into_a_closed_output(command, hint):
    # click.echo drops text when sys.stdout is None: these exited 0 having printed nothing
    run = shell(f"{command} >&-", cwd=ROOT)
    assert run.returncode == 74
    assert lines(run.stderr) == [f"error: standard output is closed (ivig was started with it closed){hint}"]


def test_the_interview_with_standard_input_closed_is_refused_before_any_question():
    run = shell("ivig interview <&-")
    assert run.returncode == 74, run.stderr
    assert run.stdout == ""
    assert lines(run.stderr) == [
        "error: standard input is closed (ivig was started with it closed): the interview reads its answers there"
    ]


def test_evaluate_into_a_file_needs_no_standard_output(tmp_path):
    out = tmp_path / "out.jsonl"
    run = shell(f"ivig evaluate examples/mmn.yaml -o {out} >&-", cwd=ROOT)
    assert run.returncode == 0, run.stderr
    assert [r["id"] for r in jsonl(out.read_text(encoding="utf-8"))] == ["mmn.yaml"]


def test_a_closed_standard_error_costs_only_the_messages():
    run = shell("ivig evaluate examples/mmn.yaml --format jsonl 2>&-", cwd=ROOT)
    assert run.returncode == 0
    assert [r["ivig"]["stance"] for r in jsonl(run.stdout)] == ["first-line"]


# -- the output file's name says its format ---------------------------------------------------


@pytest.mark.parametrize(
    "name, check",
    [
        ("results.csv", lambda text: next(csv.reader(io.StringIO(text)))[:3] == ["id", "status", "stance"]),
        ("results.CSV", lambda text: next(csv.reader(io.StringIO(text)))[:3] == ["id", "status", "stance"]),
        ("results.json", lambda text: json.loads(text)[0]["id"] == "mmn.yaml"),
        ("results.jsonl", lambda text: jsonl(text)[0]["id"] == "mmn.yaml"),
        ("results.ndjson", lambda text: jsonl(text)[0]["id"] == "mmn.yaml"),
        ("results.txt", lambda text: text.startswith("mmn.yaml  IVIG first-line")),
        ("results", lambda text: text.startswith("mmn.yaml  IVIG first-line")),
    ],
)
def test_without_format_the_output_file_s_extension_decides(run_cli, tmp_path, name, check):
    out = tmp_path / name
    result = run_cli("evaluate", str(ROOT / "examples" / "mmn.yaml"), "-o", str(out))
    assert result.exit_code == 0, result.output
    assert check(out.read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    "name, fmt",
    [
        ("results.csv", "json"),
        ("results.json", "csv"),
        ("results.jsonl", "text"),
        ("results.ndjson", "json"),
        ("results.csv", "text"),
    ],
)
def test_a_format_that_contradicts_the_extension_is_refused_and_nothing_written(run_cli, tmp_path, name, fmt):
    out = tmp_path / name
    out.write_text("the old results\n", encoding="utf-8")
    result = CliRunner().invoke(
        main, ["evaluate", str(ROOT / "examples" / "mmn.yaml"), "-o", str(out), "--format", fmt]
    )
    assert result.exit_code == 2
    assert f"Invalid value for --format: {fmt} contradicts the output file's name" in " ".join(result.stderr.split())
    assert out.read_text(encoding="utf-8") == "the old results\n"


@pytest.mark.parametrize(
    "name, fmt", [("results.csv", "csv"), ("results.txt", "json"), ("results.out", "csv"), ("results", "jsonl")]
)
def test_a_format_that_agrees_or_a_name_that_says_nothing_is_taken(run_cli, tmp_path, name, fmt):
    out = tmp_path / name
    result = run_cli("evaluate", str(ROOT / "examples" / "mmn.yaml"), "-o", str(out), "--format", fmt)
    assert result.exit_code == 0, result.output
    text = out.read_text(encoding="utf-8")
    assert {"csv": text.startswith("id,status"), "json": text.startswith("[\n{"), "jsonl": text.startswith('{"id"')}[
        fmt
    ]


# -- CSV cells -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "case_id, shown",
    [
        ("a\nb", "a\\nb"),
        ("a\r\nb", "a\\r\\nb"),
        ("\n=1+1", "\\n=1+1"),
        ("=1+1\n", "'=1+1\\n"),
        ("x\u2028y", "x\\u2028y"),
    ],
)
def test_a_line_break_from_input_is_escaped_in_a_csv_cell(run_cli, tmp_path, case_id, shown):
    path = tmp_path / "cases.jsonl"
    path.write_text(
        json.dumps({"id": case_id, "diagnosis": "mmn"})
        + "\n"
        + json.dumps({"id": case_id, "diagnosis": "nonsense"})
        + "\n",
        encoding="utf-8",
    )
    result = run_cli("evaluate", str(path), "--format", "csv")
    rows = result.stdout.splitlines()
    assert len(rows) == 3, rows  # the header and one physical line per case: no raw line break in a cell
    cells = list(csv.reader(io.StringIO(result.stdout)))
    assert [row[0] for row in cells[1:]] == [shown, shown]
    assert cells[2][1] == "error" and "\n" not in cells[2][cells[0].index("error")]


# -- an output file that is a case file --------------------------------------------------------


def test_an_output_that_is_a_case_file_found_by_walking_is_refused(tmp_path):
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "a.yaml").write_text("diagnosis: mmn\n", encoding="utf-8")
    run = subprocess.run(
        [*IVIG, "evaluate", "sub", "-o", "sub/a.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=ENV,
        timeout=120,
    )
    assert run.returncode == 2, run.stderr
    assert lines(run.stderr) == [
        "error: sub/a.yaml is a case file in the input folder sub: it would be replaced by "
        "the results; write them to another file"
    ]
    assert (sub / "a.yaml").read_text(encoding="utf-8") == "diagnosis: mmn\n"


@pytest.mark.parametrize(
    "name, content",
    [
        ("cases.jsonl", '{"diagnosis": "mmn"}\n'),
        ("deep/more.json", '[{"diagnosis": "als"}]\n'),
        ("table.csv", "id,diagnosis\nx,mmn\n"),
        ("empty.yml", ""),
        ("looks-like-results.jsonl", '{"id": "x", "status": "ok"}\n'),  # no rules hash: not recognisably ours
    ],
)
def test_every_kind_of_walked_case_file_is_kept(run_cli, tmp_path, name, content):
    target = tmp_path / "sub" / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(content, encoding="utf-8")
    (tmp_path / "sub" / "a.yaml").write_text("diagnosis: mmn\n", encoding="utf-8")
    result = run_cli("evaluate", str(tmp_path / "sub"), "-o", str(target))
    assert result.exit_code == 2 and "is a case file in the input folder" in result.stderr
    assert target.read_text(encoding="utf-8") == content


@pytest.mark.parametrize(
    "name, fmt", [("out.jsonl", "jsonl"), ("out.json", "json"), ("out.csv", "csv"), ("out.ndjson", "jsonl")]
)
def test_this_program_s_own_earlier_output_in_the_folder_may_be_replaced(run_cli, tmp_path, name, fmt):
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "a.yaml").write_text("diagnosis: mmn\n", encoding="utf-8")
    (sub / "b.yaml").write_text("diagnosis: nonsense\n", encoding="utf-8")  # an error result among them
    out = sub / name
    for _ in range(2):  # the second run replaces the first run's results, and never reads them as cases
        result = run_cli("evaluate", str(sub), "-o", str(out))
        assert result.exit_code == 1, result.stderr
        assert result.stderr.startswith("2 cases: 1 ok, 1 error")


def test_an_empty_results_list_of_this_program_may_be_replaced(run_cli, tmp_path):
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "out.json").write_text("[\n]\n", encoding="utf-8")  # what a run with no case writes
    (sub / "a.yaml").write_text("diagnosis: mmn\n", encoding="utf-8")
    assert run_cli("evaluate", str(sub), "-o", str(sub / "out.json")).exit_code == 0


def test_a_file_the_walk_does_not_read_may_be_replaced(run_cli, tmp_path):
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "a.yaml").write_text("diagnosis: mmn\n", encoding="utf-8")
    (sub / "notes.txt").write_text("old notes\n", encoding="utf-8")
    assert run_cli("evaluate", str(sub), "-o", str(sub / "notes.txt")).exit_code == 0
    assert (sub / "notes.txt").read_text(encoding="utf-8").startswith("a.yaml  IVIG first-line")


# -- the summary line --------------------------------------------------------------------------


def test_the_summary_counts_critical_warnings_and_names_the_output_file(run_cli, tmp_path):
    out = tmp_path / "results.csv"
    result = run_cli("evaluate", str(ROOT / "examples"), "-o", str(out))
    assert result.exit_code == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    critical = sum(1 for row in rows if row["critical"])
    assert critical >= 2  # mmn (steroids planned) and cidp (IgA deficiency), at least
    assert result.stderr == (
        f"16 cases: 16 ok, 0 errors, {critical} with a CRITICAL warning; first-line 3, "
        "not-effective 2, not-established 5, out-of-scope 1, second-line 4, trial-justified 1; "
        f"results in {out}\n"
    )


def test_the_summary_of_a_batch_on_standard_output_names_no_file(run_cli):
    result = run_cli("evaluate", str(ROOT / "examples" / "als.yaml"), "--format", "jsonl")
    assert result.stderr == "1 case: 1 ok, 0 errors, 0 with a CRITICAL warning; not-effective 1\n"
