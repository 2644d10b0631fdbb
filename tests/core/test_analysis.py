"""What the analysis (core/analysis.py) reads of a run: the rules still undecided, and the fields
worth finding out for them (`missing`)."""

from ivig_advisor.engine import Advisor, RuleBase

BEHIND_A_SETTLED_FIELD = """
  - id: ventilated-probe
    title: A rule added by the test, whose first test a constraint settles
    layer: safety
    when:
      all:
        - diagnosis: gbs
        - walks_unaided: false
        - treatment_phase: maintenance
    then:
      warn: {code: ventilated-probe, severity: info, applies: patient, summary: x, message: x, action: x}
    basis: assumption
    assumptions: [A01]
    rationale: A test of the analysis.
    claims: [C23]
"""


def test_a_field_a_constraint_settles_opens_the_question_behind_it(rules_copy):
    """undecided_rules and missing_fields read a run through two lookups that differ: missing_fields
    also reads what a constraint implies (needing ventilation: not walking unaided). So the rule's
    next test is what is missing, and the settled field is not; undecided_rules, reading the case
    as given, keeps the rule undecided. One lookup for both would ask for neither field."""
    path = rules_copy / "safety.yaml"
    path.write_text(path.read_text(encoding="utf-8") + BEHIND_A_SETTLED_FIELD, encoding="utf-8")
    advisor = Advisor(RuleBase.load(rules_copy), cache=0)
    run = advisor.run(advisor.validate({"id": "v", "diagnosis": "gbs", "needs_ventilation": True, "weight_kg": 70}))
    assert "ventilated-probe" in [r.id for r in run.undecided]
    assert "treatment_phase" in run.result.missing
    assert "walks_unaided" not in run.result.missing
