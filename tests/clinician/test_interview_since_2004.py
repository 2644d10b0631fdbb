"""The interview's result shows the later evidence ("Since 2004", issue 28) as `ivig evaluate`'s
text does: the Since 2004 lines beside the review's stance, and a harm finding among the
patient's warnings, marked and cited. Through the real `ivig interview` in a pseudo-terminal."""

import pexpect
from helpers import QUESTION, QUESTIONS, SAVE, joined, question
from helpers import spawn_wide as spawn

from ivig_advisor.engine import RuleBase

LATER = RuleBase.load().later.by_id
GBS_SECOND_COURSE = {"diagnosis": "gbs", "incomplete_recovery_after_ivig": True, "walks_unaided": False, "age": 70}


def _spoken(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def interview_to_the_end(child, case: dict) -> str:
    """Answer every question from `case` (unknown where it is silent); what was shown at the end."""
    while child.expect([QUESTION, SAVE]) == 0:
        name = QUESTIONS[" ".join(child.match.group(2).split())]
        child.expect("> ")
        value = case.get(name)
        child.sendline("unknown" if value is None else _spoken(value))
    return child.before


def test_the_result_at_the_end_shows_since_2004_and_the_harm_findings(tmp_path):
    child = spawn(cwd=tmp_path)
    child.expect("> ")
    child.sendline("gbs")
    shown = joined(interview_to_the_end(child, GBS_SECOND_COURSE))
    child.sendline("")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert "interview IVIG not established" in shown
    assert "(the review, 2004: rule gbs-second-course)" in shown
    assert "Since 2004: later evidence beside the review" in shown
    for entry_id in ("sid-gbs-second-course", "isid-gbs-second-course", "fda-2013-thrombosis-risk"):
        entry = LATER[entry_id]
        assert f"{entry.year} " in shown and entry.title in shown and entry.link in shown, entry_id
    for code, entry_id in (
        ("later-second-gbs-course-harm", "sid-gbs-second-course"),
        ("later-thrombosis-boxed-warning", "fda-2013-thrombosis-risk"),
    ):
        assert f"WARNING {code} (later evidence):" in shown, code
        assert f"Source: {LATER[entry_id].cited}" in shown, code


def test_the_advice_so_far_shows_since_2004_when_the_interview_stops_early(tmp_path):
    (tmp_path / "start.yaml").write_text("diagnosis: cidp\ntreatment_phase: maintenance\n", encoding="utf-8")
    child = spawn("--resume", "start.yaml", cwd=tmp_path)
    question(child)
    child.sendline("quit")
    child.expect(SAVE)
    shown = joined(child.before)
    child.sendline("")
    child.expect(pexpect.EOF)
    child.close()
    assert "The advice so far" in shown and "IVIG not established" in shown
    assert "(the review, 2004: rule cidp-maintenance)" in shown
    ice = LATER["ice-cidp-maintenance"]
    assert "Since 2004: later evidence beside the review" in shown
    assert f"{ice.year} controlled trial, contradicts the review: {ice.title}" in shown
