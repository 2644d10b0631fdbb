"""The compiled matcher (engine/core/matcher.py) against experta's own ReteMatcher (issue 31)."""

import itertools

import pytest
from helpers import ROOT

CORPUS = [str(ROOT / "tests" / "cases"), str(ROOT / "examples")]  # the golden cases and the examples


# -- through the command line ---------------------------------------------------------------


@pytest.mark.slow  # 16 runs of the corpus, half of them on two worker processes
@pytest.mark.parametrize("fmt", ["jsonl", "json"])
def test_evaluate_gives_the_same_bytes_with_either_matcher(run_cli, fmt):
    for cache, workers in itertools.product(([], ["--no-cache"]), ("1", "2")):
        common = ["evaluate", "--format", fmt, "--quiet", "-j", workers, *cache, *CORPUS]
        rete = run_cli(*common, "--matcher", "rete")
        compiled = run_cli(*common, "--matcher", "compiled")
        assert rete.exit_code == compiled.exit_code == 0, rete.output + compiled.output
        assert rete.stdout == compiled.stdout, (cache, workers)
        assert rete.stdout.count('"stance"') > 50


def test_an_unknown_matcher_is_refused(run_cli):
    out = run_cli("evaluate", "--matcher", "clips", *CORPUS)
    assert out.exit_code == 2 and "'clips' is not one of 'compiled', 'rete'" in out.output


def test_the_option_offers_every_matcher_the_engine_has():
    from ivig_advisor.cli import evaluate
    from ivig_advisor.engine.core.compiler import MATCHERS

    (option,) = [p for p in evaluate.params if p.name == "matcher"]
    assert sorted(option.type.choices) == sorted(MATCHERS)
