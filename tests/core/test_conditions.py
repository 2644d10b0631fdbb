"""The condition language's three-valued logic (engine.conditions): `truth`,
`negate` and `normal`. A missing value is unknown, never false."""

import operator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ivig_advisor.engine import Advisor
from ivig_advisor.engine.core import conditions
from ivig_advisor.engine.core.conditions import (
    UNKNOWN,
    AllOf,
    AnyOf,
    Not,
    negate,
    normal,
    parse,
    truth,
)
from ivig_advisor.engine.core.conditions import (
    Test as Leaf,
)

T, F, U = True, False, None  # U: cannot be decided yet


def lookup_of(env: dict):
    """A lookup as the engine's analysis gives one: a case field is [its value] or
    UNKNOWN; a derived fact the list of its values ([]: known to be absent)."""
    return lambda name: env.get(name, UNKNOWN)


def ev(data, env: dict):
    return truth(parse(data, "test"), lookup_of(env))


# -- a missing value is unknown, never false ------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        {"x": 1},
        {"x": {"ne": 1}},
        {"x": {"in": [1, 2]}},
        {"x": {"not_in": [1, 2]}},
        {"x": {"lt": 1}},
        {"x": {"le": 1}},
        {"x": {"gt": 1}},
        {"x": {"ge": 1}},
        {"x": {"contains": "a"}},
        {"x": {"excludes": "a"}},
        {"x": {"known": True}},
        {"x": {"known": False}},
        {"not": {"x": 1}},
        {"not": {"x": {"ne": 1}}},
        {"not": {"not": {"x": 1}}},
    ],
)
def test_a_missing_value_is_unknown_never_false(data):
    assert ev(data, {}) is None
    assert truth(normal(parse(data, "test")), lookup_of({})) is None
    assert truth(negate(parse(data, "test")), lookup_of({})) is None


# -- each operator on a present value, a missing one, a fact with several values --


@pytest.mark.parametrize(
    "data, value, expected",
    [
        # eq
        ({"x": 1}, [1], T),
        ({"x": 1}, [2], F),
        ({"x": 1}, UNKNOWN, U),
        ({"x": {"eq": "a"}}, ["a"], T),
        ({"x": {"eq": "a"}}, ["b"], F),
        ({"x": 1}, [2, 1], T),
        ({"x": 1}, [2, 3], F),
        ({"x": 1}, [], F),
        # ne
        ({"x": {"ne": 1}}, [2], T),
        ({"x": {"ne": 1}}, [1], F),
        ({"x": {"ne": 1}}, UNKNOWN, U),
        ({"x": {"ne": 1}}, [1, 2], T),
        ({"x": {"ne": 1}}, [1, 1], F),
        ({"x": {"ne": 1}}, [], F),
        # in, not_in
        ({"x": {"in": [1, 2]}}, [2], T),
        ({"x": {"in": [1, 2]}}, [3], F),
        ({"x": {"in": [1, 2]}}, UNKNOWN, U),
        ({"x": {"in": [1, 2]}}, [3, 1], T),
        ({"x": {"in": [1, 2]}}, [3, 4], F),
        ({"x": {"in": [1, 2]}}, [], F),
        ({"x": {"not_in": [1, 2]}}, [3], T),
        ({"x": {"not_in": [1, 2]}}, [1], F),
        ({"x": {"not_in": [1, 2]}}, UNKNOWN, U),
        ({"x": {"not_in": [1, 2]}}, [1, 3], T),
        ({"x": {"not_in": [1, 2]}}, [1, 2], F),
        ({"x": {"not_in": [1, 2]}}, [], F),
        # lt le gt ge, at the threshold and on both sides
        ({"x": {"lt": 65}}, [64.9], T),
        ({"x": {"lt": 65}}, [65], F),
        ({"x": {"lt": 65}}, UNKNOWN, U),
        ({"x": {"le": 65}}, [65], T),
        ({"x": {"le": 65}}, [65.1], F),
        ({"x": {"le": 65}}, UNKNOWN, U),
        ({"x": {"gt": 65}}, [66], T),
        ({"x": {"gt": 65}}, [65], F),
        ({"x": {"gt": 65}}, UNKNOWN, U),
        ({"x": {"ge": 65}}, [65], T),
        ({"x": {"ge": 65}}, [64], F),
        ({"x": {"ge": 65}}, UNKNOWN, U),
        ({"x": {"ge": 65}}, [10, 70], T),
        ({"x": {"lt": 65}}, [70, 80], F),
        ({"x": {"ge": 65}}, [], F),
        # a comparison never holds for what is not a number (true is not 1)
        ({"x": {"ge": 1}}, [True], F),
        ({"x": {"lt": 1}}, [False], F),
        ({"x": {"lt": 65}}, ["50"], F),
        # contains, excludes: on a list field's value (a tuple, as the schema gives it)
        ({"x": {"contains": "a"}}, [("a", "b")], T),
        ({"x": {"contains": "a"}}, [("b",)], F),
        ({"x": {"contains": "a"}}, [()], F),
        ({"x": {"contains": "a"}}, UNKNOWN, U),
        ({"x": {"excludes": "a"}}, [("b",)], T),
        ({"x": {"excludes": "a"}}, [()], T),
        ({"x": {"excludes": "a"}}, [("a",)], F),
        ({"x": {"excludes": "a"}}, UNKNOWN, U),
        ({"x": {"contains": "a"}}, ["abc"], F),
        ({"x": {"excludes": "a"}}, ["bcd"], F),  # text is not a list
        ({"x": {"contains": "a"}}, [("b",), ("a",)], T),
        ({"x": {"excludes": "a"}}, [("a",), ("b",)], T),
        # known: the one test that decides on absence
        ({"x": {"known": True}}, [0], T),
        ({"x": {"known": True}}, [False], T),
        ({"x": {"known": True}}, [], F),
        ({"x": {"known": True}}, UNKNOWN, U),
        ({"x": {"known": True}}, [1, 2], T),
        ({"x": {"known": False}}, [], T),
        ({"x": {"known": False}}, [0], F),
        ({"x": {"known": False}}, UNKNOWN, U),
        # several tests in one mapping must all hold
        ({"x": {"ge": 18, "lt": 65}}, [40], T),
        ({"x": {"ge": 18, "lt": 65}}, [70], F),
        ({"x": {"ge": 18, "lt": 65}}, UNKNOWN, U),
    ],
)
def test_each_operator(data, value, expected):
    env = {} if value is UNKNOWN else {"x": value}
    assert ev(data, env) is expected


# -- Kleene's truth tables --------------------------------------------------------

VALUE = {T: [True], F: [False], U: UNKNOWN}  # a boolean field that is true, false, unknown
KLEENE_AND = {(T, T): T, (T, F): F, (T, U): U, (F, T): F, (F, F): F, (F, U): F, (U, T): U, (U, F): F, (U, U): U}
KLEENE_OR = {(T, T): T, (T, F): T, (T, U): T, (F, T): T, (F, F): F, (F, U): U, (U, T): T, (U, F): U, (U, U): U}
KLEENE_NOT = {T: F, F: T, U: U}


@pytest.mark.parametrize("a, b", sorted(KLEENE_AND, key=repr))
def test_all_and_any_are_kleene(a, b):
    env = {name: VALUE[v] for name, v in (("a", a), ("b", b)) if VALUE[v] is not UNKNOWN}
    assert ev({"all": [{"a": True}, {"b": True}]}, env) is KLEENE_AND[a, b]
    assert ev({"any": [{"a": True}, {"b": True}]}, env) is KLEENE_OR[a, b]
    assert ev({"a": True, "b": True}, env) is KLEENE_AND[a, b]  # one mapping: all of its tests


@pytest.mark.parametrize("a", [T, F, U])
def test_not_is_kleene(a):
    env = {} if a is U else {"a": VALUE[a]}
    assert ev({"not": {"a": True}}, env) is KLEENE_NOT[a]
    assert ev({"not": {"not": {"a": True}}}, env) is a


@pytest.mark.parametrize(
    "values, expected",
    [
        ([T, T, T], T),
        ([T, U, T], U),
        ([T, U, F], F),
        ([U, U, U], U),
        ([F, F, F], F),
    ],
)
def test_all_and_any_of_three(values, expected):
    env = {f"f{i}": VALUE[v] for i, v in enumerate(values) if v is not U}
    items = [{f"f{i}": True} for i in range(3)]
    assert ev({"all": items}, env) is expected
    anyof = {(T, T, T): T, (T, U, T): T, (T, U, F): T, (U, U, U): U, (F, F, F): F}[tuple(values)]
    assert ev({"any": items}, env) is anyof


# -- not over a fact with several values, or none: the pushed-down reading ----------


@pytest.mark.parametrize(
    "data, value, expected",
    [
        # `not x == 1` is "x known and != 1" (module docstring), as the compiled rule reads it
        ({"not": {"x": 1}}, [2], T),
        ({"not": {"x": 1}}, [1], F),
        ({"not": {"x": 1}}, UNKNOWN, U),
        ({"not": {"x": 1}}, [], F),  # absent: no value that is not 1 (the rule cannot fire)
        ({"not": {"x": 1}}, [1, 2], T),  # a derived fact with values 1 and 2: one of them is not 1
        ({"not": {"x": {"known": True}}}, [], T),
        ({"not": {"x": {"known": False}}}, [], F),
        ({"not": {"all": [{"x": 1}, {"y": 1}]}}, [2], T),  # y unknown, x known not 1: decided
    ],
)
def test_not_reads_as_pushed_down_to_the_tests(data, value, expected):
    env = {} if value is UNKNOWN else {"x": value}
    assert ev(data, env) is expected
    assert truth(normal(parse(data, "test")), lookup_of(env)) is expected


# -- negate and normal: properties over random conditions and assignments --------

NUMBERS = [0, 1, 2]
ITEMS = ["a", "b"]


def _leaf():
    number = st.one_of(
        st.builds(
            Leaf, st.sampled_from("pq"), st.sampled_from(["eq", "ne", "lt", "le", "gt", "ge"]), st.sampled_from(NUMBERS)
        ),
        st.builds(
            Leaf,
            st.sampled_from("pq"),
            st.sampled_from(["in", "not_in"]),
            st.lists(st.sampled_from(NUMBERS), min_size=1, max_size=2, unique=True).map(tuple),
        ),
    )
    listed = st.builds(Leaf, st.just("l"), st.sampled_from(["contains", "excludes"]), st.sampled_from(ITEMS))
    known = st.builds(Leaf, st.sampled_from("pql"), st.just("known"), st.booleans())
    return st.one_of(number, listed, known)


CONDITIONS = st.recursive(
    _leaf(),
    lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=3).map(lambda xs: AllOf(tuple(xs))),
        st.lists(inner, min_size=1, max_size=3).map(lambda xs: AnyOf(tuple(xs))),
        inner.map(Not),
    ),
    max_leaves=8,
)

LIST_VALUES = st.lists(st.sampled_from(ITEMS), unique=True).map(lambda xs: tuple(sorted(xs)))
# a case field: one value, or unknown
SINGLE = st.fixed_dictionaries(
    {},
    optional={
        "p": st.sampled_from(NUMBERS).map(lambda v: [v]),
        "q": st.sampled_from(NUMBERS).map(lambda v: [v]),
        "l": LIST_VALUES.map(lambda v: [v]),
    },
)
# a derived fact too: several values, or none (known absent)
ANY_VALUES = st.fixed_dictionaries(
    {},
    optional={
        "p": st.lists(st.sampled_from(NUMBERS), max_size=3),
        "q": st.lists(st.sampled_from(NUMBERS), max_size=3),
        "l": st.lists(LIST_VALUES, max_size=2),
    },
)

OPS = {
    "eq": operator.eq,
    "ne": operator.ne,
    "lt": operator.lt,
    "le": operator.le,
    "gt": operator.gt,
    "ge": operator.ge,
    "in": lambda v, x: v in x,
    "not_in": lambda v, x: v not in x,
    "contains": lambda v, x: x in v,
    "excludes": lambda v, x: x not in v,
}


def kleene(cond, env):
    """An independent reference: Kleene's logic over single-valued facts."""
    if isinstance(cond, Leaf):
        if cond.name not in env:
            return None
        (value,) = env[cond.name]
        return cond.operand if cond.op == "known" else OPS[cond.op](value, cond.operand)
    if isinstance(cond, Not):
        inner = kleene(cond.item, env)
        return None if inner is None else not inner
    results = [kleene(c, env) for c in cond.items]
    decisive = isinstance(cond, AnyOf)  # True decides an any, False an all
    if decisive in results:
        return decisive
    return None if None in results else not decisive


def has_not(cond) -> bool:
    return isinstance(cond, Not) or (isinstance(cond, (AllOf, AnyOf)) and any(map(has_not, cond.items)))


@settings(max_examples=500, deadline=None)
@given(CONDITIONS, SINGLE)
def test_evaluate_is_kleenes_logic_over_case_fields(cond, env):
    assert truth(cond, lookup_of(env)) is kleene(cond, env)


@settings(max_examples=500, deadline=None)
@given(CONDITIONS, SINGLE)
def test_negate_is_the_complement_over_case_fields(cond, env):
    lookup = lookup_of(env)
    assert truth(negate(cond), lookup) is KLEENE_NOT[truth(cond, lookup)]
    assert not has_not(negate(cond))


@settings(max_examples=500, deadline=None)
@given(CONDITIONS, ANY_VALUES)
def test_normal_preserves_meaning_for_any_facts(cond, env):
    """Also for derived facts with several values or none: the compiled rules
    (engine.compiler) run normal(when), the analysis evaluates `when` itself."""
    lookup = lookup_of(env)
    assert not has_not(normal(cond))
    assert truth(normal(cond), lookup) is truth(cond, lookup)
    assert truth(negate(negate(cond)), lookup) is truth(cond, lookup)
    assert [t.name for t in conditions.tests(normal(cond))] == [t.name for t in conditions.tests(cond)]


def test_negate_pushes_not_down_by_de_morgan():
    a, b = Leaf("a", "eq", 1), Leaf("b", "lt", 2)
    assert negate(AllOf((a, b))) == AnyOf((Leaf("a", "ne", 1), Leaf("b", "ge", 2)))
    assert negate(AnyOf((a, Not(b)))) == AllOf((Leaf("a", "ne", 1), b))
    assert negate(Leaf("a", "known", True)) == Leaf("a", "known", False)
    assert normal(Not(Not(a))) == a


# -- the analysis reads `not` as the compiled rules do -----------------------------

NOT_RULE = """
  - id: not-receiving
    title: A rule added by the test, with `not` over a derived fact
    layer: safety
    when:
      all:
        - diagnosis: {in: [als, mmn]}
        - not: {receives_ivig: true}
    then:
      warn: {code: not-receiving, severity: info, applies: patient, summary: x, message: x, action: x}
    basis: assumption
    assumptions: [A01]
    rationale: A test of the condition language.
    claims: [C23]
"""


CASES_FOR_NOT_RULE = ({"diagnosis": "als"}, {"diagnosis": "mmn"}, {"diagnosis": "als", "ivig_planned": True})


def _advisor_with_not_rule(rules_copy):
    from ivig_advisor.engine import Advisor, RuleBase

    path = rules_copy / "safety.yaml"
    path.write_text(path.read_text(encoding="utf-8") + NOT_RULE, encoding="utf-8")
    advisor = Advisor(RuleBase.load(rules_copy))
    return advisor, advisor.rulebase.by_id["not-receiving"]


def test_evaluate_reads_not_over_a_derived_fact_as_the_engine_does(rules_copy):
    """receives_ivig is derived true or not at all: `not receives_ivig == true`
    never fires in the engine (no fact is not true), and evaluate, over what the
    run derived, must say so too (Kleene's not said true for an absent fact)."""
    advisor, rule = _advisor_with_not_rule(rules_copy)
    for data in CASES_FOR_NOT_RULE:
        run = advisor.run(advisor.validate(data))
        fields = advisor.rulebase.schema.fields

        def lookup(name):
            if name in fields:
                return [run.case.facts[name]] if name in run.case.facts else UNKNOWN
            return run.derived.get(name, [])

        assert rule.id not in run.fired
        assert truth(rule.when, lookup) is False, data


def test_the_walk_reads_not_over_a_derived_fact_as_the_engine_does(rules_copy):
    from ivig_advisor.engine.audit.check import walk_case

    advisor, rule = _advisor_with_not_rule(rules_copy)
    for data in CASES_FOR_NOT_RULE:
        case = advisor.validate(data)
        assert rule.id not in walk_case(advisor.rulebase, case.facts), data


def test_a_test_names_its_operands_one_several_or_none():
    assert conditions.Test("age", "ge", 65).operands == (65,)
    assert conditions.Test("diagnosis", "in", ("gbs", "cidp")).operands == ("gbs", "cidp")
    assert conditions.Test("age", "known", True).operands == ()


# -- truth serves the analysis, not evaluation ------------------------------------


def test_known_false_on_a_missing_field_is_undecided_for_the_analysis_where_the_engine_fires():
    """The analysis's lookup reads a field the case lacks as UNKNOWN (it may yet be found out):
    `{iga_deficiency: {known: false}}` is then undecided, though the engine, reading the case as
    it is, fires the rule. Asking `truth` what the engine does needs a lookup that reads a
    missing field as absent ([]). A change to either reading changes `missing` and the interview
    (analysis.py) or breaks the equality with the engine."""
    advisor = Advisor(cache=0)
    rule = next(r for r in advisor.rulebase.rules if r.id == "anaphylaxis-iga-deficiency-unknown")
    assert ("iga_deficiency", "known", False) in [t.identity for t in conditions.tests(rule.when)]
    case = advisor.validate({"id": "p", "diagnosis": "gbs", "walks_unaided": False, "anti_iga_antibodies": True})
    run = advisor.run(case)
    assert rule.id in run.fired  # the engine: no IgA level given, so "not known" holds
    known = {name: [value] for name, value in case.facts.items()}
    analysis = lookup_of({**known, **run.derived})  # a missing case field: UNKNOWN
    assert truth(rule.when, analysis) is None
    as_the_engine_reads = lambda name: {**known, **run.derived}.get(name, [])  # noqa: E731
    assert truth(rule.when, as_the_engine_reads) is True


def test_a_conditions_evaluation_is_made_once_and_never_given_to_another():
    """truth keeps each condition's evaluation, by the condition's id (issue 31): kept, it is the
    same function; and an id another condition held before is not read as that one's."""
    one, two = parse({"x": 1}, "test"), parse({"x": 2}, "test")
    assert conditions._truth_of(one) is conditions._truth_of(one)
    conditions._TRUTHS[id(two)] = (one, conditions._truth_of(one))  # as if `one` had lived where `two` is
    assert truth(two, lookup_of({"x": [2]})) is True and truth(one, lookup_of({"x": [2]})) is False
