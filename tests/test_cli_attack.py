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
import yaml

from conftest import ROOT, jsonl

IVIG = [sys.executable, "-m", "ivig_advisor.cli"]
ENV = dict(os.environ, NO_COLOR="1")
CLOSED = "(ivig was started with it closed)"
MMN = ROOT / "examples" / "mmn.yaml"


def shell(command: str, cwd=None):
    """`command` run by bash, where `ivig` is the real command (redirections such as >&- apply)."""
    script = f"ivig() {{ {' '.join(IVIG)} \"$@\"; }}; {command}"
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
    assert [f["file"] for f in json.loads(data.stdout)["findings"]] == [f"{rules_copy}/{ESCAPE_NAME}",
                                                                       f"{rules_copy}/{NEWLINE_NAME}"]


def test_a_hidden_yaml_file_is_named_and_a_hidden_folder_is_not_entered(run_cli, rules_copy):
    for name in (".hidden.yaml", ".YAML", ".git/config.yaml", "sub/.also.yml"):
        (rules_copy / name).parent.mkdir(exist_ok=True)
        (rules_copy / name).write_text("topic: stray\nrules: []\n", encoding="utf-8")
    data = run_cli("audit", "check", "--rules", str(rules_copy), "--format", "json")
    assert data.exit_code == 1
    assert [f["file"] for f in json.loads(data.stdout)["findings"]] == [
        f"{rules_copy}/{name}" for name in (".YAML", ".hidden.yaml", "sub/.also.yml")]


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
    assert text.stdout.rstrip().endswith("0 of 1 cases differ; 1 case could not be compared (an error "
                                         "under both rule bases)")
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


@pytest.mark.parametrize("command", ["ivig fhir map -", "ivig test -", "ivig audit coverage -",
                                     "ivig audit diff --base rules -", "ivig audit why-not - mmn-general"])
def test_reading_a_closed_standard_input_is_one_line_and_74(command):
    run = shell(f"{command} <&-", cwd=ROOT)
    assert run.returncode == 74, run.stderr
    assert lines(run.stderr) == [NOTHING_TO_READ]
    assert run.stdout == ""


@pytest.mark.parametrize("command", ["ivig --help", "ivig --version", "ivig -h", "ivig audit --help",
                                     "ivig evaluate --help", "ivig schema"])
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
    bundle = {"resourceType": "Bundle", "type": "collection",
              "entry": [{"fullUrl": f"http://x/Patient/p1", "resource": r} for r in (patient, twin)]}
    path = tmp_path / "dup.json"
    path.write_text(json.dumps(bundle), encoding="utf-8")
    for extra in ([], ["--id", "p1"]):
        run = run_cli("interview", "--resume", str(path), *extra, input="")
        assert run.exit_code == 2, run.output
        assert "choose one" not in run.stderr and "2 cases with the id" not in run.stderr
        assert lines(run.stderr) and all("2 Patients have the id p1" in line for line in lines(run.stderr))
    why = run_cli("audit", "why-not", str(path), "mmn-general")
    assert why.exit_code == 2 and "2 Patients have the id p1" in why.stderr
