"""`ivig interview`, issue 26: what matters for this patient comes first and stays in sight.

Through the real command: in a pseudo-terminal of 80 columns by 24 rows
(pexpect), or with answers piped in (a script). The patient of the issue: MMN,
prednisone planned, kidney disease and volume depletion.
"""

import os
import re
import subprocess
import sys

import pexpect
import yaml
from helpers import QUESTION, QUESTIONS, SAVE, columns, question, said_after, screen_lines, spawn

from ivig_advisor.engine import RuleBase

# The patient, with no other risk factor: today the steroid question
# comes after five thrombosis questions.
MMN_ON_PREDNISONE = {
    "diagnosis": "mmn",
    "planned_cotherapy": ["corticosteroids"],
    "renal_disease": True,
    "volume_depletion": True,
    "age": 58,
    "weight_kg": 70,
    "conduction_block": True,
    "treatment_phase": "initial",
    "iga_deficiency": False,
    "migraine": False,
    "diabetes": False,
    "thrombocytopenia": False,
    "thrombocytosis": False,
    "hypergammaglobulinemia": False,
}
# The same patient at 81 (as in the chart of tests/cds): the thrombosis warning too.
MMN_ELDERLY = dict(MMN_ON_PREDNISONE, age=81)
ROWS, COLUMNS = 24, 80
SCHEMA = RuleBase.load().schema


def spoken(value) -> str:
    """An answer as typed."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(value) or "none"
    return str(value)


def answer_rest(child, answers):
    """Answer every question from `answers` (unknown where silent) until the save prompt
    (or the end, with --save); the fields asked."""
    asked = []
    while (shown := child.expect([QUESTION, SAVE, pexpect.EOF])) == 0:
        name = QUESTIONS[" ".join(child.match.group(2).split())]
        asked.append(name)
        child.expect("> ")
        child.sendline(spoken(answers[name]) if name in answers else "unknown")
    if shown == 1:
        child.expect(r"\(file name, or Enter to skip\) ")
    return asked


def asked_in_order(*args, cwd, answers):
    """A whole interview in a terminal, answered from `answers`: the fields asked, in order,
    and the transcript up to and including the save prompt."""
    child = spawn(*args, cwd=cwd)
    asked = answer_rest(child, answers)
    shown = child.logfile_read.getvalue()
    child.sendline("")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    return asked, shown


# -- 1. the questions that can raise a warning about this patient come first -----------------


def test_the_steroid_question_comes_among_the_first_three_after_the_diagnosis(tmp_path):
    asked, _ = asked_in_order(cwd=tmp_path, answers=MMN_ON_PREDNISONE)
    assert asked[0] == "diagnosis"
    assert "planned_cotherapy" in asked[1:4], asked
    # the questions that only refine (the stance between two that give IVIG, the grams) come after
    # every question that could still raise a warning about this patient
    for refining in ("conduction_block", "treatment_phase", "weight_kg"):
        if refining in asked:
            assert asked.index(refining) > asked.index("volume_depletion"), asked


def test_the_order_comes_from_the_rules_severities(tmp_path, rules_copy):
    """Demote the critical rule for planned steroids to info in a copy of the rules: the
    steroid question then decides no critical warning, and the kidney questions (which
    can still give the critical renal-failure warning) come before it."""
    shipped, _ = asked_in_order(cwd=tmp_path, answers=MMN_ON_PREDNISONE)
    assert shipped.index("planned_cotherapy") < shipped.index("renal_disease"), shipped
    mmn = rules_copy / "mmn.yaml"
    text = mmn.read_text(encoding="utf-8")
    at = text.index("severity: critical", text.index("id: mmn-corticosteroids-planned"))
    mmn.write_text(text[:at] + "severity: info" + text[at + len("severity: critical") :], encoding="utf-8")
    demoted, _ = asked_in_order("--rules", str(rules_copy), cwd=tmp_path, answers=MMN_ON_PREDNISONE)
    assert demoted.index("planned_cotherapy") > demoted.index("volume_depletion"), demoted


# -- 2. the last screen at 80x24 --------------------------------------------------------------


def last_screen(transcript: str, rows: int = ROWS, width: int = COLUMNS):
    """The rows a terminal of `rows` x `width` shows at the end of `transcript` (the cursor's
    row last): each line takes as many rows as its columns need."""
    shown = []
    for line in screen_lines(transcript):
        cut = [line[i : i + width] for i in range(0, max(len(line), 1), width)] if columns(line) > width else [line]
        shown.extend(cut)
    return shown[-rows:]


def test_the_last_screen_at_80x24_shows_the_headline_and_the_most_severe_warnings_about_the_patient(tmp_path):
    _, transcript = asked_in_order(cwd=tmp_path, answers=MMN_ELDERLY)
    screen = last_screen(transcript)
    text = " ".join(" ".join(screen).split())
    assert screen[-1].startswith("Save the case to a file?")
    assert "interview IVIG first-line - CRITICAL: avoid-corticosteroids, renal-failure" in text, "\n".join(screen)
    for code in ("avoid-corticosteroids", "renal-failure"):
        assert re.search(rf"^ +CRITICAL +{code}\b", "\n".join(screen), re.M), "\n".join(screen)
    assert re.search(r"^ +WARNING +thrombosis\b", "\n".join(screen), re.M), "\n".join(screen)
    # the rest came before: the chain, and the lines no clinician needs on the last screen
    whole = "\n".join(screen_lines(transcript))
    assert whole.index("How:") < whole.rindex("CRITICAL: avoid-corticosteroids")


# A second GBS course for a patient with two critical risks: later evidence adds two harm findings
# (SID-GBS, the FDA's boxed warning), and the warnings alone fill more than a screen.
GBS_SECOND_COURSE_AT_RISK = {
    "diagnosis": "gbs",
    "incomplete_recovery_after_ivig": True,
    "walks_unaided": False,
    "age": 81,
    "renal_disease": True,
    "volume_depletion": True,
    "iga_deficiency": True,
    "anti_iga_antibodies": True,
    "weight_kg": 70,
}


def test_when_the_warnings_fill_the_screen_the_critical_ones_stand_right_above_the_headline(tmp_path):
    _, transcript = asked_in_order(cwd=tmp_path, answers=GBS_SECOND_COURSE_AT_RISK)
    screen = "\n".join(last_screen(transcript))
    assert re.search(r"^interview +IVIG not established +- +CRITICAL: anaphylaxis-iga, renal-failure", screen, re.M)
    for code in ("anaphylaxis-iga", "renal-failure"):
        assert re.search(rf"^ +CRITICAL +{code}\b", screen, re.M), screen
    whole = "\n".join(screen_lines(transcript))  # the harm findings were shown whole, above
    for code in ("later-second-gbs-course-harm", "later-thrombosis-boxed-warning"):
        assert re.search(rf"^ +WARNING +{code} \(later evidence\):", whole, re.M), code


# -- 3. quit gives the advice so far -------------------------------------------------------------


def interview(script: str, *args, cwd):
    """The real command with `script` as its standard input (not a terminal)."""
    return subprocess.run(
        [sys.executable, "-m", "ivig_advisor.cli", "interview", *args],
        input=script,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=dict(os.environ, NO_COLOR="1"),
    )


def test_quit_shows_the_advice_so_far_and_what_is_still_unknown(tmp_path):
    first = interview("mmn\n", cwd=tmp_path)  # which question comes second is the rules' business
    second = QUESTIONS[re.findall(r"^\d+\. (.+\?)", first.stdout, re.M)[1]]
    answer = spoken(MMN_ON_PREDNISONE[second])
    run = interview(f"mmn\n{answer}\nquit\n", cwd=tmp_path)
    out = " ".join(run.stdout.split())
    assert run.returncode == 1, run.stdout + run.stderr
    advice = out[out.index("The advice so far") :]
    assert "IVIG first-line" in advice and "avoid-corticosteroids" in advice
    assert "Still unknown, could change the advice:" in advice
    assert "Is there pre-existing kidney disease?" in advice  # a question not yet asked
    assert "diagnosis: mmn" in out  # the answers, as before


# -- 4. a typo never silently leads to another disease -------------------------------------------


def test_a_typo_lists_every_equally_near_choice_with_its_label(tmp_path):
    child = spawn(cwd=tmp_path)
    question(child)
    said = said_after(child, "mnm")
    assert (
        "did you mean 'mmn' (Multifocal motor neuropathy) or 'mnd' (Amyotrophic lateral sclerosis (the MMN mimic))?"
    ) in said, said
    child.sendline("cipd")  # a transposition is one edit
    child.expect("> ")
    said = " ".join(" ".join(screen_lines(child.before)).split())
    assert "did you mean 'cidp' (Chronic inflammatory demyelinating polyneuropathy)?" in said, said
    child.sendline("mmn")
    child.expect("→ Multifocal motor neuropathy")
    for _ in range(2):  # the did-you-mean is for every question's choices: a list's, a yes/no's
        name = question(child)
        typo, meant = (
            ("yse", "'yes'") if SCHEMA.fields[name].type == "boolean" else ("cortcosteroids", "'corticosteroids'")
        )
        child.sendline(typo)
        child.expect(f"did you mean {meant}")
        child.expect("> ")
        child.sendline("unknown")
    question(child)
    child.sendline("quit")
    child.expect(SAVE)
    child.sendline("")
    child.expect(pexpect.EOF)


# -- 5. a script's answer that cannot be read stops the script ------------------------------------


def test_a_scripted_answer_that_cannot_be_read_stops_with_the_question_and_the_line(tmp_path):
    first = interview("mmn\n", cwd=tmp_path)
    second = re.findall(r"^\d+\. (.+\?)", first.stdout, re.M)[1]  # 'perhaps' answers none of them
    run = interview("mmn\nperhaps\n" + "unknown\n" * 30, "--save", "s.yaml", cwd=tmp_path)
    assert run.returncode == 2, run.stdout + run.stderr
    assert "line 2 of standard input" in run.stderr and second in run.stderr and "'perhaps'" in run.stderr
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "s.yaml").exists()  # nothing half-answered is saved as if it were the case


def test_at_a_terminal_a_bad_answer_is_asked_again(tmp_path):
    child = spawn("--save", "s.yaml", cwd=tmp_path)
    question(child)
    child.sendline("mmn")
    name = question(child)
    child.sendline("70,5,x")
    child.expect("✗")
    child.expect("> ")
    child.sendline(spoken(MMN_ON_PREDNISONE[name]))
    answer_rest(child, MMN_ON_PREDNISONE)
    child.close()
    assert child.exitstatus == 0
    assert yaml.safe_load((tmp_path / "s.yaml").read_text(encoding="utf-8"))[name] == MMN_ON_PREDNISONE[name]
