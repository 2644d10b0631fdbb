"""Golden cases: tests/cases/golden.yaml is a scenario file, run here by the
library function `ivig test` uses (engine.scenarios.run_scenarios), one test
per scenario; a reviewer adds a case to the file, not to Python."""

import pytest
from helpers import ROOT, jsonl

from ivig_advisor.engine import Advisor, RuleBase
from ivig_advisor.engine.audit.scenarios import read_scenarios, run_scenarios

GOLDEN = ROOT / "tests" / "cases" / "golden.yaml"
SCENARIOS = list(read_scenarios([str(GOLDEN)], RuleBase.load()))
PINNED = {"stance", "rule", "dose", "warnings"}  # what every golden case says, beyond what a scenario must


@pytest.fixture(scope="module")
def outcomes():
    return {o.name: o for o in run_scenarios([str(GOLDEN)], Advisor()).outcomes}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """The golden cases through the real CLI: `ivig evaluate` reads scenario files as cases."""
    from click.testing import CliRunner

    from ivig_advisor.cli import main

    out = CliRunner().invoke(main, ["evaluate", "--format", "jsonl", "--quiet", str(GOLDEN)])
    assert out.exit_code == 0, out.output
    return {r["id"]: r for r in jsonl(out.output)}


@pytest.mark.parametrize("name", [s.name for s in SCENARIOS])
def test_golden_case(name, outcomes):
    outcome = outcomes[name]
    said = [f"{d.key}: {d.message} (line {d.line})" for d in outcome.differences] + [str(e) for e in outcome.errors]
    assert outcome.status == "passed", "\n".join(said)


def test_every_golden_case_pins_stance_rule_dose_and_warnings():
    assert [s.name for s in SCENARIOS if s.errors or not PINNED <= set(s.expect)] == []


def test_ivig_test_runs_the_golden_file(run_cli):
    out = run_cli("test", str(GOLDEN))
    assert out.exit_code == 0, out.output
    assert out.output.strip().endswith(f"{len(SCENARIOS)} scenarios: {len(SCENARIOS)} passed, 0 failed, 0 errors")


def test_every_rule_is_exercised_by_a_golden_case(results, rulebase):
    fired = {t["rule"] for r in results.values() for t in r["trace"]}
    never = [r.id for r in rulebase.rules if r.id not in fired]
    assert never == [], f"rules no golden case exercises: {never}"


def test_trace_links_every_derived_fact_to_the_firing_that_asserted_it(results):
    assert len(results) == len(SCENARIOS)
    for result in results.values():
        fired_before = set()
        for entry in result["trace"]:
            for fact in entry["matched"]:
                if fact["fact"] == "Derived":
                    assert fact["from"] in fired_before
            fired_before.add(entry["rule"])
