"""`ivig interview` at a real terminal: a pseudo-terminal of 80 columns, real
key sequences (arrows, Tab, Ctrl-A), and what the engine received (the saved
case). Also the paths without a terminal, which must carry no escape codes."""

import re
import subprocess
import sys
import time

import pexpect
import yaml
from helpers import (
    CONTROL,
    QUESTION,
    QUESTIONS,
    SAVE,
    columns,
    joined,
    question,
    said_after,
    screen_lines,
    spawn,
    terminal_env,
)

from ivig_advisor.engine import Advisor, RuleBase
from ivig_advisor.engine.clinician.interview import outcome_key
from ivig_advisor.engine.core.analysis import domains
from ivig_advisor.engine.core.words import sentence

ADVISOR = Advisor(RuleBase.load())
SCHEMA = ADVISOR.rulebase.schema
LEFT, UP, TAB, CTRL_A = "\x1b[D", "\x1b[A", "\t", "\x01"


def finish(child, answers=None):
    """Answer every remaining question from `answers` (unknown where silent), and
    skip saving (unless --save saved); the transcript."""
    while (shown := child.expect([QUESTION, SAVE, pexpect.EOF])) == 0:
        value = (answers or {}).get(QUESTIONS[" ".join(child.match.group(2).split())])
        child.expect("> ")
        child.sendline(
            "unknown" if value is None else "yes" if value is True else "no" if value is False else str(value)
        )
    if shown == 1:
        child.sendline("")
        child.expect(pexpect.EOF)
    child.close()
    return child.logfile_read.getvalue()


# -- line editing, history, completion -------------------------------------------------


def test_the_left_arrow_edits_the_answer_and_up_recalls_an_earlier_one(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    child = spawn("--save", "s.yaml", cwd=tmp_path, home=home)
    question(child)
    child.send("gs" + LEFT + "b\r")  # typed gs, went back one character, inserted b
    child.expect("→ Guillain-Barré syndrome")
    first = question(child)
    child.sendline("no")
    second = question(child)
    child.send(UP + "\r")  # the previous answer, from this session's history
    finish(child)
    assert child.exitstatus == 0
    saved = yaml.safe_load((tmp_path / "s.yaml").read_text(encoding="utf-8"))
    assert saved["diagnosis"] == "gbs" and saved[first] is False and saved[second] is False
    assert "not one of the choices" not in child.logfile_read.getvalue()
    assert list(home.iterdir()) == []  # no history file: a patient's answers do not outlive the session


def test_tab_completes_the_choices_of_the_question_and_the_commands(tmp_path):
    child = spawn("--save", "s.yaml", cwd=tmp_path)
    question(child)
    child.send("dermatom" + TAB + "\r")  # a diagnosis name
    first = question(child)
    assert SCHEMA.fields[first].type == "boolean"
    child.send("ye" + TAB + "\r")  # yes/no at a yes/no question
    second = question(child)
    child.send("unkn" + TAB + "\r")  # a command
    third = question(child)
    assert third != second
    child.sendline("quit")
    child.expect(pexpect.EOF)  # --save: the answers so far are saved without asking
    saved = yaml.safe_load((tmp_path / "s.yaml").read_text(encoding="utf-8"))
    assert saved == {"diagnosis": "dermatomyositis", first: True}


def test_the_prompts_style_is_hidden_from_readline_so_the_cursor_is_right(tmp_path):
    """A styled prompt and an answer that nearly fills the line: Ctrl-A must put
    the cursor right after the prompt's visible columns. (Without readline's
    ignore markers it counts the style's bytes as columns, believes the line
    has wrapped, and moves the cursor up a row.)"""
    child = pexpect.spawn(
        sys.executable,
        ["-m", "ivig_advisor.cli", "interview"],
        cwd=str(tmp_path),
        env=terminal_env(colour=True),
        timeout=30,
        dimensions=(24, 80),
    )
    child.expect(b"> ")
    child.sendline(b"gbs")
    child.expect(rb"\?(?:\x1b\[0m)?\r\n")  # the next question
    child.expect(rb"   > \S*\(yes/no\)\S* ")  # its prompt, styled
    prompt = child.after
    assert b"\x1b[2m" in prompt and b"\x01" not in prompt and b"\x02" not in prompt  # readline drops the markers
    visible = columns(CONTROL.sub("", prompt.decode()))
    child.send(b"a" * (80 - visible - 4) + CTRL_A.encode())  # 4 columns short of the edge
    shown = prompt + _drain(child)
    assert _cursor(shown) == (0, visible), shown
    child.sendline(b"\x05\x15quit")  # to the end, erase the line, quit
    child.expect(SAVE.encode())
    child.sendline(b"")
    child.expect(pexpect.EOF)


def _drain(child, quiet=1.0) -> bytes:
    """What the terminal receives until it has been quiet for a while."""
    out = b""
    while True:
        try:
            out += child.read_nonblocking(65536, timeout=quiet)
        except pexpect.TIMEOUT:
            return out


def _cursor(output: bytes, width: int = 80):
    """Where an xterm's cursor ends after `output`, starting at row 0, column 0:
    printing with deferred auto-wrap, CR, LF, BS and the cursor moves readline uses."""
    row = col = 0
    pending = False
    for token in re.findall(rb"\x1b\[[0-9;?]*[A-Za-z]|[\x00-\x7f]|[\xc0-\xff][\x80-\xbf]*", output):
        if token.startswith(b"\x1b["):
            count = int(re.sub(rb"\D", b"", token[2:-1]) or 1)
            kind = token[-1:]
            if kind in b"ABCD":
                pending = False
                row, col = {
                    b"A": (row - count, col),
                    b"B": (row + count, col),
                    b"C": (row, min(col + count, width - 1)),
                    b"D": (row, max(col - count, 0)),
                }[kind]
        elif token == b"\r":
            col, pending = 0, False
        elif token == b"\n":
            row, pending = row + 1, False
        elif token == b"\b":
            col, pending = max(col - 1, 0), False
        elif token >= b" ":
            if pending:
                row, col, pending = row + 1, 0, False
            if col == width - 1:
                pending = True
            else:
                col += 1
    return row, col


# -- no escape codes where there is no terminal ------------------------------------------


def test_a_piped_interview_carries_no_escape_codes(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "ivig_advisor.cli", "interview"],
        input="gbs\nwhy\nno\n" + "unknown\n" * 30,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=terminal_env(colour=True),
    )
    assert "IVIG first-line" in run.stdout and "[1] These rules test this answer" in run.stdout
    for code in ("\x1b", "\x01", "\x02"):
        assert code not in run.stdout and code not in run.stderr


def test_output_to_a_file_from_a_terminal_carries_no_escape_codes(tmp_path):
    """Input is a terminal, output a file: readline stays off, so neither its
    codes nor its prompt markers reach the file."""
    child = pexpect.spawn(
        "/bin/sh",
        ["-c", f"exec '{sys.executable}' -m ivig_advisor.cli interview > out.txt"],
        cwd=str(tmp_path),
        env=terminal_env(colour=True),
        encoding="utf-8",
        timeout=30,
        dimensions=(24, 80),
    )
    for answer in ["als"] + ["unknown"] * 10 + [""]:
        time.sleep(0.3)
        child.sendline(answer)
    child.expect(pexpect.EOF)
    child.close()
    out = (tmp_path / "out.txt").read_text(encoding="utf-8")
    assert child.exitstatus == 0 and "IVIG not effective" in out
    assert not re.search("[\x1b\x01\x02]", out)


def test_without_readline_the_interview_still_runs(tmp_path):
    main = (
        "import sys; sys.modules['readline'] = None; sys.argv = ['ivig', 'interview', '--save', 's.yaml']; "
        "from ivig_advisor.cli import main; main()"
    )
    child = spawn(cwd=tmp_path, command=("-c", main))
    question(child)
    child.sendline("mmn")
    child.expect("→ Multifocal motor neuropathy")
    finish(child)
    assert child.exitstatus == 0
    assert yaml.safe_load((tmp_path / "s.yaml").read_text(encoding="utf-8"))["diagnosis"] == "mmn"


# -- why, up the goal tree ---------------------------------------------------------------


def _until(child, field, answers):
    """Answer from `answers` (unknown where silent) until `field` is asked; the answers given."""
    given = {}
    while True:
        name = question(child)
        if name == field:
            return given
        value = answers.get(name)
        child.sendline(
            "unknown" if value is None else "yes" if value is True else "no" if value is False else str(value)
        )
        if value is not None:
            given[name] = value


def _why(child) -> str:
    """The answer to one `why`, wrapped lines joined."""
    child.sendline("why")
    child.expect("> ")
    return " ".join(" ".join(screen_lines(child.before)).split())


def test_why_at_the_weight_names_the_dose_rule_then_climbs_to_the_top(tmp_path):
    child = spawn(cwd=tmp_path)
    given = _until(
        child, "weight_kg", {"diagnosis": "gbs", "walks_unaided": False, "incomplete_recovery_after_ivig": False}
    )
    dose_rule = ADVISOR.evaluate_mapping(given).dose["rule"]  # the rule whose g/kg the weight makes grams
    first = _why(child)
    assert "[1] No rule tests this answer" in first and f"[{dose_rule};" in first and "DOSE" in first
    assert " ".join(SCHEMA.fields["weight_kg"].help.split()) in first  # what the schema says it is for
    assert "[2] That is the top goal: the dose" in _why(child)
    assert "Nothing is above the top goal" in _why(child)
    child.sendline("70")
    transcript = finish(child)
    assert child.exitstatus == 0 and "= 140 g for this patient" in joined(transcript)


def test_why_climbs_the_goal_tree_the_rule_base_gives(tmp_path, rules_copy):
    """Renaming the derived fact in the rules renames it in the answers to why:
    the chain comes from the rule base, not from the code."""
    gbs = rules_copy / "gbs.yaml"
    gbs.write_text(gbs.read_text(encoding="utf-8").replace("gbs_severe", "trial_entry_met"), encoding="utf-8")
    child = spawn("--rules", str(rules_copy), cwd=tmp_path)
    _until(child, "walks_unaided", {"diagnosis": "gbs"})
    first = _why(child)
    assert "[1] These rules test this answer; they feed trial entry met and decide the stance on IVIG:" in first
    assert "[gbs-severe;" in first and "[gbs-mild-ambulatory;" in first and "gbs-severe-first-line" not in first
    second = _why(child)
    assert "[2] In turn, trial entry met is tested by these rules; they decide the stance on IVIG:" in second
    assert "IF trial entry met is yes THEN IVIG is first-line [gbs-severe-first-line;" in second
    assert "[3] That is the top goal: the stance on IVIG" in _why(child)
    assert "Nothing is above the top goal" in _why(child)
    child.sendline("quit")
    child.expect(SAVE)
    child.sendline("")
    child.expect(pexpect.EOF)


# -- what the clinician reads ------------------------------------------------------------


def test_an_abbreviation_echoes_a_typo_gets_a_suggestion_and_m_lists_each_choice_once(tmp_path):
    child = spawn(cwd=tmp_path)
    question(child)
    ambiguous = said_after(child, "m")
    could_be = re.search(r"'m' could be (.*?): type more letters", ambiguous).group(1).split(", ")
    assert len(could_be) == len(set(could_be)) and "als" in could_be  # ALS by two of its aliases, named once
    child.sendline("gsb")
    child.expect("> ")
    assert "did you mean 'gbs' (Guillain-Barré syndrome)?" in " ".join(" ".join(screen_lines(child.before)).split())
    child.sendline("mg")
    child.expect("→ Myasthenia gravis")
    question(child)
    child.sendline("quit")
    child.expect(SAVE)
    child.sendline("")
    child.expect(pexpect.EOF)


def _could_change(name, known) -> bool:
    """Independently of the interview: does some value of the field change the result?"""
    before = outcome_key(ADVISOR.evaluate_mapping(known))
    for value in [v for v in domains(ADVISOR.rulebase).get(name, []) if v is not None] or [70]:
        result = ADVISOR.evaluate_mapping(dict(known, **{name: list(value) if isinstance(value, tuple) else value}))
        if result.ok and outcome_key(result) != before:
            return True
    return False


def test_the_end_summary_names_questions_and_only_those_that_could_change_the_answer(tmp_path):
    child = spawn("--save", "s.yaml", cwd=tmp_path)
    lines = screen_lines(finish(child, {"diagnosis": "mg", "mg_crisis": True, "weight_kg": 60}))
    start = lines.index("  Unknown, would let more rules decide:")
    listed = []
    for line in lines[start + 1 :]:
        if line.startswith("    - "):
            listed.append(line[6:])
        elif line.startswith("      "):  # a wrapped question
            listed[-1] += " " + line.strip()
        else:
            break
    case = yaml.safe_load((tmp_path / "s.yaml").read_text(encoding="utf-8"))
    result = ADVISOR.evaluate_mapping(case)
    assert {"mg_exacerbation", "thymectomy_planned"} <= set(result.missing)  # not asked: the crisis decided
    assert listed == [SCHEMA.fields[n].question for n in result.missing if _could_change(n, case)]
    assert listed and not any("_" in item for item in listed)


def test_every_line_fits_80_columns_with_whole_words_and_hanging_indents(tmp_path):
    """A long interview (help, why at every level, a review flag, the result and
    the chain), read as the terminal shows it."""
    child = spawn(cwd=tmp_path)
    answers = {"diagnosis": "cidp", "treatment_phase": "maintenance", "weight_kg": 70, "age": 30}
    while child.expect([QUESTION, SAVE]) == 0:
        name = QUESTIONS[" ".join(child.match.group(2).split())]
        child.expect("> ")
        for _ in range(3):
            child.sendline("why")
            child.expect("> ")
        child.sendline("help")
        child.expect("> ")
        value = answers.get(name)
        child.sendline("unknown" if value is None else str(value))
    child.sendline("")
    child.expect(pexpect.EOF)
    transcript = child.logfile_read.getvalue()
    lines = screen_lines(transcript)
    assert "Review flag" in transcript and "Nothing is above the top goal" in transcript
    assert max(columns(line) for line in lines) <= 80
    assert sum(columns(line) > 70 for line in lines) > 20  # the width is used, not just respected
    text = joined(transcript)
    cidp = ADVISOR.evaluate_mapping({"diagnosis": "cidp", "treatment_phase": "maintenance"})
    assert " ".join(cidp.ivig["summary"].split()) in text  # whole words: joined back, the text is intact
    # a why reaches the thrombosis warning from the age, three steps up: the rule's sentence is whole
    assert " ".join(sentence(ADVISOR.rulebase, ADVISOR.rulebase.by_id["thrombosis"]).split()) in text
    for line, nxt in zip(lines, lines[1:]):  # what wraps continues under its own text
        if line.startswith("   - IF ") and not nxt.startswith(("   -", "   (", "   [", "   >", "     (")):
            assert re.match(r" {5}\S", nxt), (line, nxt)
        if re.match(r" {4}(WARNING|CRITICAL|INFO) ", line):  # continued under its message, or the next item
            assert nxt == "" or re.match(r" {4}(WARNING|CRITICAL|INFO) | {2}\S| {13}\S", nxt), (line, nxt)
