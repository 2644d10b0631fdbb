"""Attacks on issue 31's leaner experta (the door's bookkeeping in core/_experta.py, the alpha
network of core/matcher.py, conditions.truth's kept closures): each test would fail if what the
door writes in place of experta's code computed something else, if the matcher answered a
retraction otherwise than experta's Rete, if threads changed an answer, or if `truth`'s closures
grew with the cases. Notes: /work/notes/issue31-attack-notes.md.

The Rete beside the compiled matcher is tests/core/test_matcher.py's `Lockstep` (imported: the
proof and its comparisons are that module's, not copied).
"""

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest
from experta import DefFacts
from experta.fact import Field
from experta.factlist import FactList
from helpers import cut_point_cases
from hypothesis import HealthCheck, assume, given, settings
from test_matcher import RULES, Lockstep, corpus_cases, lockstep

from ivig_advisor.engine import Advisor
from ivig_advisor.engine.audit.views import why_not
from ivig_advisor.engine.base.errors import CaseInvalid
from ivig_advisor.engine.core import _experta, conditions, matcher
from ivig_advisor.engine.core._experta import AS, NOT, Fact, InitialFact, KnowledgeEngine, Rule
from ivig_advisor.engine.core.compiler import Derived, Given, compile_rulebase

ORDER = list(RULES.schema.fields)


# -- 1. the door's steps against experta's own ----------------------------------------------


@contextmanager
def expertas_own(monkeypatch):
    """experta's code as written, in place of every function the door replaced."""
    with monkeypatch.context() as patched:
        for (owner, name), original in _experta.EXPERTA_ORIGINALS.items():
            patched.setattr(owner, name, original)
        yield


class StrKey(str):
    """A key that is a str, not of type str."""


class Checked(Fact):
    """Not plain: a field to validate."""

    value = Field(int, mandatory=False)


class OwnValidate(Fact):
    def validate(self):
        if self.get("value") == "bad":
            raise ValueError("own validate refused it")


class OwnInit(Fact):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self["made_by"] = "own init"


# each fact as (kind, positional values, keyword fields), raw (nothing frozen yet); made afresh for
# each run (declaring one writes its id into it)
ODD_FACTS = {
    "int keys": (Given, ("first", [2]), {"name": "n"}),
    "the key __ alone": (Given, (), {"__": 1, "name": "n"}),
    "a nested key a__b": (Given, (), {"a__b": 1}),
    "a key __x (special at one end)": (Given, (), {"__x": 1, "name": "n"}),
    "a key x__ (special at one end)": (Given, (), {"x__": 1, "name": "n"}),
    "a key _x_": (Given, (), {"_x_": 1}),
    "a special key __x__": (Given, (), {"__x__": 1, "name": "n"}),
    "a str subclass key": (Given, (), {StrKey("name"): "n", StrKey("__y__"): 2}),
    "a str subclass key with __ inside": (Given, (), {StrKey("p__q"): 1}),
    "nested values frozen": (Given, (), {"name": "n", "value": [1, {"a": [2, {3}]}, {4, 5}]}),
    "a set value": (Derived, (), {"name": "n", "value": {1, 2}}),
    "a dict value": (Derived, (), {"name": "n", "value": {"k": [1]}}),
    "a Field, valid": (Checked, (), {"value": 3}),
    "a Field, invalid": (Checked, (), {"value": "three"}),
    "own validate, passing": (OwnValidate, (), {"value": "good"}),
    "own validate, refusing": (OwnValidate, (), {"value": "bad"}),
    "own __init__": (OwnInit, (), {"value": [1]}),
    "the InitialFact": (InitialFact, (), {}),
}


def maker(what: str):
    """A function making the fact `what` names afresh, by its kind's own code."""
    kind, args, fields = ODD_FACTS[what]
    return lambda: kind(*args, **fields)


def fact_state(fact) -> tuple:
    return (type(fact), [(k, type(k), type(v), v) for k, v in fact.items()], vars(fact), repr(fact))


def outcome(call):
    """What a call gives: its result (a fact's state, an index, None) or the error it raises."""
    try:
        got = call()
    except Exception as error:  # noqa: BLE001 (the error itself is what is compared)
        return ("raised", type(error), error.args)
    return ("gave", fact_state(got) if isinstance(got, Fact) else got)


def factlist_state(facts: FactList) -> tuple:
    return (
        [(idx, fact_state(f)) for idx, f in facts.items()],
        dict(facts.reference_counter),
        facts.last_index,
        [fact_state(f) for f in facts.added],
    )


def declare_twice_and_retract(make) -> tuple:
    """A fact declared, an equal one declared again (refused: experta returns None), one retracted
    and an equal one declared once more: every answer and the fact list after each step."""
    facts, steps = FactList(), []
    for step in ("declare", "again", "retract", "after"):
        if step == "retract":
            steps.append(outcome(lambda: facts.retract(0)))
        else:
            steps.append(outcome(lambda: facts.declare(make())))
        steps.append(factlist_state(facts))
    return tuple(steps)


def engine_declare(make) -> tuple:
    """`engine.declare` of a fact twice on a fresh engine: its answers, the fact list, the agenda."""
    engine = KnowledgeEngine()
    engine.reset()
    answers = (outcome(lambda: engine.declare(make())), outcome(lambda: engine.declare(make(), make())))
    return answers, factlist_state(engine.facts), len(engine.agenda.activations)


@pytest.mark.parametrize("what", list(ODD_FACTS))
def test_the_doors_fact_list_and_declare_answer_as_expertas_own(monkeypatch, what):
    make = maker(what)
    door = (declare_twice_and_retract(make), engine_declare(make))
    with expertas_own(monkeypatch):
        own = (declare_twice_and_retract(make), engine_declare(make))
    assert door == own
    assert door[0][2][0] in ("gave", "raised")  # (the first declare's outcome is compared above)


@pytest.mark.parametrize("what", [w for w, (_, args, _) in ODD_FACTS.items() if not args])
def test_new_fact_makes_what_the_kinds_own_code_makes(what):
    """new_fact(kind, **fields) against kind(**fields), from the same raw fields (new_fact takes
    no positional values), for plain kinds and others."""
    kind, _, fields = ODD_FACTS[what]
    assert outcome(lambda: _experta.new_fact(kind, **fields)) == outcome(lambda: kind(**fields))


@pytest.mark.parametrize("thing", [{"name": "n"}, 5, None], ids=["a dict", "an int", "None"])
def test_what_is_not_a_fact_is_refused_as_experta_refuses_it(monkeypatch, thing):
    def refusals():
        engine = KnowledgeEngine()
        engine.reset()
        return outcome(lambda: FactList().declare(thing)), outcome(lambda: engine.declare(thing))

    door = refusals()
    with expertas_own(monkeypatch):
        assert refusals() == door
    assert door[0][:2] == ("raised", ValueError) and door[1][0] == "raised"


def test_new_fact_refuses_a_value_experta_cannot_freeze_as_experta_does():
    made = outcome(lambda: _experta.new_fact(Given, name="n", value=bytearray(b"x")))
    own = outcome(lambda: Given(name="n", value=bytearray(b"x")))
    assert made == own and made[0] == "raised" and made[1] is TypeError


def test_a_duplicate_fact_is_refused_by_the_engine_and_declares_nothing(monkeypatch):
    """Declared twice in one call and again in another, a fact is numbered once: declare's answer
    for the refused one is None, as experta's."""

    def run():
        engine = compile_rulebase(RULES, None, "compiled")()
        engine.reset()
        first = engine.declare(Given(name="diagnosis", value="mmn"), Given(name="diagnosis", value="mmn"))
        again = engine.declare(Given(name="diagnosis", value="mmn"))
        return first is None, again, sorted(engine.facts), dict(engine.facts.reference_counter)

    door = run()
    with expertas_own(monkeypatch):
        assert run() == door
    assert door[0] is True and door[1] is None


class SpecialUnderscore(Fact):
    """A kind that calls more keys special than Fact does (its own `is_special`): experta's fact
    list then gives equal ids to facts that differ in those keys only."""

    @staticmethod
    def is_special(key):
        return isinstance(key, str) and key.startswith("_")


class HiddenKeys(Fact):
    """A kind whose `keys()` leaves out a nested-looking key: experta's `has_nested_accessor`
    reads `keys()`, so experta declares it."""

    def keys(self):
        return [k for k in super().keys() if k != "a__b"]


def test_a_kind_with_its_own_is_special_is_numbered_as_experta_numbers_it(monkeypatch):
    def make_two():
        facts = FactList()
        answers = [facts.declare(SpecialUnderscore(a=1, _x=1)), facts.declare(SpecialUnderscore(a=1, _x=2))]
        return [a is None for a in answers], dict(facts.reference_counter)

    door = make_two()
    with expertas_own(monkeypatch):
        own = make_two()
    assert own[0] == [False, True]  # experta refuses the second: `_x` is special to this kind
    assert door == own


def test_a_kind_with_its_own_keys_is_checked_as_experta_checks_it(monkeypatch):
    def declare():
        engine = KnowledgeEngine()
        engine.reset()
        return outcome(lambda: engine.declare(HiddenKeys(**{"a__b": 1})))

    door = declare()
    with expertas_own(monkeypatch):
        own = declare()
    assert own[0] == "gave"
    assert door == own


def test_new_fact_with_a_factid_field_does_what_fact_init_does():
    assert outcome(lambda: _experta.new_fact(Given, __factid__=3, name="x")) == outcome(
        lambda: Given(__factid__=3, name="x")
    )


class Seeded(KnowledgeEngine):
    """DefFacts of each signature experta's reset tells apart: named keywords, **kwargs, none."""

    @DefFacts(order=1)
    def named(self, diagnosis, age=None):
        yield Given(name="diagnosis", value=diagnosis)
        yield Given(name="age", value=age)

    @DefFacts(order=2)
    def anything(self, **kwargs):
        yield Derived(name="given", value=sorted(kwargs))

    @DefFacts(order=0)
    def nothing(self):
        yield Given(name="diagnosis", value="mmn")  # the same fact as `named`'s for mmn: refused


def test_a_reset_with_keywords_declares_what_expertas_declares(monkeypatch):
    def reset_twice():
        engine = _experta.trim_overheads(Seeded())
        out = []
        for kwargs in ({"diagnosis": "mmn", "age": 70, "other": 1}, {"diagnosis": "gbs"}):
            engine.reset(**kwargs)
            out.append(factlist_state(engine.facts))
        return out, outcome(lambda: engine.reset(age=3))  # `named` misses its diagnosis

    door = reset_twice()
    with expertas_own(monkeypatch):
        own = reset_twice()
    assert door == own
    assert door[1][0] == "raised" and door[1][1] is TypeError


# -- 2. the matcher on retraction -----------------------------------------------------------

CASE = {
    "diagnosis": "mmn",
    "conduction_block": False,
    "ivig_planned": True,
    "age": 70,
    "igA_deficiency": True,
    "renal_impairment": True,
}


def lockstep_engine(case=CASE):
    """An engine of every rule with the two matchers side by side, after a case's run."""
    with lockstep() as tally:
        engine = compile_rulebase(RULES, None, "lockstep")()
    engine.firings_for({k: v for k, v in case.items() if k in RULES.schema.fields}, ORDER)
    return engine, tally


def in_memories(engine, fact) -> int:
    return sum(any(f is fact for f in facts) for facts in engine.matcher.compiled.alpha)


def test_a_fact_in_several_alpha_memories_retracted_and_declared_again_matches_alike():
    engine, tally = lockstep_engine()
    held = Counter()
    for fact in engine.facts.values():
        held[fact["__factid__"]] = in_memories(engine, fact)
    idx, memories = held.most_common(1)[0]
    assert memories > 3  # the stance: read by many rules' patterns, positive and negative
    fact = engine.facts[idx]
    before = (tally.calls, tally.removed)
    engine.retract(fact)
    assert in_memories(engine, fact) == 0
    engine.run()
    again = engine.declare(type(fact)(**{k: v for k, v in fact.items() if k != "__factid__"}))
    assert again is not None and in_memories(engine, again) == memories
    engine.run()
    engine.retract(again)
    engine.declare(fact)  # the very object retracted before, numbered anew
    engine.run()
    assert tally.differences == []
    assert tally.calls > before[0] + 4 and tally.removed > before[1]


def test_a_retraction_and_a_declaration_in_one_call_match_alike():
    """The matchers are told of a retracted fact and an equal one declared in the same call (the
    fact list changed twice before the engine asks)."""
    engine, tally = lockstep_engine()
    for name in ("diagnosis", "conduction_block", "ivig_planned"):
        fact = next(f for f in engine.facts.values() if f.get("name") == name)
        engine.facts.retract(fact)
        engine.facts.declare(Given(name=name, value=fact["value"]))
        engine.run()
    (diagnosis,) = [f for f in engine.facts.values() if f.get("name") == "diagnosis"]
    engine.facts.retract(diagnosis)
    engine.facts.declare(Given(name="diagnosis", value="cidp"))  # another diagnosis: other rules
    before = tally.calls
    engine.run()
    assert tally.differences == [] and tally.calls > before


def test_every_fact_retracted_one_by_one_matches_alike():
    """Each fact of a run retracted, last first, the engine run after each (a stance retracted frees
    the rules it held back, which fire and derive again)."""
    engine, tally = lockstep_engine()
    for idx in sorted(engine.facts, reverse=True):
        engine.retract(idx)
        engine.run()
    assert tally.differences == [] and tally.removed > 0 and 0 not in engine.facts


class Wide(KnowledgeEngine):
    """Rules of the compiled shapes that the shipped rules lack: a pattern of a kind alone (no
    name), one matched by the InitialFact that prepare_rule puts before a leading NOT, two equal
    patterns bound to two names."""

    @Rule(NOT(Given(name="x")), salience=5)
    def no_x(self):
        self.fired.append("no_x")

    @Rule(AS.f << Given(value=1), salience=4)
    def any_one(self, f):
        self.fired.append(("any_one", f["__factid__"]))

    @Rule(AS.f << Given(name="x"), AS.g << Given(value=1), NOT(Derived(name="stop")), salience=3)
    def x_and_one(self, f, g):
        self.fired.append(("x_and_one", f["__factid__"], g["__factid__"]))

    @Rule(AS.f << Derived(), AS.g << Derived(), salience=2)
    def pairs(self, f, g):
        self.fired.append(("pairs", f["__factid__"], g["__factid__"]))


def wide_engine():
    """Wide on the two matchers side by side (the compiled one reads these class attributes)."""
    rules = [Wide.no_x, Wide.any_one, Wide.x_and_one, Wide.pairs]
    members = {"__matcher__": Lockstep, "experta_rules": tuple(rules), "matching_key": ("wide attack",)}
    with lockstep() as tally:
        engine = type("WideEngine", (Wide,), members)()
    engine.fired = []
    return engine, tally


def test_a_wide_pattern_and_the_initial_fact_retracted_and_declared_again_match_alike():
    engine, tally = wide_engine()
    assert Given in engine.matcher.compiled.program.wide and InitialFact in engine.matcher.compiled.program.wide
    engine.reset()
    engine.run()
    one, x = Given(name="y", value=1), Given(name="x", value=1)  # x is in two alpha memories
    engine.declare(one, x, Derived(name="a"), Derived(name="b"))
    engine.run()
    engine.retract(x)
    engine.run()
    engine.retract(0)  # the InitialFact: the leading NOT's rule loses its match
    engine.declare(InitialFact())
    engine.declare(Given(name="x", value=1))
    engine.declare(Derived(name="stop"))
    engine.run()
    engine.retract(one)
    engine.declare(Given(name="y", value=1))
    engine.run()
    assert tally.differences == []
    assert tally.removed > 0 and tally.firings >= 6
    assert "no_x" in engine.fired and any(f[0] == "pairs" for f in engine.fired if isinstance(f, tuple))


# -- 3. threads -----------------------------------------------------------------------------

SAMPLE = corpus_cases()[:24]


def answers(advisor: Advisor, cases) -> list:
    return [advisor.evaluate_mapping(case).to_dict() for _, case in cases]


def test_advisors_built_and_run_in_threads_answer_as_one_thread_does(monkeypatch):
    """Several threads build their own Advisors at once (programs compiled anew under the lock,
    the door's table of plain kinds filled from scratch, truth's closures cleared every few
    conditions) and run the same cases, one of them on experta's Rete: every answer is the
    single thread's."""
    alone = answers(Advisor(cache=0), SAMPLE)
    monkeypatch.setattr(matcher, "_PROGRAMS", type(matcher._PROGRAMS)())
    monkeypatch.setattr(_experta, "_PLAIN_KINDS", {})
    monkeypatch.setattr(conditions, "_TRUTHS", {})
    monkeypatch.setattr(conditions, "TRUTHS_KEPT", 7)  # cleared again and again, from every thread
    start = threading.Barrier(4)

    def worker(turn: int) -> list:
        start.wait()
        advisor = Advisor(cache=0, per_disease=bool(turn % 2), matcher="rete" if turn == 3 else "compiled")
        cases = SAMPLE[turn:] + SAMPLE[:turn]  # each thread in its own order
        got = answers(advisor, cases)
        return got[-turn:] + got[:-turn] if turn else got

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(worker, range(4)))
    assert all(result == alone for result in results)
    assert len(matcher._PROGRAMS) >= 1 and _experta._PLAIN_KINDS.get(Given) is True


def test_truth_from_threads_while_its_closures_are_cleared(monkeypatch):
    conds = [r.when for r in RULES.rules] + [w for w, _, _, _ in RULES.schema.constraints]
    cases = [case for _, case in SAMPLE]

    def lookup_of(case):
        return lambda name: [case[name]] if name in case else conditions.UNKNOWN

    expected = [[conditions._truth_function(c)(lookup_of(case)) for c in conds] for case in cases]
    monkeypatch.setattr(conditions, "_TRUTHS", {})
    monkeypatch.setattr(conditions, "TRUTHS_KEPT", 5)

    def worker(turn: int) -> bool:
        return all(
            [conditions.truth(c, lookup_of(case)) for c in conds] == want
            for _ in range(3)
            for case, want in zip(cases[turn:] + cases[:turn], expected[turn:] + expected[:turn])
        )

    with ThreadPoolExecutor(4) as pool:
        assert all(pool.map(worker, range(4)))
    assert len(conditions._TRUTHS) <= 5


# -- 4. truth's closures stay as many as the rule base's conditions -------------------------


def condition_nodes(cond) -> list:
    """A condition and every condition inside it (each an object truth may be asked of)."""
    if isinstance(cond, conditions.Test):
        return [cond]
    inner = [cond.item] if isinstance(cond, conditions.Not) else list(cond.items)
    return [cond] + [node for item in inner for node in condition_nodes(item)]


def rulebase_conditions(rulebase) -> dict:
    """id -> every condition object of a rule base: its rules', its schema's constraints', its later
    evidence's situations'."""
    roots = [r.when for r in rulebase.rules]
    roots += [c for when, require, _, _ in rulebase.schema.constraints for c in (when, require)]
    roots += [e.when for e in rulebase.later.entries if getattr(e, "when", None) is not None]
    return {id(node): node for root in roots for node in condition_nodes(root)}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cut_point_cases(RULES, diagnosis="gbs"))
def test_truth_is_asked_only_of_the_rule_bases_own_conditions(case):
    """Evaluation (missing fields, undecided rules), the interview's analysis and why-not over many
    cases: every closure truth keeps is of a condition object of the rule base, never one made per
    case, so the table stays bounded by the rule base's conditions."""
    advisor = ADVISOR
    try:
        advisor.validate(case)
    except CaseInvalid:
        assume(False)  # a case the schema's constraints refuse (truth asked of them all the same)
    advisor.evaluate_mapping(case)
    why_not(advisor, case, "mmn-general")
    own = rulebase_conditions(advisor.rulebase)
    strangers = [kept[0] for key, kept in conditions._TRUTHS.items() if own.get(key) is not kept[0]]
    assert strangers == []
    assert len(conditions._TRUTHS) <= len(own)


ADVISOR = Advisor(RULES, cache=0)


@pytest.fixture(autouse=True)
def _truths_of_this_file_only(request, monkeypatch):
    """truth's table as this file's tests leave it (other modules' rule bases stay out of it)."""
    if request.node.name.startswith("test_truth_is_asked_only"):
        monkeypatch.setattr(conditions, "_TRUTHS", {})
