"""The compiled matcher (engine/core/matcher.py) against experta's own ReteMatcher (issue 31).

The proof runs both matchers side by side inside one engine (`Lockstep`): at every call experta
makes, both are given the same facts, and what they answer is compared; the engine runs on the
compiled matcher's answer, the Rete's goes to an agenda kept with experta's DepthStrategy beside
the engine's, and the two agendas (so what fires) are compared at every step. It is run over the
golden cases and examples, over hypothesis's cases, and over one case of every region of the
check's walk of the fact space, with the engines of each diagnosis and the engine of every rule.
A generator mutated (a test dropped, an operator flipped) fails it.

Activations with equal keys (one rule, the same facts, two branches of an `any`: "twins") are
compared as a multiset: the Rete lists them in an order that changes from run to run, with
Python's hashes (test_the_rete_orders_twins_differently_from_run_to_run), and they fire alike.
That only twins ever tie is checked at every step.
"""

import copy
import functools
import itertools
import subprocess
import sys
from collections import Counter, OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import List

import pytest
from helpers import ROOT, cut_point_cases
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ivig_advisor.engine import Advisor, RuleBase
from ivig_advisor.engine.audit.check.walk import Walk
from ivig_advisor.engine.core import conditions, matcher
from ivig_advisor.engine.core._experta import Activation, DepthStrategy, Matcher, ReteMatcher
from ivig_advisor.engine.core.compiler import DEFAULT_MATCHER, MATCHERS, Derived, Given, compile_rulebase
from ivig_advisor.engine.core.matcher import CompiledMatcher, NotCompilable
from ivig_advisor.engine.io.cases import read_cases

CORPUS = [str(ROOT / "tests" / "cases"), str(ROOT / "examples")]  # the golden cases and the examples
RULES = RuleBase.load()


# -- the two matchers in one engine ---------------------------------------------------------


def key_of(activation) -> tuple:
    """The key experta's DepthStrategy orders an activation by (its own function, uncached)."""
    return DepthStrategy.get_key.__wrapped__(None, activation)


def shape(activation) -> tuple:
    """What an activation fires: its rule, its key and its facts (the same objects)."""
    return (activation.rule.__name__, repr(key_of(activation)), frozenset(map(id, activation.facts)))


def context(activation) -> frozenset:
    """Its context, each name to the very fact; the InitialFact's key is experta's `__pattern_<id>__`
    of a pattern object, which each matcher has its own of (the engine never passes it on)."""
    return frozenset(("__pattern__" if k.startswith("__pattern_") else k, id(v)) for k, v in activation.context.items())


@dataclass
class Tally:
    """What a proof compared, and every difference it found."""

    differences: List[str] = field(default_factory=list)
    calls: int = 0
    firings: int = 0
    twins: int = 0  # tie groups met (equal keys: one rule, the same facts)
    removed: int = 0  # activations the Rete removed (a NOT newly blocked)


class Lockstep(Matcher):
    """experta's ReteMatcher and the compiled matcher side by side in one engine (test only).

    The engine runs on the compiled matcher's answers, as it does in use (its own strategy and
    agenda, for the engine's life); the Rete's go to an agenda kept here the same way, which must
    be the engine's at every call."""

    tally = Tally()  # what the engines built from now on report to (`lockstep`)

    def __init__(self, engine):
        super().__init__(engine)
        self.tally = Lockstep.tally
        self.rete, self.compiled = ReteMatcher(engine), CompiledMatcher(engine)
        self.strategy = DepthStrategy()  # one for the engine's life, as the engine's own is
        self.agenda: list = []
        self.reset()

    def reset(self):
        if self.agenda:  # the engine's run ended with nothing left to fire
            self._differs("the Rete's agenda is not empty at the end of a run")
        self.rete.reset()
        self.compiled.reset()
        self.agenda = []  # the Rete's, kept with experta's DepthStrategy
        self.popping = False  # experta's run loop fires one activation between two calls

    def changes(self, adding=None, deleting=None):
        adding, deleting = list(adding or ()), list(deleting or ())
        if self.popping and self.agenda:
            self.agenda.pop()  # what the engine fired since the last call, if it was the same
            self.tally.firings += 1
        if [shape(a) for a in self.agenda] != [shape(a) for a in self.engine.agenda.activations]:
            self._differs("the agendas differ (and so what fired)")
        rete = self.rete.changes(adding, deleting)
        compiled = self.compiled.changes(adding, deleting)
        for name, got, want in zip(("added", "removed"), compiled, rete):
            self._compare(name, want, got)
        self.tally.calls += 1
        self.tally.removed += len(rete[1])
        self.strategy._update_agenda(_Agenda(self.agenda), *rete)
        self.popping = self.engine.running
        return compiled

    def _compare(self, what: str, rete: list, compiled: list):
        """Equal activations (rule, key, facts, context), twins as a multiset; only twins tie."""
        if Counter(map(shape, rete)) != Counter(map(shape, compiled)):
            self._differs(f"{what}: Rete {sorted(map(shape, rete))} compiled {sorted(map(shape, compiled))}")
            return
        ties: dict = {}
        for a in rete:
            ties.setdefault(repr(key_of(a)), []).append(shape(a))
        if any(len(set(shapes)) > 1 for shapes in ties.values()):
            self._differs(f"{what}: activations of different rules or facts tie")
        self.tally.twins += sum(1 for shapes in ties.values() if len(shapes) > 1)
        by_shape = {}
        for a in rete:
            by_shape.setdefault(shape(a), [Counter(), a.rule])[0][context(a)] += 1
        for a in compiled:
            contexts, rule = by_shape[shape(a)]
            contexts[context(a)] -= 1
            if a.rule != rule:
                self._differs(f"{what}: {a.rule.__name__} is not the Rete's rule object's equal")
        if any(any(contexts.values()) for contexts, _ in by_shape.values()):
            self._differs(f"{what}: the contexts differ")

    def _differs(self, what: str):
        self.tally.differences.append(f"{getattr(self.engine, 'case', None)}: {what}")


class _Agenda:
    """experta's Agenda over a list of our own (DepthStrategy reads `activations`)."""

    def __init__(self, activations):
        self.activations = activations


@contextmanager
def lockstep():
    """Engines built meanwhile run the two matchers side by side; a fresh tally."""
    MATCHERS["lockstep"] = Lockstep
    Lockstep.tally = Tally()
    try:
        yield Lockstep.tally
    finally:
        del MATCHERS["lockstep"]


def lockstep_advisor(per_disease: bool, rulebase: RuleBase = RULES) -> Advisor:
    """An Advisor with no cache whose engines (each diagnosis's, every rule's, and the later
    evidence's) run in lockstep, reporting to `advisor.tally`."""
    with lockstep() as tally:
        advisor = Advisor(rulebase, per_disease=per_disease, cache=0, matcher="lockstep")
        for diagnosis in [*rulebase.schema.fields["diagnosis"].values, None]:
            advisor.engine_for({"diagnosis": diagnosis} if diagnosis else {})
            advisor.attacher.warm(diagnosis)  # the later evidence's engines too
    advisor.tally = tally
    return advisor


def prove(advisor: Advisor, cases, first_only=False) -> Tally:
    """Every case (name, mapping) through the lockstep engines; `first_only`: stop at the first difference."""
    for name, case in cases:
        for engine in advisor.engines.values():
            engine.case = name
        advisor.evaluate_mapping(case)
        if first_only and advisor.tally.differences:
            break
    return advisor.tally


def corpus_cases():
    return [(f"{r.source}:{r.line}", r.data) for r in read_cases(CORPUS) if r.error is None]


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


@pytest.fixture
def by_matcher(run_cli, monkeypatch):
    """Run a command with `--matcher` rete, then compiled: their results, after checking that
    each run matched with the matcher it was given (the compiled one's calls are counted)."""
    calls = []
    changes = CompiledMatcher.changes

    def counted(self, *args, **kwargs):
        calls.append(1)
        return changes(self, *args, **kwargs)

    monkeypatch.setattr(CompiledMatcher, "changes", counted)

    def run(*args, input=None):
        rete = run_cli(*args[:1], "--matcher", "rete", *args[1:], input=input)
        assert not calls, "--matcher rete matched with the compiled matcher"
        compiled = run_cli(*args[:1], "--matcher", "compiled", *args[1:], input=input)
        assert calls
        return rete, compiled

    return run


def test_scenarios_pass_alike_with_either_matcher(by_matcher):
    """`ivig test --matcher rete` runs a reviewer's scenarios on the reference matcher."""
    rete, compiled = by_matcher("test", "--format", "json", str(ROOT / "tests" / "cases" / "golden.yaml"))
    assert rete.exit_code == compiled.exit_code == 0, rete.output + compiled.output
    assert rete.stdout == compiled.stdout and '"passed"' in rete.stdout


@pytest.mark.parametrize("diagnosis", ["gbs", "mmn", "myasthenia_gravis", "als"])
def test_an_interview_asks_and_answers_alike_with_either_matcher(by_matcher, diagnosis):
    """The questions an interview asks come from the rules that could still fire: the same with
    the reference matcher, to the last character of what is shown."""
    rete, compiled = by_matcher("interview", input=f"{diagnosis}\n" + "no\n" * 6 + "70\n" + "unknown\n" * 30)
    assert rete.exit_code == compiled.exit_code, rete.output + compiled.output
    assert rete.output == compiled.output and "IVIG" in rete.output


@pytest.mark.parametrize("command", ["evaluate", "serve", "interview", "run_tests"])
def test_the_option_offers_every_matcher_the_engine_has(command):
    """cli.py writes the names (it does not import the engine to start): they must be the engine's,
    and its default the Advisor's."""
    from ivig_advisor import cli

    (option,) = [p for p in getattr(cli, command).params if p.name == "matcher"]
    assert sorted(option.type.choices) == sorted(MATCHERS)
    assert option.default == DEFAULT_MATCHER


# -- the proof ------------------------------------------------------------------------------

ENGINES = pytest.mark.parametrize("per_disease", [True, False], ids=["each diagnosis's engine", "every rule's engine"])


@ENGINES
def test_the_golden_cases_and_examples_match_alike_at_every_step(per_disease):
    tally = prove(lockstep_advisor(per_disease), corpus_cases())
    assert tally.differences == []
    assert tally.calls > 500 and tally.firings > 500 and tally.twins > 0 and tally.removed > 0


@functools.cache
def both_engines() -> tuple:
    return lockstep_advisor(True), lockstep_advisor(False)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cut_point_cases(RULES, weight_kg=st.one_of(st.none(), st.integers(20, 150))))
def test_hypothesis_cases_match_alike_at_every_step(case):
    for advisor in both_engines():
        assert prove(advisor, [(repr(case), case)]).differences == []


class Regions(Walk):
    """The check's walk of the fact space (audit/check/walk.py), keeping one case of every region
    it concludes in the last layer: each combination of what every group of rules does there,
    for each state the earlier layers leave.

    It goes the long way (it overrides hooks), and keeps the facts each layer derived apart
    where the check merges states that no later layer can tell apart: merged, the first state's
    case stands for all, and no region's case has an age (`elderly` fires in none), so a matcher
    wrong about age would pass. Kept apart, every rule fires in some region's case (85,194
    regions; the check's own are 56,624)."""

    def __init__(self, rulebase):
        super().__init__(rulebase)
        self.cases = []

    def conclude(self, state, layer, fired, derived):
        if layer.index == len(self.rb.layers) - 1:
            witness = {k: list(v) if isinstance(v, tuple) else v for k, v in state.witness.items() if v is not None}
            self.cases.append((f"region {len(self.cases)}: {witness}", witness))
        return super().conclude(state, layer, fired, derived)

    def project(self, state, layer):
        derived = state.derived
        state = super().project(state, layer)
        state.derived = derived  # what this layer derived stays part of the state's key
        return state


@functools.cache
def region_cases(diagnosis: str) -> list:
    """One case of every region of the walk of a diagnosis's fact space."""
    walk = Regions(RULES)
    walk.walk_diagnosis(diagnosis)
    return walk.cases


DIAGNOSES = RULES.schema.fields["diagnosis"].values
SLICES = 4  # each diagnosis's regions in this many tests (gbs has 64,632 of the 85,194)


@pytest.mark.slow  # 85,194 regions, each through two engines in lockstep: about 9 minutes of CPU
@ENGINES
@pytest.mark.parametrize("diagnosis", DIAGNOSES)
@pytest.mark.parametrize("part", range(SLICES))
def test_one_case_of_every_region_of_the_fact_space_matches_alike(per_disease, diagnosis, part):
    tally = prove(lockstep_advisor(per_disease), region_cases(diagnosis)[part::SLICES])
    assert tally.differences == [] and tally.firings > 0


# -- a mutated generator fails the proof ----------------------------------------------------


def without_checks(pattern):
    return replace(pattern, checks=())


def eq_flipped(pattern):
    return replace(
        pattern,
        checks=tuple(
            (k, "holds", lambda v, c=c: v != c) if how == "eq" else (k, how, c) for k, how, c in pattern.checks
        ),
    )


def threshold_flipped(pattern):
    """ge 65 read as lt 65: the test's negation (conditions.NEGATION) in its place."""
    flipped = []
    for key, how, value in pattern.checks:
        test = value.__self__
        flipped.append((key, how, replace(test, op=conditions.NEGATION[test.op]).holds))
    return replace(pattern, checks=tuple(flipped))


MUTATIONS = {
    # the name whose patterns change, positive or negative ones, the change (None: dropped), the
    # diagnosis whose regions are walked
    "a test dropped": ("treatment_phase", "positive", without_checks, "mmn"),
    "eq flipped to ne": ("conduction_block", "positive", eq_flipped, "mmn"),
    "a threshold flipped (ge to lt)": ("age", "positive", threshold_flipped, "polymyositis"),
    "a NOT dropped (an earlier layer's stance)": ("stance", "negative", None, "lems"),
}


@pytest.mark.parametrize("mutation", MUTATIONS)
def test_a_mutated_generator_fails_the_region_proof(monkeypatch, mutation):
    name, where, change, diagnosis = MUTATIONS[mutation]
    split, mutated = matcher.split, []

    def changed(patterns, here):
        if where != here:
            return patterns
        out = [p if p.name != name else (change(p) if change else None) for p in patterns]
        mutated.extend(p for p, q in zip(patterns, out) if p is not q)
        return [p for p in out if p is not None]

    def mutated_split(elements):
        positives, negatives = split(elements)
        return changed(positives, "positive"), changed(negatives, "negative")

    monkeypatch.setattr(matcher, "split", mutated_split)
    monkeypatch.setattr(matcher, "_PROGRAMS", OrderedDict())  # compiled anew, mutated
    advisor = lockstep_advisor(True)
    assert mutated, "the mutation changed no pattern"
    assert prove(advisor, region_cases(diagnosis), first_only=True).differences


# -- what the proof stands on ---------------------------------------------------------------

TWINS = {  # an `any` over one list field matched three ways, and twice over (refractory, diagnosis)
    "diagnosis": "polymyositis",
    "ivig_planned": True,
    "refractory": False,
    "planned_cotherapy": ["plasma_exchange", "corticosteroids", "immunosuppressants"],
}
ORDER_OF_TWINS = f"""
from ivig_advisor.engine import Advisor
from ivig_advisor.engine.core.compiler import AdvisorEngine
fire, seen = AdvisorEngine.fire, []
AdvisorEngine.fire = lambda self, rule, bound, *rest: (seen.append(sorted(bound)), fire(self, rule, bound, *rest))
for name in ("rete", "compiled"):
    Advisor(cache=0, matcher=name).evaluate_mapping({TWINS!r})
    print(name, seen)
    seen.clear()
"""


def test_the_rete_orders_twins_differently_from_run_to_run():
    """Why the proof compares twins as a multiset: the Rete's order of them is not its own. It
    follows Python's hashes and where objects lie in memory: in 20 runs it gave 5 orders, the
    commonest 15 times; the compiled matcher gives the order the branches are written in."""
    orders = {"rete": set(), "compiled": set()}
    for seed in range(40):  # until the Rete has given two orders: a handful of runs
        env = {"PYTHONHASHSEED": str(seed), "PATH": ""}
        out = subprocess.run(
            [sys.executable, "-c", ORDER_OF_TWINS], env=env, capture_output=True, text=True, check=True
        )
        for line in out.stdout.splitlines():
            name, _, fired = line.partition(" ")
            orders[name].add(fired)
        if len(orders["rete"]) > 1:
            break
    assert len(orders["rete"]) > 1 and len(orders["compiled"]) == 1


def test_facts_retracted_match_alike():
    """The engine never retracts a fact, but a matcher must answer for it: a NOT unblocked, a
    match lost, and a run after them."""
    with lockstep() as tally:
        engine = compile_rulebase(RULES, None, "lockstep")()
    engine.firings_for({"diagnosis": "mmn", "conduction_block": False, "ivig_planned": True}, list(RULES.schema.fields))
    stance = next(f for f in engine.facts.values() if isinstance(f, Derived) and f["name"] == "stance")
    block = next(f for f in engine.facts.values() if isinstance(f, Given) and f["name"] == "conduction_block")
    before = (tally.calls, tally.removed)
    engine.retract(stance)  # mmn-general, held back by the subtype's stance, is free again
    engine.retract(block)  # mmn-without-conduction-block loses its match
    engine.run()
    assert tally.differences == []
    assert tally.calls > before[0] + 2 and tally.removed > before[1]
    assert "mmn-general" in [f.rule.id for f in engine.firings]


def test_a_removed_activation_is_a_new_one():
    """Handed back to experta's DepthStrategy with its key set, an activation could meet a stale
    entry of an earlier equal one in the strategy's lru_cache and be given another's key (then it
    stays on the agenda): the proof over the regions found it."""
    engine = compile_rulebase(RULES, None, "compiled")()
    given, removed = [], []
    changes = engine.matcher.changes

    def watched(adding=None, deleting=None):
        answer = changes(adding, deleting)
        given.extend(answer[0])
        removed.extend((a, a.key) for a in answer[1])
        return answer

    engine.matcher.changes = watched
    engine.firings_for({"diagnosis": "mmn", "conduction_block": False}, list(RULES.schema.fields))
    assert removed and all(key is None and all(a is not b for b in given) for a, key in removed)


def test_a_compiled_activation_equals_and_hashes_as_expertas_own():
    """The strategy and the proof put both kinds in one dict: equal ones must hash alike."""
    engine = compile_rulebase(RULES, None, "compiled")()
    engine.firings_for({"diagnosis": "mmn", "conduction_block": False}, list(RULES.schema.fields))
    (first, *_) = [a for m in engine.matcher.matches for a in m.values()]
    plain = Activation(first.rule, first.facts, first.context)
    plain.key = first.key  # the agenda's key
    assert type(first) is not Activation and first == plain and plain == first and hash(first) == hash(plain)
    plain.key = (0, [])
    assert first != plain and plain != first


def test_engines_of_the_same_rules_share_their_program_and_keep_their_own_rules():
    one, other = (Advisor(rulebase, cache=0).engine_for({"diagnosis": "mmn"}) for rulebase in (RULES, RuleBase.load()))
    assert one.matcher.program is other.matcher.program
    assert one.matcher.rules != () and all(a is not b for a, b in zip(one.matcher.rules, other.matcher.rules))


def test_a_rule_edited_in_memory_is_compiled_anew():
    """A rule base built in memory keeps its files' hash: the program's key names each condition too."""
    edited = copy.copy(RULES)
    elderly = RULES.by_id["elderly"]
    (test,) = conditions.tests(elderly.when)
    edited.rules = [replace(r, when=replace(test, operand=70)) if r is elderly else r for r in RULES.rules]
    case = {"diagnosis": "mmn", "age": 67}
    fired = [{t["rule"] for t in Advisor(rb, cache=0).evaluate_mapping(case).trace} for rb in (RULES, edited)]
    assert "elderly" in fired[0] and "elderly" not in fired[1]


def test_an_unknown_matcher_name_is_refused_at_once():
    with pytest.raises(ValueError, match="unknown matcher 'clips'"):
        Advisor(RULES, matcher="clips")


def other_shapes() -> dict:
    """Elements of rules the compiler never writes (experta imported here, after the door)."""
    from experta import TEST, W

    return {
        "a variable shared": ((("x" << Given(name="a")), ("x" << Given(name="b"))), "a join"),
        "a TEST": ((TEST(lambda: True),), "TEST"),
        "a wildcard": ((("x" << Given(name="a", value=W())),), "field constraint"),
    }


@pytest.mark.parametrize("shape_name", ["a variable shared", "a TEST", "a wildcard"])
def test_a_rule_of_another_shape_is_refused(shape_name):
    elements, words = other_shapes()[shape_name]
    with pytest.raises(NotCompilable, match=words):
        matcher.split(elements)


def test_a_pattern_with_a_constant_that_cannot_be_hashed_gets_an_alpha_memory_of_its_own():
    """Equal patterns share an alpha memory, told equal by their hash; one whose constant has none
    (never written by the compiler) is compiled all the same, on its own."""
    program = matcher.Program(())
    odd = matcher.Pattern(Given, "x", (("value", "eq", ["a"]),), "f1")
    plain = matcher.Pattern(Given, "x", (("value", "eq", "a"),), "f1")
    again = matcher.Pattern(Given, "x", (("value", "eq", "a"),), "f2")
    assert program._memory(odd) != program._memory(odd)
    assert program._memory(plain) == program._memory(again) != program._memory(odd)
