"""Later evidence ("Since 2004", issue 28) in what a person and a spreadsheet read, through the real
CLI: the stance says it is the review's, the later evidence is a section of its own, one quiet
line per entry, and a harm finding stands among the patient's warnings, marked and cited.

The entries are read from the rule base, so that the test follows the file's words; what it
holds the output to is where each entry is shown and how."""

import csv
import io
import json
import re

import pytest
from helpers import section
from test_wrap import columns, terminal, words

from ivig_advisor.engine import RuleBase

LATER = RuleBase.load().later.by_id
GBS_SECOND_COURSE = {
    "id": "g2",
    "diagnosis": "gbs",
    "incomplete_recovery_after_ivig": True,
    "walks_unaided": False,
    "age": 70,
}
CIDP_MAINTENANCE = {"id": "c1", "diagnosis": "cidp", "treatment_phase": "maintenance"}
NO_LATER_EVIDENCE = {"id": "a1", "diagnosis": "als", "ivig_planned": False}
# among the entries each case is shown (the JSON's `later_evidence` gives them all, in order)
GBS_NOTES = {"sid-gbs-second-course", "isid-gbs-second-course", "fda-2013-thrombosis-risk"}
GBS_HARM = {
    "later-second-gbs-course-harm": "sid-gbs-second-course",
    "later-thrombosis-boxed-warning": "fda-2013-thrombosis-risk",
}
CIDP_NOTES = {"ice-cidp-maintenance", "ean-pns-cidp-2021-maintenance"}
RELATION_WORDS = {
    "confirms": "confirms the review",
    "extends": "extends the review",
    "contradicts": "contradicts the review",
    "reports-harm": "reports harm",
}


@pytest.fixture
def cases(tmp_path):
    path = tmp_path / "cases.jsonl"
    path.write_text(
        "".join(json.dumps(c) + "\n" for c in (GBS_SECOND_COURSE, CIDP_MAINTENANCE, NO_LATER_EVIDENCE)),
        encoding="utf-8",
    )
    return path


def notes_of(run_cli, path) -> dict:
    """The ids of the later-evidence entries of each case, in order, as its JSON result gives them."""
    out = run_cli("evaluate", "--format", "jsonl", "-q", str(path)).stdout
    return {r["id"]: [n["id"] for n in r["later_evidence"]] for r in map(json.loads, out.splitlines())}


def blocks(text: str) -> dict:
    """The text of each case, by its id (a case starts at a line that is not indented)."""
    found, current = {}, None
    for line in text.splitlines():
        if line and not line.startswith(" "):
            current = line.split()[0]
            found[current] = []
        if current is not None and line:
            found[current].append(line)
    return found


def since_lines(lines):
    """The lines of the 'Since 2004' section: its heading, then the entries (indented deeper)."""
    return section(lines, "  Since 2004:", "    ")


def assert_entry_line(line: str, entry_id: str):
    """One entry on one line: its year, kind and relation, what it found, and where to read it."""
    entry = LATER[entry_id]
    assert line.startswith(f"    {entry.year}  {entry.kind.replace('-', ' ')}, {RELATION_WORDS[entry.relation]}: ")
    ending = entry.link + (f" (warning {entry.harm['code']} above)" if entry.harm else "")
    assert entry.title in line and line.rstrip().endswith(ending), line
    author = entry.citation.split(",")[0]
    assert author in line, line  # the source, named


def test_the_gbs_second_course_shows_its_later_evidence_beside_the_reviews_stance(run_cli, cases):
    lines = blocks(run_cli("evaluate", "-q", str(cases)).stdout)["g2"]
    assert lines[0] == "g2  IVIG not established"  # the headline is the review's stance, unchanged
    assert any(line.startswith("  (the review, 2004: rule gbs-second-course; ") for line in lines)
    section, notes = since_lines(lines), notes_of(run_cli, cases)["g2"]
    assert section[0] == "  Since 2004: later evidence beside the review's advice, not part of it"
    assert GBS_NOTES <= set(notes) and len(section) == 1 + len(notes), section  # one line a note, in a pipe
    for line, entry_id in zip(section[1:], notes):
        assert_entry_line(line, entry_id)
    stance = next(i for i, line in enumerate(lines) if line.startswith("  (the review, 2004: rule"))
    assert lines.index(section[0]) > stance, "later evidence after the review's stance, never in it"
    assert lines.index(section[0]) < next(i for i, line in enumerate(lines) if "General precautions" in line)


def test_a_harm_finding_is_a_patient_warning_marked_as_later_evidence_and_cited(run_cli, cases):
    lines = blocks(run_cli("evaluate", "-q", str(cases)).stdout)["g2"]
    summary = next(i for i, line in enumerate(lines) if line.startswith("  Whether a second IVIG course"))
    for code, entry_id in GBS_HARM.items():
        entry = LATER[entry_id]
        at = next(i for i, line in enumerate(lines) if f" {code} " in line)
        assert lines[at].startswith(f"    WARNING  {code} (later evidence): "), lines[at]
        assert at < summary, "among the patient's warnings, before the stance"
        assert lines[at + 1].startswith("             -> ")
        assert lines[at + 2] == f"             Source: {entry.cited}, {entry.link}"
    # the review's own warning is not marked
    assert any(line.startswith("    WARNING  thrombosis (not graded by the review): ") for line in lines)


def test_the_why_tree_still_explains_the_reviews_conclusions_beside_harm_findings(run_cli, cases):
    lines = blocks(run_cli("evaluate", "-q", str(cases)).stdout)["g2"]
    how = lines[lines.index("  How:") + 1 :]
    assert how[0].startswith("    stance = not-established  ← gbs-second-course")
    assert any(line.startswith("    warning = thrombosis  ← thrombosis") for line in how)
    assert not any("None" in line or "later-" in line for line in how)  # no rule gives a harm finding


def test_cidp_maintenance_keeps_the_reviews_not_established_beside_the_trials_that_contradict_it(run_cli, cases):
    lines = blocks(run_cli("evaluate", "-q", str(cases)).stdout)["c1"]
    assert lines[0] == "c1  IVIG not established"
    assert any(line.startswith("  (the review, 2004: rule cidp-maintenance; ") for line in lines)
    section, notes = since_lines(lines), notes_of(run_cli, cases)["c1"]
    assert CIDP_NOTES <= set(notes) and len(section) == 1 + len(notes), section
    for line, entry_id in zip(section[1:], notes):
        assert_entry_line(line, entry_id)
    ice = section[1 + notes.index("ice-cidp-maintenance")]
    assert "2008  controlled trial, contradicts the review: " in ice
    assert not any("(later evidence)" in line for line in lines)  # no harm: no finding among the warnings


def test_a_case_without_later_evidence_has_no_section(run_cli, cases):
    lines = blocks(run_cli("evaluate", "-q", str(cases)).stdout)["a1"]
    assert not any("Since 2004" in line for line in lines)
    assert any(line.startswith("  (the review, 2004: rule als-not-effective; ") for line in lines)


def test_csv_lists_the_entries_beside_the_warnings(run_cli, cases):
    rows = list(csv.DictReader(io.StringIO(run_cli("evaluate", "--format", "csv", "-q", str(cases)).stdout)))
    header = list(rows[0])
    assert header[-1] == "later_evidence"  # last: every other column is where it was before
    by_id = {row["id"]: row for row in rows}
    assert GBS_NOTES <= set(by_id["g2"]["later_evidence"].split(";"))
    assert set(GBS_HARM) <= set(by_id["g2"]["warnings"].split(";"))  # harm codes among the warnings
    assert CIDP_NOTES <= set(by_id["c1"]["later_evidence"].split(";"))
    assert by_id["a1"]["later_evidence"] == ""
    for case_id, notes in notes_of(run_cli, cases).items():  # the CSV's ids are the JSON's, in its order
        assert by_id[case_id]["later_evidence"] == ";".join(notes)


# -- at a terminal: colour and wrapping --------------------------------------------------------

SGR = re.compile(r"\x1b\[([0-9;]*)m")
ALARM = {"31", "33", "91", "93"}  # red and yellow, as the severities use them


def test_since_2004_is_quiet_in_colour_and_the_harm_finding_is_loud(tmp_path):
    (tmp_path / "g2.json").write_text(json.dumps(GBS_SECOND_COURSE), encoding="utf-8")
    shown, status = terminal("evaluate", "-q", "--no-chain", "g2.json", cwd=tmp_path, colour=True)
    assert status == 0
    lines = shown.splitlines()
    start = next(i for i, line in enumerate(lines) if "Since 2004:" in SGR.sub("", line))
    end = next(i for i, line in enumerate(lines) if "General precautions" in SGR.sub("", line))
    section = lines[start:end]
    assert "\x1b[1m" in section[0] and len(section) > len(GBS_NOTES)  # a heading, bold as the others
    codes = {code for line in section for group in SGR.findall(line) for code in group.split(";")}
    assert not codes & ALARM, section
    harm = next(line for line in lines if "later-second-gbs-course-harm" in line)
    assert "\x1b[33m" in harm  # WARNING in its severity's colour, like the review's warnings


def test_since_2004_wraps_under_its_text_at_a_terminal(tmp_path, run_cli, monkeypatch):
    (tmp_path / "g2.json").write_text(json.dumps(GBS_SECOND_COURSE), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    shown, status = terminal("evaluate", "-q", "g2.json", cwd=tmp_path)
    piped = run_cli("evaluate", "-q", "g2.json").stdout
    assert status == 0 and max(columns(line) for line in shown.splitlines()) <= 80
    assert words(shown) == words(piped)
    lines = shown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("  Since 2004:"))
    entries = 0
    for line in lines[start + 1 :]:
        if re.match(r" {4}20\d\d  ", line):
            entries += 1
        elif not re.match(r" {10}\S|https?://\S+$", line):  # further lines hang under its text; a link is whole
            break
    assert entries == len(notes_of(run_cli, "g2.json")["g2"])
    source = next(i for i, line in enumerate(lines) if line.startswith("             Source: Walgaard"))
    assert all(re.match(r" {13}\S|https?://\S+$", line) for line in lines[source : source + 3])
    for entry_id in GBS_NOTES:  # each link whole on one line: it can be opened
        assert any(LATER[entry_id].link in line for line in lines), entry_id
