"""What an attacker found when re-testing issue 25's fixes, through the real command.

Rule directories' file names on the terminal, audit commands over cases that cannot be read,
closed and full standard streams in every command (and in click's own --help and --version),
an interview resumed from a record whose patients all have errors, links to folders in a walked
folder, an output file that a later walk would read back, and options given twice.

A subprocess where the process's streams matter (a closed descriptor, /dev/full), click's
CliRunner elsewhere.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT, invoke, jsonl

IVIG = [sys.executable, "-m", "ivig_advisor.cli"]
ENV = dict(os.environ, NO_COLOR="1")
CLOSED = "(ivig was started with it closed)"
MMN = ROOT / "examples" / "mmn.yaml"


def shell(command: str, cwd=None):
    """`command` run by bash, where `ivig` is the real command (redirections such as >&- apply)."""
    script = f'ivig() {{ {" ".join(IVIG)} "$@"; }}; {command}'
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=ENV, cwd=cwd, timeout=300)


def lines(text: str) -> list:
    return [line for line in text.splitlines() if line.strip()]


# -- 1. file names in `audit check` ---------------------------------------------------------------

ESCAPE_NAME, NEWLINE_NAME = "a/esc\x1b[2J.yaml", "new\nline.yaml"


def test_unlisted_file_names_reach_the_terminal_escaped(run_cli, rules_copy):
    (rules_copy / "a").mkdir()
    for name in (ESCAPE_NAME, NEWLINE_NAME):
        (rules_copy / name).write_text("topic: stray\nrules: []\n", encoding="utf-8")
    text = run_cli("audit", "check", "--rules", str(rules_copy))
    assert text.exit_code == 1
    assert "\x1b" not in text.stdout
    unlisted = [line for line in text.stdout.splitlines() if "not listed in rulebase.yaml" in line]
    assert len(unlisted) == 2  # one line each: the name's line break does not split its finding
    assert unlisted[0].startswith(f"{rules_copy}/a/esc\\e[2J.yaml:1: unlisted: a/esc\\e[2J.yaml is in")
    assert unlisted[1].startswith(f"{rules_copy}/new\\nline.yaml:1: unlisted: new\\nline.yaml is in")
    data = run_cli("audit", "check", "--rules", str(rules_copy), "--format", "json")
    assert "\x1b" not in data.stdout  # JSON escapes it, and keeps the name as it is
    assert [f["file"] for f in json.loads(data.stdout)["findings"]] == [
        f"{rules_copy}/{ESCAPE_NAME}",
        f"{rules_copy}/{NEWLINE_NAME}",
    ]


def test_a_hidden_yaml_file_is_named_and_a_hidden_folder_is_not_entered(run_cli, rules_copy):
    for name in (".hidden.yaml", ".YAML", ".git/config.yaml", "sub/.also.yml"):
        (rules_copy / name).parent.mkdir(exist_ok=True)
        (rules_copy / name).write_text("topic: stray\nrules: []\n", encoding="utf-8")
    data = run_cli("audit", "check", "--rules", str(rules_copy), "--format", "json")
    assert data.exit_code == 1
    assert [f["file"] for f in json.loads(data.stdout)["findings"]] == [
        f"{rules_copy}/{name}" for name in (".YAML", ".hidden.yaml", "sub/.also.yml")
    ]


# -- 2. audit commands over a case that cannot be read -----------------------------------------


@pytest.fixture
def bad_case(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("diagnosis: [\n", encoding="utf-8")
    return path


def test_diff_over_a_case_that_cannot_be_read_says_so_and_fails(run_cli, bad_case):
    text = run_cli("audit", "diff", "--base", str(ROOT / "rules"), str(bad_case), str(MMN))
    assert text.exit_code == 1, text.output
    assert f"bad.yaml  ERROR  {bad_case}:2" in text.stdout and "not valid YAML" in text.stdout
    assert text.stdout.rstrip().endswith(
        "0 of 1 cases differ; 1 case could not be compared (an error under both rule bases)"
    )
    data = run_cli("audit", "diff", "--base", str(ROOT / "rules"), str(bad_case), str(MMN), "--format", "json")
    assert data.exit_code == 1
    report = json.loads(data.stdout)
    assert (report["compared"], report["differ"]) == (1, 0)
    assert [(f["id"], f["source"], f["line"]) for f in report["failed"]] == [("bad.yaml", str(bad_case), 2)]
    assert report["failed"][0]["error"]["message"].startswith("not valid YAML")


def test_coverage_over_a_case_that_cannot_be_read_says_so_and_fails(run_cli, bad_case):
    text = run_cli("audit", "coverage", str(bad_case), str(MMN))
    assert text.exit_code == 1, text.output
    assert text.stdout.startswith("2 cases (1 with errors, not counted below); rules fired:")
    assert f"bad.yaml  ERROR  {bad_case}:2" in text.stdout
    data = run_cli("audit", "coverage", str(bad_case), str(MMN), "--format", "json")
    assert data.exit_code == 1
    report = json.loads(data.stdout)
    assert report["errors"] == 1 and [f["id"] for f in report["failed"]] == ["bad.yaml"]


def test_coverage_and_diff_of_good_cases_still_succeed(run_cli):
    assert run_cli("audit", "coverage", str(MMN)).exit_code == 0
    assert run_cli("audit", "diff", "--base", str(ROOT / "rules"), str(MMN)).exit_code == 0


# -- 3. closed and full standard streams, one way for every command ------------------------------

NOTHING_TO_READ = f"error: standard input is closed {CLOSED}: '-' has nothing to read"


@pytest.mark.parametrize(
    "command",
    [
        "ivig fhir map -",
        "ivig test -",
        "ivig audit coverage -",
        "ivig audit diff --base rules -",
        "ivig audit why-not - mmn-general",
    ],
)
def test_reading_a_closed_standard_input_is_one_line_and_74(command):
    run = shell(f"{command} <&-", cwd=ROOT)
    assert run.returncode == 74, run.stderr
    assert lines(run.stderr) == [NOTHING_TO_READ]
    assert run.stdout == ""


@pytest.mark.parametrize(
    "command", ["ivig --help", "ivig --version", "ivig -h", "ivig audit --help", "ivig evaluate --help", "ivig schema"]
)
def test_help_and_version_onto_a_full_disk_are_one_line_and_74(command):
    run = shell(f"{command} >/dev/full")
    assert run.returncode == 74, run.stderr
    assert lines(run.stderr) == ["error: cannot write standard output: No space left on device"]


@pytest.mark.parametrize("command", ["ivig --help", "ivig --version", "ivig audit --help"])
def test_help_and_version_into_a_closed_output_are_one_line_and_74(command):
    run = shell(f"{command} >&-")
    assert run.returncode == 74, run.stderr
    assert lines(run.stderr) == [f"error: standard output is closed {CLOSED}"]


def test_a_command_that_writes_to_its_output_file_needs_no_standard_output(tmp_path):
    run = shell(f"ivig audit report -o rep.html --cases {MMN} >&-", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "rep.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert lines(run.stderr)[0].startswith("wrote rep.html: ")


def test_a_command_that_prints_is_refused_before_it_does_anything(rules_copy):
    log = rules_copy / "review-log.yaml"
    run = shell(f"ivig audit sign --rules {rules_copy} mmn-general --verdict approved --reviewer R >&-")
    assert run.returncode == 74, run.stderr
    assert lines(run.stderr) == [f"error: standard output is closed {CLOSED}"]
    assert not log.exists()  # nothing was recorded


# -- 4. resuming from a record whose patients all have errors ------------------------------------


def test_resume_from_two_patients_with_one_id_says_why(tmp_path, run_cli):
    patient = {"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1970-01-01"}
    twin = dict(patient, gender="male", birthDate="1950-01-01")
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"fullUrl": "http://x/Patient/p1", "resource": r} for r in (patient, twin)],
    }
    path = tmp_path / "dup.json"
    path.write_text(json.dumps(bundle), encoding="utf-8")
    for extra in ([], ["--id", "p1"]):
        run = run_cli("interview", "--resume", str(path), *extra, input="")
        assert run.exit_code == 2, run.output
        assert "choose one" not in run.stderr and "2 cases with the id" not in run.stderr
        assert lines(run.stderr) and all("2 Patients have the id p1" in line for line in lines(run.stderr))
    why = run_cli("audit", "why-not", str(path), "mmn-general")
    assert why.exit_code == 2 and "2 Patients have the id p1" in why.stderr


# -- 5. links to folders in a walked folder --------------------------------------------------------


@pytest.fixture
def linked(tmp_path):
    """sub/a.yaml, and sub/d2link -> ../d2 holding x.yaml."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "d2").mkdir()
    (tmp_path / "sub" / "a.yaml").write_text("diagnosis: mmn\n", encoding="utf-8")
    (tmp_path / "d2" / "x.yaml").write_text("diagnosis: als\n", encoding="utf-8")
    (tmp_path / "sub" / "d2link").symlink_to("../d2", target_is_directory=True)
    return tmp_path


def test_a_linked_folder_in_a_walked_folder_is_read(run_cli, linked):
    out = run_cli("evaluate", str(linked / "sub"), "--format", "jsonl", "-q")
    assert out.exit_code == 0, out.output
    assert [(r["id"], r["ivig"]["stance"]) for r in jsonl(out.stdout)] == [
        ("a.yaml", "first-line"),
        ("d2link/x.yaml", "not-effective"),
    ]


def test_output_over_a_case_file_reached_through_a_link_is_refused(run_cli, linked):
    out = run_cli("evaluate", str(linked / "sub"), "-o", str(linked / "d2" / "x.yaml"))
    assert out.exit_code == 2 and "is a case file in the input folder" in out.stderr
    assert (linked / "d2" / "x.yaml").read_text(encoding="utf-8") == "diagnosis: als\n"


def test_a_loop_of_links_is_walked_once_and_said(run_cli, linked):
    (linked / "sub" / "loop").symlink_to(".", target_is_directory=True)
    (linked / "d2" / "back").symlink_to("../sub", target_is_directory=True)
    out = run_cli("evaluate", str(linked / "sub"), "--format", "jsonl")
    assert out.exit_code == 0, out.output
    assert [r["id"] for r in jsonl(out.stdout)] == ["a.yaml", "d2link/x.yaml"]
    notes = [line for line in out.stderr.splitlines() if line.startswith("note:")]
    assert notes == [
        f"note: {linked}/sub/d2link/back is the folder {linked}/sub again (a link): not read twice",
        f"note: {linked}/sub/loop is the folder {linked}/sub again (a link): not read twice",
    ]


def test_a_folder_that_cannot_be_read_is_an_error_result(run_cli, linked, monkeypatch):
    locked = linked / "sub" / "locked"
    locked.mkdir()
    (locked / "z.yaml").write_text("diagnosis: mmn\n", encoding="utf-8")
    listing = os.scandir

    def scandir(path="."):  # what chmod 0 does, for root too (who reads every folder)
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return listing(path)

    monkeypatch.setattr(os, "scandir", scandir)
    out = run_cli("evaluate", str(linked / "sub"), "--format", "jsonl", "-q")
    assert out.exit_code == 1
    results = jsonl(out.stdout)
    assert [r["status"] for r in results] == ["ok", "ok", "error"]
    assert (results[2]["id"], results[2]["error"]["source"]) == ("locked", str(locked))
    assert results[2]["error"]["message"] == "cannot read this folder: Permission denied"


def test_an_entry_named_as_a_case_file_that_is_no_file_is_an_error_result(run_cli, linked):
    os.mkfifo(linked / "sub" / "pipe.yaml")  # read, it would never end
    (linked / "sub" / "gone.yaml").symlink_to("nowhere.yaml")
    out = run_cli("evaluate", str(linked / "sub"), "--format", "jsonl", "-q")
    assert out.exit_code == 1
    assert [(r["id"], r["status"], (r["error"] or {}).get("message", "")[:30]) for r in jsonl(out.stdout)] == [
        ("a.yaml", "ok", ""),
        ("d2link/x.yaml", "ok", ""),
        ("gone.yaml", "error", "cannot read: No such file or d"),
        ("pipe.yaml", "error", "not a regular file: a folder's"),
    ]


# -- 6. an output file a later walk would read back ----------------------------------------------


def test_a_new_text_output_named_as_a_case_file_in_a_walked_folder_is_refused(run_cli, tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.yaml").write_text("diagnosis: mmn\n", encoding="utf-8")
    for name in ("new.yaml", "deeper/new.YML"):
        (tmp_path / "sub" / name).parent.mkdir(exist_ok=True)
        out = run_cli("evaluate", str(tmp_path / "sub"), "-o", str(tmp_path / "sub" / name))
        assert out.exit_code == 2, out.output
        assert "the next run over" in out.stderr and "would read it as a case" in out.stderr
        assert not (tmp_path / "sub" / name).exists()
    assert run_cli("evaluate", str(tmp_path / "sub"), "-o", str(tmp_path / "sub" / "new.txt")).exit_code == 0


def test_earlier_results_in_a_walked_folder_are_left_out_with_a_note(run_cli, tmp_path):
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "a.yaml").write_text("diagnosis: mmn\n", encoding="utf-8")
    for name in ("old.json", "old.jsonl", "old.csv"):
        assert run_cli("evaluate", str(MMN), "-o", str(sub / name)).exit_code == 0
    out = run_cli("evaluate", str(sub), "--format", "jsonl")
    assert out.exit_code == 0, out.output
    assert [r["id"] for r in jsonl(out.stdout)] == ["a.yaml"]
    assert [line for line in out.stderr.splitlines() if line.startswith("note:")] == [
        f"note: {sub}/{name} left out: it holds results of ivig, not cases (name it to read it)"
        for name in ("old.csv", "old.json", "old.jsonl")
    ]
    named = run_cli("evaluate", str(sub / "old.json"), "--format", "jsonl", "-q")
    assert named.exit_code == 1  # named, it is read, and its results are no cases


# -- 7. an option given twice, and -o - -----------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("evaluate", str(MMN), "-o", "x1.json", "-o", "x2.json"),
        ("evaluate", str(MMN), "--format", "json", "--format", "csv"),
        ("evaluate", str(MMN), "--rules", str(ROOT / "rules"), "--rules", str(ROOT / "rules")),
        ("audit", "why-not", str(MMN), "mmn-general", "--id", "a", "--id", "b"),
        ("schema", "-o", "x1.json", "--output", "x2.json"),
    ],
)
def test_an_option_given_twice_is_refused(run_cli, tmp_path, args, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = run_cli(*args)
    assert out.exit_code == 2, out.output
    assert "given twice" in out.stderr
    assert list(tmp_path.iterdir()) == []


def test_an_option_that_may_be_repeated_still_may(run_cli, tmp_path):
    out = tmp_path / "r.html"
    assert run_cli("audit", "report", "-o", str(out), "--cases", str(MMN), "--cases", str(MMN)).exit_code == 0


@pytest.mark.parametrize(
    "args",
    [
        ("evaluate", str(MMN), "--format", "jsonl"),
        ("schema", "--format", "json"),
        ("fhir", "map", str(ROOT / "tests" / "fhir" / "bundles" / "mmn.json")),
    ],
)
def test_output_dash_is_standard_output(run_cli, tmp_path, monkeypatch, args):
    monkeypatch.chdir(tmp_path)
    plain = run_cli(*args)
    dashed = run_cli(*args, "-o", "-")
    assert dashed.exit_code == plain.exit_code == 0, dashed.output
    assert dashed.stdout == plain.stdout and dashed.stdout
    assert list(tmp_path.iterdir()) == []  # no file named '-'


def test_a_report_onto_dash_is_refused(run_cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = run_cli("audit", "report", "-o", "-")
    assert out.exit_code == 2 and "-o -" in out.stderr
    assert list(tmp_path.iterdir()) == []


def test_results_written_before_the_later_evidence_column_are_still_left_out(run_cli, tmp_path):
    """A results CSV of the release before issue 28 (no `later_evidence` column) is an earlier run's
    results: a walk leaves it out, it is never read as cases nor overwritten as one."""
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "a.yaml").write_text("diagnosis: mmn\n", encoding="utf-8")
    earlier = "id,status,stance,max_severity,critical,rule,per,total_g_per_kg,g_per_kg_per_day,days,total_g,"
    earlier += "infusion_g_per_kg,infusion_g,interval,repeat,warnings,missing,error,source,line,normalised,"
    earlier += "rules_version,rules_hash,unmapped\nold,ok,first-line,info,,mmn-general,,,,,,,,,,,,,,,,,,\n"
    (sub / "old.csv").write_text(earlier, encoding="utf-8")
    out = run_cli("evaluate", str(sub), "--format", "jsonl")
    assert out.exit_code == 0, out.output
    assert [r["id"] for r in jsonl(out.stdout)] == ["a.yaml"]
    assert f"note: {sub}/old.csv left out: it holds results of ivig, not cases (name it to read it)" in out.stderr


def test_an_output_path_with_a_newline_is_said_on_one_line(tmp_path):
    target = tmp_path / "schema\nFORGED.txt"
    result = invoke("schema", "-o", target)
    assert result.exit_code == 0, result.output
    assert target.is_file()
    assert len(result.stderr.splitlines()) == 1 and "FORGED" in result.stderr, result.stderr
