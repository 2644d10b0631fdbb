"""The one module that touches experta's insides (engine/_experta.py) and what it assumes."""

import json
from importlib.metadata import version

import yaml
from helpers import ROOT

from ivig_advisor.engine import Advisor, RuleBase
from ivig_advisor.engine.core import _experta
from ivig_advisor.engine.core.compiler import compile_rulebase

GOLDEN = yaml.safe_load((ROOT / "tests" / "cases" / "golden.yaml").read_text(encoding="utf-8"))


def test_the_installed_experta_is_the_one_the_trims_assume():
    """trim_overheads reads experta's private ReteMatcher._get_conflict_set_nodes and
    KnowledgeEngine.get_deffacts: another experta must be looked at before it is used."""
    assert version("experta") == _experta.EXPERTA_VERSION
    assert hasattr(_experta.ReteMatcher._get_conflict_set_nodes, "__wrapped__"), "no longer an lru_cache"


def test_a_trimmed_engine_holds_what_experta_would_compute():
    rulebase = RuleBase.load()
    engine_class = compile_rulebase(rulebase)
    trimmed = engine_class()
    plain = _experta.KnowledgeEngine.__new__(engine_class)
    _experta.KnowledgeEngine.__init__(plain)  # the same class, not trimmed
    assert "get_deffacts" not in vars(plain) and "get_deffacts" in vars(trimmed)
    assert [d.order for d in trimmed.get_deffacts()] == [d.order for d in plain.get_deffacts()]
    # one conflict-set node per rule, or per branch of a rule's `any`
    assert (
        len(trimmed.matcher._get_conflict_set_nodes())
        == len(plain.matcher._get_conflict_set_nodes())
        >= len(rulebase.rules)
    )


def test_results_are_the_same_with_and_without_the_trims(monkeypatch):
    cases = [dict(g["case"], id=g["name"]) for g in GOLDEN]
    # diagnoses interleaved, as in a batch: the shared lru_cache is what the trim replaces
    trimmed = [json.dumps(Advisor(cache=0).evaluate_mapping(c).to_dict()) for c in cases]
    monkeypatch.setattr("ivig_advisor.engine.core.compiler.trim_overheads", lambda engine: engine)
    plain = [json.dumps(Advisor(cache=0).evaluate_mapping(c).to_dict()) for c in cases]
    assert trimmed == plain
