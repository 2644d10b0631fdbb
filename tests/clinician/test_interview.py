"""`ivig interview`: the consultation, in-process over the golden cases and
through the real command in a pseudo-terminal (pexpect)."""

import json
import os
import re
import subprocess
import sys

import pexpect
import pytest
import yaml
from helpers import ROOT
from helpers import spawn_wide as spawn

from ivig_advisor.engine import Advisor, RuleBase
from ivig_advisor.engine.base.errors import AnswerInvalid
from ivig_advisor.engine.clinician.interview import Interview, outcome_key
from ivig_advisor.engine.core import conditions
from ivig_advisor.engine.core.analysis import domains

ADVISOR = Advisor(RuleBase.load())
SCHEMA = ADVISOR.rulebase.schema
GOLDEN = yaml.safe_load((ROOT / "tests" / "cases" / "golden.yaml").read_text(encoding="utf-8"))
SAFETY = {
    "iga_deficiency",
    "anti_iga_antibodies",
    "renal_disease",
    "volume_depletion",
    "migraine",
    "age",
    "diabetes",
    "thrombocytopenia",
    "thrombocytosis",
    "hypergammaglobulinemia",
}


def simulate(case: dict):
    """Answer an interview from a case (unknown where the case is silent); return the
    interview, and each field asked with the answers known when it was asked."""
    session = Interview(ADVISOR)
    asked = []
    while True:
        spec = session.next_question()
        if spec is None:
            return session, asked
        assert spec.name not in [name for name, _ in asked], f"{spec.name} asked twice"
        asked.append((spec.name, dict(session.case())))
        value = case.get(spec.name)
        if value is None:
            session.skip(spec.name)
        else:
            session.give(spec.name, value)


def changes_outcome(name, known) -> bool:
    """Independently of the interview: does some value of the field change the result?"""
    before = outcome_key(ADVISOR.evaluate_mapping(known))
    values = [v for v in domains(ADVISOR.rulebase).get(name, []) if v is not None] or [70]
    for value in values:
        trial = dict(known, **{name: list(value) if isinstance(value, tuple) else value})
        result = ADVISOR.evaluate_mapping(trial)
        if result.ok and outcome_key(result) != before:
            return True
    return False


@pytest.mark.parametrize("item", GOLDEN, ids=[g["name"] for g in GOLDEN])
def test_every_question_asked_could_change_the_answer(item):
    session, asked = simulate(item["case"])
    for name, known in asked[1:]:  # the diagnosis is always asked first
        assert changes_outcome(name, known), f"{name} asked but cannot change the result"
    result = session.result()
    direct = ADVISOR.evaluate_mapping(session.case())
    assert result.to_dict() == direct.to_dict()
    expected = item["expect"]
    receives = any(t["rule"].startswith("receives-ivig") for t in result.trace)
    if not receives:  # stance questions come first, and ivig_planned before any safety question
        assert not {name for name, _ in asked} & (SAFETY | {"weight_kg"}), "safety asked without IVIG"
    if result.ivig["stance"] not in ADVISOR.rulebase.ivig_given:
        assert "weight_kg" not in dict(asked), "weight asked without a dose"
    if "weight_kg" in dict(asked):
        assert result.dose is not None
    if item["case"].keys() >= {n for n, _ in asked}:  # every question answered: the golden answer
        assert result.ivig["stance"] == expected["stance"]


# Golden cases that answer every question the interview asks: the branch above
# that compares with the golden answer is reached for these, deterministically.
FULLY_ANSWERED = ["gbs-cannot-walk", "als-every-risk-factor-ivig-not-planned-known"]


@pytest.mark.parametrize("name", FULLY_ANSWERED)
def test_an_interview_answered_from_a_full_case_reaches_the_golden_answer(name):
    item = next(g for g in GOLDEN if g["name"] == name)
    session, asked = simulate(item["case"])
    assert len(asked) > 1 and {n for n, _ in asked} <= item["case"].keys(), "a question the case does not answer"
    result, expected = session.result(), item["expect"]
    assert (result.ivig["stance"], result.ivig["rule"]) == (expected["stance"], expected["rule"])
    assert {w["code"] for w in result.warnings} == set(expected["warnings"])
    if expected.get("dose") is None:
        assert result.dose is None
    else:
        assert {k: result.dose[k] for k in expected["dose"]} == expected["dose"]


def test_answers_in_many_forms():
    session = Interview(ADVISOR)
    diagnosis = SCHEMA.fields["diagnosis"]
    assert session.parse(diagnosis, "mg") == "myasthenia_gravis"
    assert session.parse(diagnosis, "lem") == "lems"
    assert session.parse(diagnosis, "GBS") == "gbs"
    assert session.parse(diagnosis, "3") == list(diagnosis.values)[2]
    with pytest.raises(AnswerInvalid, match="could be"):
        session.parse(diagnosis, "m")
    walks = SCHEMA.fields["walks_unaided"]
    assert [session.parse(walks, t) for t in ("y", "Yes", "TRUE", "n", "no", "Absent")] == [True] * 3 + [False] * 3
    for text in ("maybe", "1", "0"):  # one contract with files: a yes/no is never a number
        with pytest.raises(AnswerInvalid, match="yes or no"):
            session.parse(walks, text)
    with pytest.raises(AnswerInvalid):
        session.parse(SCHEMA.fields["age"], "200")
    assert [session.parse(SCHEMA.fields["weight_kg"], t) for t in ("70", "70 kg", "70.5kg", "70 kilos")] == [
        70,
        70,
        70.5,
        70,
    ]
    with pytest.raises(AnswerInvalid, match=r"write decimals with a point \(70\.5\)"):
        session.parse(SCHEMA.fields["weight_kg"], "70,5")
    assert session.parse(SCHEMA.fields["age"], "65 y") == session.parse(SCHEMA.fields["age"], "065") == 65
    with pytest.raises(AnswerInvalid, match="answer a number"):
        session.parse(SCHEMA.fields["weight_kg"], "70 lb")
    assert session.parse(SCHEMA.fields["planned_cotherapy"], "2, plasma") == ["corticosteroids", "plasma_exchange"]
    assert session.parse(SCHEMA.fields["planned_cotherapy"], "none") == []


def test_back_and_unknown_and_constraints():
    session = Interview(ADVISOR)
    session.give("diagnosis", "gbs")
    session.give("needs_ventilation", True)
    with pytest.raises(AnswerInvalid, match="cannot walk unaided"):
        session.give("walks_unaided", True)
    session.skip("walks_unaided")
    assert session.back() == "walks_unaided" and "walks_unaided" not in session.unknown
    assert session.back() == "needs_ventilation" and "needs_ventilation" not in session.answers
    reasons = [r.rule for r in session.why("walks_unaided")]
    assert reasons[0] == "gbs-severe" and "gbs-severe-first-line" in reasons  # and what it feeds
    assert all(r.startswith("gbs-") for r in reasons), "not every rule behind the stance"


# -- the real command in a pseudo-terminal --------------------------------------

QUESTIONS = {spec.question: name for name, spec in SCHEMA.fields.items() if spec.question}
# The fields the rules that can give a critical warning test.
CRITICAL_FIELDS = {
    test.name
    for rule in ADVISOR.rulebase.rules
    if any(w["severity"] == "critical" for w in rule.warnings)
    for test in conditions.tests(rule.when)
}


QUESTION = re.compile(r"\n(\d+)\. ([^\r\n]+?\?)")


def answer_all(child, case):
    """Answer each question from `case` (unknown where it is silent) until the save
    prompt; return the fields asked, in order."""
    asked = []
    while child.expect([QUESTION, "Save the case to a file", pexpect.EOF]) == 0:
        name = QUESTIONS[child.match.group(2)]
        asked.append(name)
        child.expect("> ")
        value = case.get(name)
        child.sendline("unknown" if value is None else _spoken(value))
    return asked


def unknown_until(child, prompt):
    """Leave every question unknown until `prompt`; all that was shown on the way."""
    shown = ""
    while child.expect([r"\n(?:\x1b\[[0-9;]*m)*\d+\. [^?]+\?", prompt]) == 0:  # bold or plain, maybe wrapped
        shown += child.before + child.after
        child.expect("> ")
        shown += child.before + child.after
        child.sendline("unknown")
    return shown + child.before


def _spoken(value):
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(value) or "none"
    return str(value)


FAMILIES = {
    "neuropathy-gbs": {
        "diagnosis": "gbs",
        "walks_unaided": False,
        "needs_ventilation": False,
        "weight_kg": 70,
        "age": 72,
        "migraine": True,
        "planned_cotherapy": [],
    },
    "neuropathy-cidp": {
        "diagnosis": "cidp",
        "previously_treated": False,
        "cidp_variant": False,
        "diabetes": True,
        "weight_kg": 80,
    },
    "neuropathy-mmn": {
        "diagnosis": "mmn",
        "conduction_block": True,
        "planned_cotherapy": ["corticosteroids"],
        "weight_kg": 68,
    },
    "junction-mg": {
        "diagnosis": "myasthenia_gravis",
        "mg_crisis": True,
        "weight_kg": 60,
        "iga_deficiency": True,
        "anti_iga_antibodies": True,
    },
    "myopathy-dm": {"diagnosis": "dermatomyositis", "refractory": True, "weight_kg": 55},
    "cns-ms": {"diagnosis": "multiple_sclerosis", "ms_presentation": "chronic_optic_neuritis"},
    "out-of-scope": {"diagnosis": "other"},
}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_a_full_interview_per_disease_family_equals_ivig_evaluate(family, tmp_path, run_cli):
    case = FAMILIES[family]
    child = spawn(cwd=tmp_path)
    answer_all(child, case)
    child.sendline("saved.yaml")
    child.expect("Saved the result to saved.result.json")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    interviewed = json.loads((tmp_path / "saved.result.json").read_text(encoding="utf-8"))
    evaluated = json.loads(run_cli("evaluate", str(tmp_path / "saved.yaml"), "--format", "jsonl").stdout)
    for key in ("ivig", "dose", "warnings", "trace", "missing"):
        assert interviewed[key] == evaluated[key], key
    saved = yaml.safe_load((tmp_path / "saved.yaml").read_text(encoding="utf-8"))
    assert {k: v for k, v in saved.items() if k in case} == {k: v for k, v in case.items() if k in saved}


def test_why_a_bad_answer_and_unknown_in_a_terminal(tmp_path):
    child = spawn(cwd=tmp_path)
    child.expect(QUESTION)
    child.sendline("gbs")
    child.expect(QUESTION)
    first = QUESTIONS[child.match.group(2)]
    assert first in CRITICAL_FIELDS  # first, what can still decide a critical warning for this patient
    child.expect("> ")
    child.sendline("why")
    child.expect(r"IF [^\r\n]*WARN \(critical\)")
    child.expect(r"\[[a-z-]+; (review|assumption)")
    child.expect("> ")
    child.sendline("perhaps")
    child.expect("answer yes or no")
    child.expect("> ")
    child.sendline("unknown")
    rest = answer_all(child, {"walks_unaided": False, "needs_ventilation": False, "weight_kg": 70})
    result = child.before  # what was shown before the save prompt
    assert first not in rest
    unknown = result[result.index("Unknown, would let more rules decide:") :]  # after the chain, before the verdict
    assert "- " + SCHEMA.fields[first].question in unknown  # as the clinician read it, not its field name
    child.sendline("")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_back_changes_the_previous_answer(tmp_path):
    child = spawn(cwd=tmp_path)
    child.expect(QUESTION)
    child.sendline("mmn")
    child.expect(QUESTION)
    first = child.match.group(2)
    child.sendline("back")
    child.expect("Back to: Diagnosis\\?")
    child.expect(QUESTION)
    assert child.match.group(2) == "Diagnosis?"
    child.sendline("als")  # ALS: not effective; at most whether IVIG is given anyway is asked
    shown = unknown_until(child, "Save the case")
    assert "IVIG not effective" in shown
    child.sendline("")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0 and first != "Diagnosis?"


def test_ctrl_c_stops_cleanly_and_offers_to_save(tmp_path):
    child = spawn(cwd=tmp_path)
    child.expect(QUESTION)
    child.sendline("gbs")
    child.expect(QUESTION)
    child.expect("> ")
    child.sendintr()
    child.expect("Interview interrupted.")
    child.expect("diagnosis: gbs")
    child.expect("Save the case to a file")
    child.sendline("partial.yaml")
    child.expect("Saved the case to partial.yaml")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1 and "Traceback" not in child.before
    saved = (tmp_path / "partial.yaml").read_text(encoding="utf-8")
    assert "stopped before the end" in saved and yaml.safe_load(saved) == {"diagnosis": "gbs"}


def test_resume_asks_only_what_is_missing(tmp_path):
    (tmp_path / "start.yaml").write_text("id: p7\ndiagnosis: gbs\nwalks_unaided: false\n", encoding="utf-8")
    child = spawn("--resume", "start.yaml", "--save", "done.yaml", cwd=tmp_path)
    child.expect("Resumed from start.yaml: 2 answers given.")
    asked = answer_all(child, {"needs_ventilation": False, "weight_kg": 70})
    child.close()
    assert asked and "diagnosis" not in asked and "walks_unaided" not in asked
    assert child.exitstatus == 0
    saved = yaml.safe_load((tmp_path / "done.yaml").read_text(encoding="utf-8"))
    assert saved["id"] == "p7" and saved["walks_unaided"] is False and saved["weight_kg"] == 70


def test_scripted_answers_from_a_pipe(tmp_path):
    # in the order the rules give: what can raise a warning about this patient (IgA deficiency,
    # kidney disease, a second course: harm found since 2004, age, diabetes, platelets low and
    # high, co-therapy, migraine, serum globulins), then the stance (walking), then the weight
    script = "gbs\nno\nno\nno\n50\nno\nno\nno\nnone\nno\nno\nno\n70\n" + "unknown\n" * 30
    run = subprocess.run(
        [sys.executable, "-m", "ivig_advisor.cli", "interview", "--save", "s.yaml"],
        input=script,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=dict(os.environ, NO_COLOR="1"),
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "IVIG first-line" in run.stdout and "Dose: 0.4 g/kg/day x 5 days = 2 g/kg = 140 g" in run.stdout
    saved = yaml.safe_load((tmp_path / "s.yaml").read_text())
    assert (saved["diagnosis"], saved["age"], saved["walks_unaided"]) == ("gbs", 50, False)  # each on its question


def test_end_of_input_before_the_end_keeps_the_answers(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "ivig_advisor.cli", "interview", "--save", "p.yaml"],
        input="mmn\n",
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=dict(os.environ, NO_COLOR="1"),
    )
    assert run.returncode == 1 and "End of input." in run.stdout and "diagnosis: mmn" in run.stdout
    assert yaml.safe_load((tmp_path / "p.yaml").read_text()) == {"diagnosis": "mmn"}


@pytest.mark.parametrize("no_color", [True, False])
def test_colour_on_a_terminal_and_none_with_no_color(tmp_path, no_color):
    env = dict(os.environ, TERM="xterm-256color")
    env.pop("NO_COLOR", None)
    if no_color:
        env["NO_COLOR"] = "1"
    child = pexpect.spawn(
        sys.executable,
        ["-m", "ivig_advisor.cli", "interview"],
        cwd=str(tmp_path),
        env=env,
        encoding="utf-8",
        timeout=30,
    )
    child.expect("> ")
    child.sendline("als")
    shown = unknown_until(child, "Save the case to a file")
    child.sendline("")
    child.expect(pexpect.EOF)
    assert "IVIG not effective" in shown and "└─ diagnosis = Amyotrophic lateral sclerosis" in shown
    assert ("\x1b[" in shown) is not no_color


@pytest.mark.parametrize("diagnosis", list(SCHEMA.fields["diagnosis"].values))
def test_why_answers_at_every_question_and_climbs_to_a_named_top_goal(diagnosis, capsys):
    """Whatever field is asked (even one no rule waits on), each `why` prints an
    answer, and the climb ends at a top goal that names what it is."""
    from ivig_advisor.engine.clinician.console import _Console

    console = _Console(Interview(ADVISOR, {"diagnosis": diagnosis}), style=lambda text, **_: text)
    for name, spec in SCHEMA.fields.items():
        if name == "id":
            continue
        steps = console.session.why_chain(name)
        for level in range(len(steps) + 2):
            console.show_why(spec, level)
            shown = capsys.readouterr().out
            assert shown.strip(), (name, level)
            for goal in re.findall(r"top goal(?:: | \()([^,.)]*)", shown):  # a top goal is always named
                assert goal.startswith(("the stance on IVIG", "the dose", "the warnings")), shown
            if steps and level == len(steps):
                assert "That is the top goal: " in shown, shown
