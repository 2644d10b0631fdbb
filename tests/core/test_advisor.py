"""One engine per diagnosis gives the same results as one engine with every rule."""

import yaml
from helpers import ROOT, cut_point_cases
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ivig_advisor.engine import Advisor, RuleBase
from ivig_advisor.engine.audit.check import verify
from ivig_advisor.engine.core.analysis import live_rules

RULES = RuleBase.load()
SPLIT, WHOLE = Advisor(RULES), Advisor(RULES, per_disease=False)


def test_per_disease_engines_hold_fewer_rules(rulebase):
    for diagnosis in rulebase.schema.fields["diagnosis"].values:
        assert len(live_rules(rulebase, diagnosis)) < len(rulebase.rules) / 2, diagnosis


def test_no_rule_left_out_of_a_diagnosis_engine_fires_anywhere_in_the_fact_space(rulebase):
    """The exhaustive walk (held to experta in test_audit) over every combination of every
    diagnosis: what fires is always inside that diagnosis's engine."""
    for coverage in verify(rulebase).coverage:
        kept = {r.id for r in live_rules(rulebase, coverage.diagnosis)}
        assert coverage.fired and coverage.fired <= kept, coverage.diagnosis


def test_golden_cases_give_identical_results():
    for item in yaml.safe_load((ROOT / "tests" / "cases" / "golden.yaml").read_text(encoding="utf-8")):
        assert SPLIT.evaluate_mapping(item["case"]).to_dict() == WHOLE.evaluate_mapping(item["case"]).to_dict()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cut_point_cases(RULES, weight_kg=st.one_of(st.none(), st.integers(20, 150))))
@example({"diagnosis": "miller_fisher", "planned_cotherapy": ["immunosuppressants", "plasma_exchange"]})
def test_random_cases_give_identical_results(data):
    # the example: an `any` matched two ways, and experta ordered the two
    # activations differently in the two engines
    assert SPLIT.evaluate_mapping(data).to_dict() == WHOLE.evaluate_mapping(data).to_dict()
