"""Later evidence (issue 28): the later-evidence file checked on load with file:line errors
(core/later.py), and attached to a case after the rules have decided, never changing what
they decide (core/attach.py)."""

import copy
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ivig_advisor.engine import Advisor, RuleBase
from ivig_advisor.engine.base.errors import RuleBaseInvalid
from ivig_advisor.engine.core import conditions
from ivig_advisor.engine.core.analysis import domains
from ivig_advisor.engine.core.later import LaterEvidence

RULES = RuleBase.load()
SPACE = domains(RULES)
WITH = Advisor(RULES, cache=0)
WITHOUT_RULES = copy.copy(RULES)
WITHOUT_RULES.later = LaterEvidence()
WITHOUT = Advisor(WITHOUT_RULES, cache=0)


def edited(rules_copy, old: str, new: str):
    """The copy of the rules with one edit to its later-evidence file; the line of the edit."""
    path = rules_copy / "later-evidence.yaml"
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new), encoding="utf-8")
    return text[: text.index(old)].count("\n") + 1


def load_errors(rules_copy) -> list:
    with pytest.raises(RuleBaseInvalid) as caught:
        RuleBase.load(rules_copy)
    return [str(e) for e in caught.value.errors]


SID_QUOTE = """      quote: >-
        Patients given SID had more serious adverse events (35% vs 16% in the first 30 days),
        including thromboembolic events, than those in the placebo group.
"""


def test_an_entry_whose_quote_is_removed_fails_the_load_at_its_line(rules_copy, run_cli):
    line = edited(rules_copy, SID_QUOTE, "")
    result = run_cli("evaluate", "--rules", str(rules_copy), "examples/")
    assert result.exit_code != 0
    assert f"later-evidence.yaml:{line}" in result.output
    assert "sid-gbs-second-course.source" in result.output and "source.quote is missing" in result.output


def test_an_entry_whose_source_is_removed_fails_the_load_naming_the_entry(rules_copy):
    start = "    source:\n" + SID_QUOTE
    text = (rules_copy / "later-evidence.yaml").read_text(encoding="utf-8")
    block = text[text.index(start) : text.index("    harm:\n      code: later-second-gbs-course-harm")]
    edited(rules_copy, block, "")
    errors = load_errors(rules_copy)
    assert any("later-evidence.yaml:" in e and "no entry without a source that was read" in e for e in errors), errors


@pytest.mark.parametrize(
    "old, new, said",
    [
        ("      read_at: https://scholar.barrowneuro.org/neurology/1267\n", "", "source.read_at is missing"),
        (
            'checked: "2026-12-06"\n\n  - id: igos-mild-gbs',
            'checked: "6/12/2026"\n\n  - id: igos-mild-gbs',
            "YYYY-MM-DD",
        ),
        ("    pmid: 33743237\n", "    pmid: PMID33743237\n", "a PMID is its number"),
        (
            "    speaks_to: [gbs-second-course]\n    finding: >-\n      Double-blind",
            "    speaks_to: [gbs-2nd-course]\n    finding: >-\n      Double-blind",
            "no rule 'gbs-2nd-course'",
        ),
        (
            "    relation: confirms\n    year: 2021\n    citation: Verboon C, Harbo",
            "    relation: agrees\n    year: 2021\n    citation: Verboon C, Harbo",
            "relation must be one of",
        ),
        (
            "        - walks_unaided: true\n    kind: observational",
            "        - walks_unaided: yes-ish\n    kind: observational",
            "walks_unaided",
        ),
        ("  - id: igos-mild-gbs\n", "  - id: gbs-mild-ambulatory\n", "is the id of a rule"),
        ("    year: 2021\n    citation: Walgaard", "    year: 2031\n    citation: Walgaard", "year must be a year"),
        ("      code: later-second-gbs-course-harm\n", "      code: thrombosis\n", "a rule's warning code"),
    ],
)
def test_a_wrong_entry_fails_the_load_with_file_line_and_field(rules_copy, old, new, said):
    line = edited(rules_copy, old, new)
    errors = load_errors(rules_copy)
    hits = [e for e in errors if said in e]
    assert hits, errors
    assert f"later-evidence.yaml:{line}" in hits[0] or "later-evidence.yaml:" in hits[0], hits


def test_a_published_source_without_pmid_or_doi_is_refused(rules_copy):
    edited(rules_copy, "    doi: 10.1136/jnnp-2019-321496\n", "")
    assert any("needs its PMID or DOI" in e and "isid-gbs-second-course" in e for e in load_errors(rules_copy))


def test_a_gap_must_say_why(rules_copy):
    edited(rules_copy, "    why: Not searched in this round.\n", "    why:\n")
    assert any("a gap names its lead, citation, why" in e for e in load_errors(rules_copy))


def test_the_shipped_file_has_its_entries_and_gaps():
    later = RULES.later
    assert len(later.live()) >= 20 and len(later.gaps) >= 5
    assert all(e.quote and e.read_at.startswith("http") and e.checked for e in later.entries)
    assert {e.relation for e in later.entries} == {"confirms", "extends", "contradicts", "reports-harm"}


def notes(case: dict) -> list:
    return [n["id"] for n in WITH.evaluate(WITH.validate(case)).later_evidence]


def test_the_four_patients_of_the_issue_see_what_applies_to_them():
    assert notes({"diagnosis": "gbs", "incomplete_recovery_after_ivig": True})[:2] == [
        "sid-gbs-second-course",
        "isid-gbs-second-course",
    ]
    assert "ice-cidp-maintenance" in notes({"diagnosis": "cidp", "treatment_phase": "maintenance"})
    assert "ice-cidp-maintenance" not in notes({"diagnosis": "cidp", "treatment_phase": "initial"})
    assert "proderm-dermatomyositis" in notes({"diagnosis": "dermatomyositis"})
    assert notes({"diagnosis": "inclusion_body_myositis", "ivig_planned": False}) == ["aanem-2023-ibm"]


def test_a_retired_entry_is_shown_with_no_case():
    assert RULES.later.by_id["aan-2012-ivig-guideline-gbs"].status == "retired"
    assert "aan-2012-ivig-guideline-gbs" not in notes({"diagnosis": "gbs", "walks_unaided": False})


def test_a_note_names_the_facts_it_attached_on_derived_ones_too():
    result = WITH.evaluate(WITH.validate({"diagnosis": "cidp", "age": 70}))
    note = next(n for n in result.later_evidence if n["id"] == "fda-2013-thrombosis-risk")
    assert {"fact": "Derived", "name": "thrombosis_risk", "value": True} in note["matched"]
    assert note["harm"] == "later-thrombosis-boxed-warning"
    harm = next(w for w in result.warnings if w["code"] == "later-thrombosis-boxed-warning")
    assert harm["later_evidence"] == "fda-2013-thrombosis-risk" and harm["rule"] is None
    assert "FDA" in harm["citation"] and harm["applies"] == "patient"


def test_an_entry_matched_twice_is_noted_once():
    ids = notes({"diagnosis": "lems", "iga_deficiency": True, "anti_iga_antibodies": True})
    assert ids.count("rachid-bonilla-2012-anti-iga") == 1


def field_value(name):
    values = [v for v in SPACE[name] if v is not None]
    return st.sampled_from([list(v) if isinstance(v, tuple) else v for v in values])


@st.composite
def cases(draw):
    case = {"diagnosis": draw(st.sampled_from([d for d in SPACE["diagnosis"] if d is not None]))}
    for name in sorted(SPACE):
        if name != "diagnosis" and draw(st.booleans()):
            case[name] = draw(field_value(name))
    return case


def review_part(result) -> dict:
    """What the review's rules decided: every key but the later evidence and its harm findings."""
    out = json.loads(json.dumps(result.to_dict()))
    out.pop("later_evidence")
    out["warnings"] = [w for w in out["warnings"] if "later_evidence" not in w]
    out.pop("max_severity")  # a harm finding may raise it: it is about this patient
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(cases())
def test_later_evidence_never_changes_what_the_review_decides(case):
    if not RULES.schema.check_constraints(case):
        return
    validated = WITH.validate(case)
    with_later, without = WITH.evaluate(validated), WITHOUT.evaluate(validated)
    assert without.later_evidence == []
    assert review_part(with_later) == review_part(without)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_an_entry_attaches_exactly_when_its_condition_holds(case):
    """The experta engine of the entries agrees with the condition language's own evaluation
    over the case's facts and the facts its rules derived: it attaches as a rule would fire."""
    if not RULES.schema.check_constraints(case):
        return
    run = WITH.run(WITH.validate(case))
    facts, derived = run.case.facts, run.derived

    def lookup(name):
        if name in RULES.schema.fields:
            return [facts[name]] if name in facts else []
        return list(derived.get(name, []))

    holds = [e for e in RULES.later.live() if conditions.truth(e.when, lookup) is True]
    expected = [e.id for e in holds if e.harm] + [e.id for e in holds if not e.harm]  # harm first
    assert [n["id"] for n in run.result.later_evidence] == expected


def test_a_rule_may_not_take_a_code_of_later_evidence(rules_copy, run_cli):
    """`later-` names a finding of later evidence in every output (the CSV's warnings, the headline's
    critical codes): a rule's own warning never wears it."""
    path = rules_copy / "safety.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("        code: thrombosis\n", "        code: later-thrombosis\n", 1), encoding="utf-8")
    result = run_cli("evaluate", "--rules", str(rules_copy), "examples/")
    assert result.exit_code != 0 and "safety.yaml:" in result.output
    assert "'later-' is the mark of later evidence" in result.output


def test_the_cache_gives_the_same_later_evidence_as_no_cache():
    """Attaching after the cache (Advisor.run) and not before: a case answered from a situation
    seen before gets its own later evidence, the same as a run from scratch."""
    cached, plain = Advisor(RULES), WITH
    cases = [
        {"diagnosis": "gbs", "incomplete_recovery_after_ivig": True, "age": 70},
        {"diagnosis": "gbs", "incomplete_recovery_after_ivig": True, "age": 40},
        {"diagnosis": "dermatomyositis", "age": 72, "refractory": True},
        {"diagnosis": "dermatomyositis", "age": 30, "refractory": True},
        {"diagnosis": "cidp", "treatment_phase": "maintenance", "weight_kg": 70},
        {"diagnosis": "cidp", "treatment_phase": "maintenance", "weight_kg": 71.5},
    ]
    for case in cases * 2:
        validated = cached.validate(case)
        assert cached.evaluate(validated).to_dict() == plain.evaluate(validated).to_dict(), case


def test_the_reviews_year_is_data_and_no_entry_is_from_before_it(rules_copy, run_cli):
    """'the review, 2004' and 'Since 2004' come from the manifest's review_year; an entry dated
    before it is refused at its line, and a year that is no year at the manifest's."""
    assert RULES.review_year == 2004
    manifest = rules_copy / "rulebase.yaml"
    manifest.write_text(manifest.read_text(encoding="utf-8").replace("review_year: 2004", "review_year: 2003"))
    shown = run_cli("evaluate", "--rules", str(rules_copy), "examples/mmn.yaml").output
    assert "(the review, 2003: rule mmn-general" in shown and "Since 2003:" in shown
    line = edited(rules_copy, "    year: 2006\n", "    year: 2002\n")
    assert any(
        f"later-evidence.yaml:{line}:" in e and "year must be a year from 2003" in e for e in load_errors(rules_copy)
    )
    manifest.write_text(manifest.read_text(encoding="utf-8").replace("review_year: 2003", "review_year: soon"))
    assert any("rulebase.yaml:" in e and "review_year is the year" in e for e in load_errors(rules_copy))


def test_the_recheck_interval_is_the_files(rules_copy):
    edited(rules_copy, "recheck_after_years: 3\n", "recheck_after_years: 0\n")
    assert any("recheck_after_years is a number of years, 1 or more" in e for e in load_errors(rules_copy))
