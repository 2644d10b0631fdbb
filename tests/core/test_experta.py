"""The one module that touches experta's insides (engine/_experta.py) and what it assumes."""

import collections
import hashlib
import inspect
import json
import logging
from importlib.metadata import version

import pytest
import yaml
from experta import W, watchers
from experta.fact import Field
from experta.matchers.rete import mixins
from experta.matchers.rete import nodes as rete_nodes
from helpers import ROOT
from hypothesis import given, settings
from hypothesis import strategies as st

from ivig_advisor.engine import Advisor, RuleBase
from ivig_advisor.engine.core import _experta
from ivig_advisor.engine.core.analysis import live_rules
from ivig_advisor.engine.core.compiler import Derived, Given, compile_rulebase

GOLDEN_FILE = ROOT / "tests" / "cases" / "golden.yaml"
GOLDEN = yaml.safe_load(GOLDEN_FILE.read_text(encoding="utf-8"))
WIRING = ("children", "matcher", "rule")  # what a node of experta's network holds besides its memory


def test_the_installed_experta_is_the_one_the_trims_assume():
    """trim_overheads reads experta's private ReteMatcher._get_conflict_set_nodes and
    KnowledgeEngine.get_deffacts: another experta must be looked at before it is used."""
    assert version("experta") == _experta.EXPERTA_VERSION
    assert hasattr(_experta.ReteMatcher._get_conflict_set_nodes, "__wrapped__"), "no longer an lru_cache"
    assert hasattr(_experta.DepthStrategy.get_key, "cache_info"), (
        "no longer an lru_cache: read _depth_key's proof again"
    )


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


@pytest.mark.parametrize("matcher", ["rete", "compiled"])
def test_results_are_the_same_with_and_without_the_door(monkeypatch, matcher):
    """The trims and experta's logging asked first change no byte of a result: the golden cases
    through each matcher (the logging is experta's engine's too, under either), the door's against
    experta as written."""
    cases = [dict(g["case"], id=g["name"]) for g in GOLDEN]
    # diagnoses interleaved, as in a batch: the shared lru_cache is what the trim replaces
    trimmed = [json.dumps(Advisor(cache=0, matcher=matcher).evaluate_mapping(c).to_dict()) for c in cases]
    for module in ("compiler", "attach"):
        monkeypatch.setattr(f"ivig_advisor.engine.core.{module}.trim_overheads", lambda engine: engine)
    for (owner, name), original in _experta.EXPERTA_ORIGINALS.items():
        monkeypatch.setattr(owner, name, original)  # experta's code as it was written
    monkeypatch.setattr("ivig_advisor.engine.core.compiler.new_fact", lambda kind, **fields: kind(**fields))
    plain = [json.dumps(Advisor(cache=0, matcher=matcher).evaluate_mapping(c).to_dict()) for c in cases]
    assert trimmed == plain


def every_node(root) -> list:
    """Every node of a network, once each: the test's own walk, so that it checks the door's."""
    found: dict = {}

    def visit(node):
        if id(node) not in found:
            found[id(node)] = node
            for child in node.children:
                visit(child.node)

    visit(root)
    return list(found.values())


def memories(engine) -> list:
    """What each node of an engine's network remembers (all it holds but its wiring), in walk order."""
    return [
        (type(node).__name__, {k: v for k, v in vars(node).items() if k not in WIRING})
        for node in every_node(engine.matcher.root_node)
    ]


# -- reset: each node once (issue 31) ---------------------------------------------


def rete_engines(rulebase) -> dict:
    """An engine on experta's own matcher for each diagnosis, as the Advisor builds them."""
    diagnoses = rulebase.schema.fields["diagnosis"].values
    return {d: compile_rulebase(rulebase, live_rules(rulebase, d))() for d in diagnoses}


def run_golden_cases(rulebase, engines: dict) -> None:
    order = list(rulebase.schema.fields)
    for golden in GOLDEN:
        case = rulebase.schema.validate(dict(golden["case"], id=golden["name"]))
        engines[case.facts["diagnosis"]].firings_for(case.facts, order)


def test_a_reset_wipes_each_nodes_memory_once(rulebase, monkeypatch):
    """experta's own reset reaches a node through every path to it (about 400 visits a case for
    about 100 nodes with memory); the door's wipes each once. Counted over the golden cases."""
    wiped: collections.Counter = collections.Counter()  # node -> times its memory was wiped
    resets: collections.Counter = collections.Counter()  # engine -> times it was reset
    own_reset = [c for m in (mixins, rete_nodes) for c in vars(m).values() if "_reset" in getattr(c, "__dict__", {})]

    def counted(wipe):
        def _reset(node):
            wiped[node] += 1
            return wipe(node)

        return _reset

    for cls in own_reset:
        monkeypatch.setattr(cls, "_reset", counted(vars(cls)["_reset"]))
    engine_reset = _experta.KnowledgeEngine.reset

    def counted_reset(engine, **kwargs):
        resets[engine] += 1
        return engine_reset(engine, **kwargs)

    monkeypatch.setattr(_experta.KnowledgeEngine, "reset", counted_reset)
    engines = rete_engines(rulebase)
    run_golden_cases(rulebase, engines)
    assert sum(resets.values()) == len(GOLDEN)
    wrong: collections.Counter = collections.Counter()
    for engine in engines.values():
        with_memory = [n for n in every_node(engine.matcher.root_node) if not isinstance(n, mixins.NoMemory)]
        assert with_memory
        # once when experta builds the node, then once a reset
        wrong.update(
            f"{type(n).__name__} wiped {wiped[n]} times" for n in with_memory if wiped[n] != resets[engine] + 1
        )
    assert not wrong, wrong.most_common(5)


def test_a_trimmed_reset_leaves_every_node_as_expertas_own_reset_does(rulebase, monkeypatch):
    """Two engines of one class (every rule: every kind of node) run each golden case; one is
    reset by experta's own walk, one by the door's: every node's memory is the same after."""
    engine_class = compile_rulebase(rulebase)
    expertas, trimmed = engine_class(), engine_class()
    monkeypatch.delattr(expertas.matcher, "reset")  # the class's: ReteMatcher.reset, experta's own walk
    assert type(expertas.matcher).reset is _experta.ReteMatcher.reset
    assert [kind for kind, _ in memories(expertas)] == [kind for kind, _ in memories(trimmed)]
    order = list(rulebase.schema.fields)
    held = 0
    for golden in GOLDEN:
        case = rulebase.schema.validate(dict(golden["case"], id=golden["name"]))
        for engine in (expertas, trimmed):
            engine.firings_for(case.facts, order)
        assert memories(expertas) == memories(trimmed)
        held += sum(bool(v) for _, memory in memories(trimmed) for v in memory.values())
        for engine in (expertas, trimmed):
            engine.matcher.reset()
        assert memories(expertas) == memories(trimmed)  # the network wiped: every memory empty
        assert not any(v for _, memory in memories(trimmed) for v in memory.values())
        for engine in (expertas, trimmed):
            engine.reset()  # wiped, and InitialFact passed through the network again
        assert memories(expertas) == memories(trimmed)
    assert held > len(GOLDEN)  # the cases did leave something for the resets to wipe


# -- experta's logging, asked first (issue 31) --------------------------------------


# sha256 (16 hex) of experta 1.9.4's source of each function the door replaces
PINNED_SOURCES = {
    "Node.reset": "bf93ee114f0a845c",
    "OneInputNode.activate": "a342e7efc4b44fd1",
    "TwoInputNode.activate_left": "dcfd261193710628",
    "TwoInputNode.activate_right": "674f5ac654d58256",
    "BusNode.add": "c7abc83c21932fe0",
    "BusNode.remove": "88bd1f315e0356df",
    "OrdinaryMatchNode._OrdinaryMatchNode__activation": "4dbfa4085fe0e508",
    "TypeCheck.__call__": "407a7a55da35a4a6",
    "FactCapture.__call__": "6d76ef2ac1b42459",
    "FeatureCheck.__call__": "ab3e65c317b2154f",
    "WhereCheck.__call__": "22b5fd53e3d94202",
    "FactList.declare": "52fe4f426ae1ac60",
    "FactList.retract": "e542645bee216252",
    "KnowledgeEngine.run": "39279e7bc3bcee39",
    "KnowledgeEngine.reset": "e7d3eec3963bd04b",
    "KnowledgeEngine._KnowledgeEngine__declare": "95990fea48314ed4",
    "Strategy.update_agenda": "ea1287bbbd877517",
    "DepthStrategy._update_agenda": "deb2f6264a188da7",
}


def test_what_the_door_rewrites_is_expertas_code_as_pinned():
    """The door's versions are experta 1.9.4's functions with each logging call asked for first:
    a changed experta must be read again before they replace its code."""
    got = {
        f"{owner.__name__}.{name}": hashlib.sha256(inspect.getsource(original).encode()).hexdigest()[:16]
        for (owner, name), original in _experta.EXPERTA_ORIGINALS.items()
    }
    assert got == PINNED_SOURCES
    assert all(getattr(owner, name) is not original for (owner, name), original in _experta.EXPERTA_ORIGINALS.items())


def test_with_expertas_watchers_off_ivig_evaluate_makes_no_logging_call(monkeypatch, run_cli, rulebase):
    """Off, experta's logging was still called about 900 times a case (each call then asks
    whether to log); the door asks first."""
    assert not any(getattr(watchers, name).isEnabledFor(logging.DEBUG) for name in watchers.ALL)
    calls: collections.Counter = collections.Counter()

    def counted(method, call):
        def logging_call(logger, *args, **kwargs):
            if logger.name.startswith("experta."):
                calls[f"{logger.name}.{method}"] += 1
            return call(logger, *args, **kwargs)

        return logging_call

    for method in ("debug", "info", "warning", "error", "log"):
        monkeypatch.setattr(logging.Logger, method, counted(method, getattr(logging.Logger, method)))
    out = run_cli("evaluate", "--no-cache", "--format", "jsonl", "-q", str(GOLDEN_FILE))
    assert out.exit_code == 0, out.output
    run_golden_cases(rulebase, rete_engines(rulebase))  # experta's own matcher, whichever the CLI's
    assert calls == {}


class _Kept(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: list = []

    def emit(self, record):
        self.records.append((record.name, record.levelname, record.getMessage()))


@pytest.fixture
def watched():
    """experta's watchers on (`experta.watchers.watch()`), as they were after; what they log is kept,
    not printed."""
    levels = {name: getattr(watchers, name).level for name in watchers.ALL}
    parent = logging.getLogger("experta.watchers")
    kept, propagate = _Kept(), parent.propagate
    parent.addHandler(kept)
    parent.propagate = False
    watchers.watch()
    yield kept.records
    for name, level in levels.items():
        getattr(watchers, name).setLevel(level)
    parent.removeHandler(kept)
    parent.propagate = propagate


def test_with_expertas_watchers_on_the_log_says_what_expertas_own_code_says(watched, monkeypatch, rulebase):
    golden = next(g for g in GOLDEN if g["case"].get("needs_ventilation"))  # many rules, an OR, a NOT
    case = rulebase.schema.validate(dict(golden["case"], id=golden["name"]))
    engine = rete_engines(rulebase)[case.facts["diagnosis"]]

    def logged():
        watched.clear()
        firings = engine.firings_for(case.facts, list(rulebase.schema.fields))
        return [f.rule.id for f in firings], list(watched)

    fired, door = logged()
    for (owner, name), original in _experta.EXPERTA_ORIGINALS.items():
        monkeypatch.setattr(owner, name, original)
    monkeypatch.delattr(engine.matcher, "reset")  # experta's own walk
    assert logged() == (fired, door)
    assert {name.rsplit(".", 1)[1] for name, _, _ in door} >= {"MATCH", "MATCHER", "FACTS", "RULES"}
    assert any(message.startswith("Node <") and message.endswith("> reset") for _, _, message in door)


# -- experta's per-fact and per-activation work, leaner (issue 31) -----------------------------

FIELD_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=3), inner, max_size=3)
        | st.frozensets(st.integers(), max_size=3)
    ),
    max_leaves=8,
)


def fact_state(fact) -> tuple:
    """All a fact is: its kind, its items with each value's type (a list frozen is a frozenlist,
    not a tuple), its attributes, its repr and hash."""
    return (
        type(fact),
        [(k, type(v), v) for k, v in fact.items()],
        vars(fact),
        repr(fact),
        hash(fact),
    )


@settings(max_examples=200, deadline=None)
@given(
    kind=st.sampled_from([Given, Derived, _experta.InitialFact]),
    fields=st.dictionaries(st.sampled_from(["name", "value", "layer", "other"]), FIELD_VALUES, max_size=4),
)
def test_new_fact_makes_the_fact_experta_makes(kind, fields):
    made, own = _experta.new_fact(kind, **fields), kind(**fields)
    assert fact_state(made) == fact_state(own)
    for fact in (made, own):
        _experta.FactList().declare(fact)
    assert fact_state(made) == fact_state(own) and made["__factid__"] == own["__factid__"] == 0


class _Checked(_experta.Fact):
    """A kind with a field to validate: not plain."""

    value = Field(int, mandatory=True)


class _OwnInit(_experta.Fact):
    def __init__(self, **fields):
        super().__init__(**fields)
        self.made_by_own_init = True


def test_a_kind_that_is_not_plain_is_made_checked_and_numbered_by_its_own_code():
    assert all(_experta.plain_kind(k) for k in (Given, Derived, _experta.InitialFact))
    assert not _experta.plain_kind(_Checked) and not _experta.plain_kind(_OwnInit)
    assert _experta.new_fact(_OwnInit, name="x").made_by_own_init
    with pytest.raises(ValueError, match="Invalid value on field 'value'"):
        _experta.FactList().declare(_experta.new_fact(_Checked, value="not a number"))
    with pytest.raises(ValueError, match="Mandatory field 'value'"):
        _experta.FactList().declare(_experta.new_fact(_Checked))


@pytest.mark.parametrize("fact", [Given(name=W()), Given(name="x", a__b=1)], ids=["a constraint", "a nested key"])
def test_the_door_refuses_what_experta_refuses(fact):
    """experta's own errors, for the checks the door writes in place."""
    engine = compile_rulebase(RuleBase.load())()
    engine.reset()
    with pytest.raises((TypeError, KeyError)) as door:
        engine.declare(fact)
    with pytest.raises((TypeError, KeyError)) as own:
        _experta.EXPERTA_ORIGINALS[(_experta.KnowledgeEngine, "_KnowledgeEngine__declare")](engine, fact)
    assert (type(door.value), door.value.args) == (type(own.value), own.value.args)


@pytest.mark.parametrize("matcher", ["rete", "compiled"])
def test_each_activation_gets_the_key_expertas_cached_get_key_gives(monkeypatch, rulebase, matcher):
    """The door keys an activation with get_key's own function, not through its lru_cache, which
    can only give back what it computes (the proof is at `_depth_key`): over the golden cases,
    each key is what experta's cached get_key gives for it at that moment."""
    compute, asked = _experta._depth_key, []

    def both(strategy, activation):
        got = compute(strategy, activation)
        asked.append(got == _experta.DepthStrategy.get_key(strategy, activation))
        return got

    monkeypatch.setattr(_experta, "_depth_key", both)
    advisor = Advisor(cache=0, matcher=matcher)
    for golden in GOLDEN:
        advisor.evaluate_mapping(dict(golden["case"], id=golden["name"]))
    assert len(asked) > 500 and all(asked)
