"""`audit check` at scale (issue 11): the walk over rule bases with many threshold
rules gives exactly what the walk before the issue gave, and big ones complete.

The rule bases are the shipped rules plus generated rules with thresholds on
age and weight (bench/bench_verify.py, which also times them). Speed is the
benchmark's to check, not these tests'.
"""

import sys
import tempfile
from pathlib import Path

import pytest
from helpers import ROOT, cut_point_cases
from hypothesis import HealthCheck, given, settings

from ivig_advisor.engine import Advisor, RuleBase
from ivig_advisor.engine.audit.check import Walk, verify, walk_case
from ivig_advisor.engine.core.analysis import domains

sys.path.insert(0, str(ROOT / "bench"))
from bench_verify import reference_verify, summary, threshold_rules  # noqa: E402

# the walk against bench/'s reference at scale: a benchmark's loops, in the whole suite only
pytestmark = pytest.mark.slow


def generated(tmp_path, n, shape="disease"):
    return RuleBase.load(threshold_rules(tmp_path / f"rules-{shape}-{n}", n, shape=shape))


def test_the_walk_equals_the_reference_on_the_shipped_rules(rulebase):
    assert summary(verify(rulebase)) == summary(reference_verify(rulebase))


@pytest.mark.parametrize("shape, n", [("disease", 4), ("disease", 6), ("shared", 1)])
def test_the_walk_equals_the_reference_on_threshold_rules(tmp_path, shape, n):
    """Findings (kind, rule, place, count and the witness case), per-diagnosis
    combinations, exclusions and fired rules, and each rule's reach."""
    rulebase = generated(tmp_path, n, shape)
    new, old = verify(rulebase), reference_verify(rulebase)
    assert summary(new) == summary(old)
    assert new.states <= old.states


def test_a_few_hundred_threshold_rules_complete(tmp_path):
    rulebase = generated(tmp_path, 150)
    result = verify(rulebase)
    space = domains(rulebase)
    assert len(space["age"]) > 100 and len(space["weight_kg"]) > 100  # the cuts are there
    for coverage in result.coverage:
        total = 1
        for name in coverage.fields:
            total *= len(space[name])
        assert coverage.combinations == total
        assert coverage.excluded < total
    for rule in rulebase.rules:
        assert result.reach[rule.id] <= result.combinations
    # every generated rule either fires somewhere or is reported
    reported = {f.rule for f in result.findings}
    assert all(result.reach[r.id] or r.id in reported for r in rulebase.rules if r.id.startswith("bench-"))


RULES_20 = RuleBase.load(threshold_rules(Path(tempfile.mkdtemp()) / "rules", 20))
ADVISOR_20 = Advisor(RULES_20)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cut_point_cases(RULES_20, diagnosis="mmn"))
def test_the_walk_fires_what_experta_fires_with_threshold_rules(data):
    """The interval walk, one case at a time, against the real engine."""
    rulebase = RULES_20
    if not rulebase.schema.check_constraints({k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}):
        return
    case = ADVISOR_20.validate(data)
    fired = sorted(
        {entry["rule"] for entry in ADVISOR_20.evaluate(case).trace}, key=lambda i: rulebase.by_id[i].position
    )
    assert walk_case(rulebase, case.facts) == fired


class Counting(Walk):
    """A walk that overrides the hook, as a safety check would: it must see every state."""

    def __init__(self, rulebase):
        super().__init__(rulebase)
        self.seen = {}
        self.bad_witness = []

    def conclude(self, state, layer, fired, derived):
        if layer.name == self.rb.layers[-1].name:
            diagnosis = state.witness["diagnosis"]
            self.seen[diagnosis] = self.seen.get(diagnosis, 0) + state.count
            self.bad_witness += [(k, v) for k, v in state.witness.items() if v not in self.domains[k]]
        return super().conclude(state, layer, fired, derived)


def test_a_walk_that_overrides_conclude_sees_every_combination_once(tmp_path):
    rulebase = generated(tmp_path, 6)
    walk = Counting(rulebase)
    result = walk.run()
    assert walk.bad_witness == []
    for coverage in result.coverage:
        assert walk.seen[coverage.diagnosis] == coverage.combinations - coverage.excluded
    assert summary(result) == summary(verify(rulebase))
