"""Golden cases through the real CLI: stance, dose, warnings, trace, missing."""

import json

import pytest
import yaml

from conftest import ROOT, jsonl

GOLDEN = yaml.safe_load((ROOT / "tests" / "cases" / "golden.yaml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    from click.testing import CliRunner
    from ivig_advisor.cli import main
    path = tmp_path_factory.mktemp("golden") / "golden.jsonl"
    path.write_text("".join(json.dumps(dict(g["case"], id=g["name"])) + "\n" for g in GOLDEN))
    out = CliRunner().invoke(main, ["evaluate", "--format", "jsonl", "--quiet", str(path)])
    assert out.exit_code == 0, out.output
    return {r["id"]: r for r in jsonl(out.output)}


@pytest.mark.parametrize("golden", GOLDEN, ids=[g["name"] for g in GOLDEN])
def test_golden_case(golden, results):
    result, expect = results[golden["name"]], golden["expect"]
    assert result["status"] == "ok"
    assert result["ivig"]["stance"] == expect["stance"]
    assert result["ivig"]["rule"] == expect["rule"]
    if expect["dose"] is None:
        assert result["dose"] is None
    else:
        for key, value in expect["dose"].items():
            assert result["dose"][key] == value, key
    assert sorted(w["code"] for w in result["warnings"]) == sorted(expect["warnings"])
    if "max_severity" in expect:
        assert result["max_severity"] == expect["max_severity"]
    severity = {w["code"]: w["severity"] for w in result["warnings"]}
    for code, level in expect.get("severity", {}).items():
        assert severity[code] == level, code
    fired = [t["rule"] for t in result["trace"]]
    for rule in expect.get("fired", []):
        assert rule in fired
    for rule in expect.get("not_fired", []):
        assert rule not in fired
    if "missing" in expect:
        if expect["missing"] == []:
            assert result["missing"] == []
        for field in expect["missing"]:
            assert field in result["missing"]
    for field in expect.get("not_missing", []):
        assert field not in result["missing"]


def test_every_rule_is_exercised_by_a_golden_case(results, rulebase):
    fired = {t["rule"] for r in results.values() for t in r["trace"]}
    never = [r.id for r in rulebase.rules if r.id not in fired]
    assert never == [], f"rules no golden case exercises: {never}"


def test_trace_links_every_derived_fact_to_the_firing_that_asserted_it(results):
    for result in results.values():
        fired_before = set()
        for entry in result["trace"]:
            for fact in entry["matched"]:
                if fact["fact"] == "Derived":
                    assert fact["from"] in fired_before
            fired_before.add(entry["rule"])
