"""What a person or a spreadsheet sees: a critical warning is never below the
fold, and nothing from input acts on a terminal or a spreadsheet.

Through the real CLI (`ivig evaluate`), in every output format.
"""

import csv
import io
import json

import pytest

CRITICAL_CASE = {
    "id": "p1",
    "diagnosis": "cidp",
    "treatment_phase": "maintenance",
    "iga_deficiency": True,
    "anti_iga_antibodies": True,
    "renal_disease": True,
    "volume_depletion": True,
    "migraine": True,
    "age": 80,
    "weight_kg": 70,
    "planned_cotherapy": [],
}
QUIET_CASE = {"id": "p2", "diagnosis": "als", "ivig_planned": False}


@pytest.fixture
def cases(tmp_path):
    path = tmp_path / "cases.jsonl"
    path.write_text("".join(json.dumps(c) + "\n" for c in (CRITICAL_CASE, QUIET_CASE)), encoding="utf-8")
    return path


def test_text_puts_critical_warnings_on_the_headline_and_right_under_it(run_cli, cases):
    out = run_cli("evaluate", "--no-chain", str(cases))
    lines = out.output.splitlines()
    assert lines[0].startswith("p1  IVIG not established  -  CRITICAL: anaphylaxis-iga, renal-failure")
    assert "CRITICAL anaphylaxis-iga (severe):" in lines[1]  # with the review's grade of the adverse event
    assert any("CRITICAL renal-failure (severe):" in line for line in lines[2:5])
    summary = next(i for i, line in enumerate(lines) if "long-term treatment of CIDP" in line)
    criticals = [i for i, line in enumerate(lines) if "CRITICAL" in line and line.startswith("    ")]
    assert max(criticals) < summary, "a critical warning below the summary"
    assert not any("CRITICAL" in line for line in lines if line.startswith("p2"))


def test_json_carries_max_severity_beside_the_stance(run_cli, cases):
    out = run_cli("evaluate", "--format", "json", "--quiet", str(cases))
    first, second = json.loads(out.output)
    assert (first["ivig"]["stance"], first["max_severity"]) == ("not-established", "critical")
    assert list(first)[:5] == ["id", "status", "error", "ivig", "max_severity"]
    assert (second["ivig"]["stance"], second["max_severity"], second["warnings"]) == ("not-effective", None, [])


def test_csv_carries_max_severity_and_the_critical_codes(run_cli, cases):
    out = run_cli("evaluate", "--format", "csv", "--quiet", str(cases))
    rows = list(csv.DictReader(io.StringIO(out.output)))
    assert rows[0]["stance"] == "not-established"
    assert rows[0]["max_severity"] == "critical"
    assert rows[0]["critical"] == "anaphylaxis-iga;renal-failure"
    assert (rows[1]["max_severity"], rows[1]["critical"]) == ("", "")


@pytest.mark.parametrize(
    "hostile, cell",
    [
        ('=HYPERLINK("http://evil","x")', '\'=HYPERLINK("http://evil","x")'),
        ("@SUM(1+1)", "'@SUM(1+1)"),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("\t=1", "\\t=1"),
        ("＝1", "'＝1"),
        ("\x1b[2J\x1b[HFAKE", "\\e[2J\\e[HFAKE"),
    ],
)
def test_csv_cells_from_input_never_start_a_formula_nor_hold_an_escape(run_cli, tmp_path, hostile, cell):
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"id": hostile, "diagnosis": "mmn"}) + "\n", encoding="utf-8")
    out = run_cli("evaluate", "--format", "csv", "--quiet", str(path))
    row = next(csv.DictReader(io.StringIO(out.output)))
    assert row["id"] == cell


def test_text_escapes_control_characters_from_input(run_cli, tmp_path):
    forged = "p1\x1b[2J\x1b[H\nFAKE  IVIG first-line\r"
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"id": forged, "diagnosis": "als"}) + "\n", encoding="utf-8")
    out = run_cli("evaluate", str(path))
    assert "\x1b" not in out.output and "\r" not in out.output
    assert not any(line.startswith("FAKE") for line in out.output.splitlines())
    assert "p1\\e[2J\\e[H\\nFAKE" in out.output


@pytest.mark.parametrize("mark", ["\u200f", "\u061c", "\u2028", "\u200b", "\u00ad", "\U000e0041", "\u009b"])
def test_invisible_and_reordering_marks_are_shown_not_obeyed(run_cli, tmp_path, mark):
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"id": f"A{mark}B", "diagnosis": f"als{mark}"}) + "\n", encoding="utf-8")
    for fmt in ("text", "json", "jsonl", "csv"):
        out = run_cli("evaluate", "--format", fmt, "--quiet", str(path)).output
        assert mark not in out, fmt
    data = json.loads(run_cli("evaluate", "--format", "json", "--quiet", str(path)).output)
    assert data[0]["id"] == f"A{mark}B"  # JSON escapes the mark; the data is unchanged
