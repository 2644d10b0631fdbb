"""The words a person reads: one home for each phrase the system writes.

Every renderer (text, Markdown, HTML, the interview, the audit) and every
error message takes its wording from here, so that a stance, a dose, a rule
or a citation reads the same wherever it appears. What the words are *about*
(which stances exist, which of them give IVIG) is clinical knowledge and
lives in rules/rulebase.yaml; this module only says it.
"""

import difflib
from typing import List, Optional

from . import conditions

# The stance as a headline ("IVIG first-line") and inside a sentence ("IVIG is first-line").
# A stance the manifest adds without words here reads as its own name.
STANCE_LABELS = {
    "first-line": "IVIG first-line",
    "second-line": "IVIG second-line",
    "trial-justified": "IVIG trial justified",
    "not-established": "IVIG not established",
    "not-effective": "IVIG not effective",
    "out-of-scope": "Out of scope",
}
STANCE_PHRASES = {
    "first-line": "IVIG is first-line",
    "second-line": "IVIG is second-line",
    "trial-justified": "a trial of IVIG is justified",
    "not-established": "IVIG is not established",
    "not-effective": "IVIG is not effective",
    "out-of-scope": "the case is outside the review",
}


# What applies to every IVIG infusion, said once among the warnings (evaluate._grouped).
GENERAL_PRECAUTIONS = "General precautions for any IVIG infusion"
GRADE_WORDS = {"mild": "mild", "moderate": "moderate", "severe": "severe", "not-graded": "not graded by the review"}


def grade_tag(grade: Optional[str]) -> str:
    """'(moderate)' beside an adverse event, in the review's grading; '' where none applies."""
    return f"({GRADE_WORDS.get(grade, grade)})" if grade else ""


def precautions_line(items: List[dict]) -> str:
    """The general precautions in one line, each with its grade and action:
    'Infusion reactions early in the infusion (mild): slow the rate. Skin reactions ...'."""
    return " ".join(
        " ".join(filter(None, (w["summary"].rstrip("."), grade_tag(w.get("grade")))))
        + (f": {w['action'][0].lower()}{w['action'][1:].rstrip('.')}." if w.get("action") else ".")
        for w in items
    )


def stance_label(stance: str) -> str:
    """The stance as a headline: 'IVIG first-line'."""
    return STANCE_LABELS.get(stance, stance)


def suggest(word, choices) -> str:
    """ "; did you mean 'x'?" for the closest of `choices`, or ''."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def plain(value):
    """A value as JSON and YAML have it: a tuple, experta's frozenlist or the reader's LocatedList
    becomes a list, and a mapping (the reader's Located) a dict."""
    if isinstance(value, (tuple, list)) or type(value).__name__ == "frozenlist":
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def yes_no(value) -> str:
    return "yes" if value is True else "no" if value is False else str(value)


# -- doses ------------------------------------------------------------------


def patient_grams(dose: dict, weight) -> dict:
    """The grams for this patient: of the course (`total_g`) or of one infusion (`infusion_g`),
    the g/kg times the weight in kg, to 0.1 g; None without a weight or where the dose is the
    other kind. (A run and a replay of a cached situation both give the grams here, so they
    cannot disagree.)"""

    def grams(per_kg):
        return round(per_kg * weight, 1) if weight is not None and per_kg is not None else None

    return {"total_g": grams(dose.get("total_g_per_kg")), "infusion_g": grams(dose.get("infusion_g_per_kg"))}


def dose_line(dose: dict, patient: bool = False) -> str:
    """A regimen as one line: '0.4 g/kg/day x 5 days = 2 g/kg', or a dose per infusion at its
    interval ('0.4 g/kg per infusion, once a week ...'), never written as a course.

    With `patient`, what this patient gets follows: the grams (or why they
    are unknown) and when to repeat.
    """
    if dose.get("per") == "infusion":
        text, grams, each = (
            f"{dose['infusion_g_per_kg']:g} g/kg per infusion, {dose['interval']}",
            "infusion_g",
            " per infusion",
        )
    else:
        total = f"{dose['total_g_per_kg']:g} g/kg"
        if dose.get("g_per_kg_per_day") is not None:
            text = f"{dose['g_per_kg_per_day']:g} g/kg/day x {dose['days']:g} days = {total}"
        else:
            text = f"{total} per course (the review gives the total only)"
        grams, each = "total_g", ""
    if not patient:
        return text
    if dose.get(grams) is not None:
        text += f" = {dose[grams]:g} g{each} for this patient"
    else:
        text += " (no weight given: grams unknown)"
    if dose.get("repeat"):
        text += f"; {dose['repeat']}"
    return text


# -- rules in plain language -------------------------------------------------


def value_label(rulebase, name: str, value) -> str:
    """How a value reads to a person (the schema's labels for case fields)."""
    spec = rulebase.schema.fields.get(name)
    if spec is not None:
        return spec.label(value)
    return yes_no(value)


def condition_text(rulebase, cond) -> str:
    """A rule's condition in words: 'diagnosis is MMN and age is at least 65'."""
    return conditions.describe(cond, lambda n, v: value_label(rulebase, n, v))


def conclusions(rule) -> List[str]:
    """What a rule asserts, one phrase per action."""
    out = []
    for name, value in (rule.then.get("derive") or {}).items():
        out.append(f"{name.replace('_', ' ')} is {yes_no(value)}")
    if "recommend" in rule.then:
        stance = rule.then["recommend"]["stance"]
        out.append(STANCE_PHRASES.get(stance, f"the stance is {stance}"))
    if "dose" in rule.then:
        dose = rule.then["dose"]
        out.append("DOSE " + dose_line(dose) + (f", {dose['repeat']}" if dose.get("repeat") else ""))
    for w in rule.warnings:
        out.append(f"WARN ({w['severity']}) {w['code'].replace('-', ' ')}")
    return out


def sentence(rulebase, rule) -> str:
    """'IF diagnosis is MMN THEN IVIG is first-line; WARN (critical) avoid corticosteroids'."""
    return f"IF {condition_text(rulebase, rule.when)} THEN {'; '.join(conclusions(rule))}"


# -- citations ---------------------------------------------------------------


def citation(rule) -> dict:
    """Where in the review a rule comes from, as data."""
    src = rule.source or {}
    return {
        "section": src.get("section"),
        "passage": src.get("cite"),
        "refs": list(src.get("refs") or []),
        "lines": list(src.get("lines") or []),
        "quote": src.get("quote"),
        "quote_en": src.get("quote_en"),
        "claims": list(rule.claims),
        "assumptions": list(rule.assumptions),
        "evidence": list(rule.evidence),
    }


def provenance(rule, with_assumptions: bool = True, with_claims: bool = True) -> str:
    """The citation as one line: section; refs; TR lines; claims; assumptions; evidence (claims and
    assumptions left out for a view that links each to its entry)."""
    c = citation(rule)
    parts = [c["section"]] if c["section"] else []
    if c["passage"]:
        parts.append(f"passage {c['passage']}")
    if c["refs"]:
        parts.append("refs " + ", ".join(map(str, c["refs"])))
    if c["lines"]:
        parts.append("TR L" + ", ".join(map(str, c["lines"])))
    if c["claims"] and with_claims:
        parts.append("claims " + ", ".join(c["claims"]))
    if c["assumptions"] and with_assumptions:
        parts.append("assumptions " + ", ".join(c["assumptions"]))
    if c["evidence"]:
        parts.append("evidence " + ", ".join(c["evidence"]))
    return "; ".join(parts)


def basis_and_refs(rule) -> str:
    """The short citation a chain or a `why` shows beside a rule: 'review; refs 12, 13'."""
    refs = citation(rule)["refs"]
    return rule.basis + (f"; refs {', '.join(map(str, refs))}" if refs else "")
