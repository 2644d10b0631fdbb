"""Deciding once per clinical situation (engine/situations.py): the cache changes
nothing but the time. Results with the cache on are byte-identical to results
with it off, over the golden cases, random cases and a sample of each
diagnosis's fact space; every field a rule tests is part of the key."""

import itertools
import json
import random

import pytest
import yaml
from helpers import ROOT, jsonl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ivig_advisor.engine import Advisor, RuleBase
from ivig_advisor.engine.core import conditions
from ivig_advisor.engine.core.analysis import domains, live_rules
from ivig_advisor.engine.core.cache.situations import READ_BY_RESULT, Keyer, Situation
from ivig_advisor.engine.core.cache.support import projector

RULES = RuleBase.load()
GOLDEN = yaml.safe_load((ROOT / "tests" / "cases" / "golden.yaml").read_text(encoding="utf-8"))
SPACE = domains(RULES)
FIELDS = RULES.schema.fields


def as_json(result) -> str:
    return json.dumps(result.to_dict(), sort_keys=False, ensure_ascii=False)


PLAIN = Advisor(RULES, cache=0)  # engines compiled once for the module: a run costs milliseconds
SHARED = Advisor(RULES)  # one cache across hypothesis's examples: more hits, and their mixing


def same_answers(cases, cached=None):
    """Evaluate `cases` with and without the cache; assert every result is byte-identical."""
    cached = cached or Advisor(RULES)
    for case in cases:
        assert as_json(cached.evaluate_mapping(case)) == as_json(PLAIN.evaluate_mapping(case)), case
    return cached


def variant(case, rnd):
    """The same case with other numbers, ids and weights: often the same situation, not always."""
    out = dict(case, id=f"v{rnd.randrange(10**6)}")
    for name, spec in FIELDS.items():
        if name in out and spec.type in ("number", "integer") and rnd.random() < 0.7:
            low, high = spec.min if spec.min is not None else 0, spec.max if spec.max is not None else 150
            out[name] = rnd.randint(int(low), int(high)) if spec.type == "integer" else round(rnd.uniform(low, high), 1)
    if rnd.random() < 0.2:
        out.pop("weight_kg", None)
    return out


def test_golden_cases_give_the_same_results_with_the_cache():
    rnd = random.Random(1)
    cases = [dict(g["case"], id=g["name"]) for g in GOLDEN]
    cached = same_answers(cases + [variant(c, rnd) for c in cases for _ in range(5)])
    assert cached.situations.hits > len(cases), "the variants hit the cache"


def test_the_cli_gives_the_same_bytes_with_and_without_the_cache(run_cli, tmp_path):
    rnd = random.Random(2)
    cases = [dict(g["case"], id=g["name"]) for g in GOLDEN]
    path = tmp_path / "cases.jsonl"
    path.write_text("".join(json.dumps(variant(c, rnd)) + "\n" for c in cases * 10), encoding="utf-8")
    outputs = {}
    for args in ((), ("--no-cache",), ("-j", "2"), ("-j", "2", "--no-cache")):
        result = run_cli("evaluate", "--format", "jsonl", "-q", *args, str(path))
        assert result.exit_code in (0, 1), result.output
        outputs[args] = result.stdout
    assert len(set(outputs.values())) == 1
    assert len(jsonl(outputs[()])) == len(cases) * 10


# -- random cases ------------------------------------------------------------------------


def field_value(name):
    spec = FIELDS[name]
    if spec.type in ("number", "integer"):
        low, high = spec.min if spec.min is not None else 0, spec.max if spec.max is not None else 150
        cuts = [v for v in SPACE.get(name, []) if v is not None]
        anywhere = (
            st.integers(int(low), int(high))
            if spec.type == "integer"
            else st.floats(low, high, allow_nan=False).map(lambda v: round(v, 1))
        )
        return st.one_of(st.sampled_from(cuts), anywhere) if cuts else anywhere
    return st.sampled_from([v for v in SPACE[name] if v is not None])


def valid(case):
    return RULES.schema.check_constraints(case)


@st.composite
def cases(draw):
    case = {"diagnosis": draw(st.sampled_from([d for d in SPACE["diagnosis"] if d is not None]))}
    for name in sorted(SPACE):
        if name != "diagnosis" and draw(st.booleans()):
            value = draw(field_value(name))
            case[name] = list(value) if isinstance(value, tuple) else value
    if draw(st.booleans()):
        case["weight_kg"] = draw(st.integers(30, 120))
    return case


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(cases(), min_size=2, max_size=12))
def test_random_cases_give_the_same_results_with_the_cache(batch):
    batch = [c for c in batch if valid(c)]
    # each case twice, the second time with other numbers: hits and near misses
    rnd = random.Random(len(batch))
    same_answers(list(itertools.chain.from_iterable((c, variant(c, rnd)) for c in batch)), SHARED)


# -- a sample of each diagnosis's fact space ---------------------------------------------


@pytest.mark.parametrize("diagnosis", [d for d in SPACE["diagnosis"] if d is not None])
def test_a_sample_of_each_diagnosis_fact_space(diagnosis):
    rnd = random.Random(diagnosis)
    tested = sorted(
        {
            t.name
            for r in live_rules(RULES, diagnosis)
            for t in conditions.tests(r.when)
            if t.name in FIELDS and t.name != "diagnosis"
        }
    )
    sample = []
    for _ in range(120):
        case = {"diagnosis": diagnosis, "weight_kg": 70}
        for name in tested:
            value = rnd.choice(SPACE[name])
            if value is not None:
                case[name] = list(value) if isinstance(value, tuple) else value
        if valid(case):
            sample += [case, variant(case, rnd)]
    same_answers(sample)


# -- the key --------------------------------------------------------------------------


def test_the_key_reads_every_field_some_rule_of_the_engine_tests():
    advisor = Advisor(RULES)
    for diagnosis in (d for d in SPACE["diagnosis"] if d is not None):
        advisor.situation({"diagnosis": diagnosis})
        engine_rules = advisor.engines[diagnosis].rules
        tested = {t.name for r in engine_rules for t in conditions.tests(r.when) if t.name in FIELDS}
        assert advisor.keyers[diagnosis].names == tested | set(READ_BY_RESULT), diagnosis


def test_two_cases_that_differ_in_one_tested_field_are_not_taken_for_one_situation():
    """For every field some rule tests: a case, and the same case with that field
    changed so that the answer changes, evaluated one after the other with the
    cache on, get their own answers. Leaving any such field out of the key fails."""
    checked, plain = set(), PLAIN
    for diagnosis in (d for d in SPACE["diagnosis"] if d is not None):
        names = sorted(
            {
                t.name
                for r in live_rules(RULES, diagnosis)
                for t in conditions.tests(r.when)
                if t.name in FIELDS and t.name != "diagnosis"
            }
        )
        base = {"diagnosis": diagnosis, "weight_kg": 70}
        for name in names:
            answers = {}
            for value in SPACE[name]:
                case = dict(
                    base, **({} if value is None else {name: list(value) if isinstance(value, tuple) else value})
                )
                if valid(case):
                    answers.setdefault(as_json(plain.evaluate_mapping(case)), case)
            if len(answers) < 2:
                continue  # with everything else unknown, this field changes nothing here
            checked.add(name)
            cached = Advisor(RULES)
            cached.engines = PLAIN.engines  # the engines compiled once; the cache and its keys its own
            for expected, case in list(answers.items()) + list(answers.items()):
                assert as_json(cached.evaluate_mapping(case)) == expected, (diagnosis, name, case)
    assert len(checked) >= 15, sorted(checked)


def test_a_field_only_rules_already_false_read_does_not_split_a_situation():
    """MYCIN's skip: volume depletion is read only by the renal-failure rules,
    which need renal disease. Without renal disease, depleted, not depleted and
    unknown are one situation with one answer; with it they are three."""
    for renal, situations in ((False, 1), (True, 3)):
        advisor = Advisor(RULES)
        cases = [
            {
                "diagnosis": "myasthenia_gravis",
                "ivig_planned": True,
                "age": 40,
                "weight_kg": 60,
                "renal_disease": renal,
                **depleted,
            }
            for depleted in ({"volume_depletion": True}, {"volume_depletion": False}, {})
        ]
        same_answers(cases, advisor)
        assert len(advisor.situations) == situations, renal
        assert advisor.situations.hits == 3 - situations


def test_a_field_only_rules_needing_a_fact_never_derived_read_does_not_split_a_situation():
    """A run never derived that an ALS patient not planned for IVIG receives it, so the
    safety rules read nothing: migraine yes, no and unknown are one situation. Planned,
    the patient receives IVIG, and migraine splits it in three."""
    for planned, situations in ((False, 1), (True, 3)):
        advisor = Advisor(RULES)
        cases = [
            {"diagnosis": "als", "ivig_planned": planned, "age": 50, "weight_kg": 70, **migraine}
            for migraine in ({"migraine": True}, {"migraine": False}, {})
        ]
        same_answers(cases, advisor)
        assert len(advisor.situations) == situations, planned


def test_a_support_of_every_position_would_split_it(monkeypatch):
    """The test above can fail: a support that is the whole key (a cache keyed on
    every outcome) keeps the three migraine answers apart."""
    monkeypatch.setattr(Keyer, "support", lambda self, key, run: tuple(range(len(key))))
    with pytest.raises(AssertionError):
        test_a_field_only_rules_needing_a_fact_never_derived_read_does_not_split_a_situation()


def test_a_dropped_field_would_be_caught(monkeypatch):
    """The test above can fail: a Keyer that leaves out one tested field
    (here age, which decides 'elderly') mixes two situations."""
    original = Keyer.__init__

    def without_age(self, rules, rulebase):
        original(self, rules, rulebase)
        self._outcomes = tuple(
            (lambda facts: True) if t.name == "age" else o  # age read as always old
            for t, o in zip(self.tests, self._outcomes)
        )

    monkeypatch.setattr(Keyer, "__init__", without_age)
    with pytest.raises(AssertionError):
        test_two_cases_that_differ_in_one_tested_field_are_not_taken_for_one_situation()


# -- bounded, and safe to change ------------------------------------------------------------


def test_the_cache_keeps_at_most_its_size_and_forgets_the_least_recently_used():
    advisor = Advisor(RULES, cache=3)
    ages = [20, 70]  # below and above the 'elderly' threshold: two situations per diagnosis
    for diagnosis in ("gbs", "cidp", "mmn"):
        for age in ages:
            advisor.evaluate_mapping({"diagnosis": diagnosis, "age": age})
    assert len(advisor.situations) == 3
    misses = advisor.situations.misses
    advisor.evaluate_mapping({"diagnosis": "mmn", "age": 71})  # recent: a hit
    assert advisor.situations.misses == misses
    advisor.evaluate_mapping({"diagnosis": "gbs", "age": 21})  # forgotten: run again
    assert advisor.situations.misses == misses + 1


def test_the_parts_shared_between_situations_stay_bounded_too():
    """Parts of forgotten situations are not kept forever: the table of shared
    parts starts again past SHARED_PER_SITUATION per situation kept."""
    from ivig_advisor.engine.core.cache.situations import SHARED_PER_SITUATION

    advisor, largest = Advisor(RULES, cache=4), 0
    advisor.engines = PLAIN.engines
    for i in range(300):
        case = {
            "diagnosis": "cidp",
            "weight_kg": 70,
            "ivig_planned": True,
            "age": 20 + (i % 2) * 60,
            **{
                name: bool(i >> bit & 1)
                for bit, name in enumerate(
                    (
                        "diabetes",
                        "migraine",
                        "renal_disease",
                        "thrombocytosis",
                        "refractory",
                        "hypergammaglobulinemia",
                        "thrombocytopenia",
                        "volume_depletion",
                    ),
                    start=1,
                )
            },
        }
        advisor.evaluate_mapping(case)
        largest = max(largest, len(advisor.situations.shared))
    assert advisor.situations.misses > 100
    one_situation = 200  # far more parts than one run interns
    assert largest <= SHARED_PER_SITUATION * 4 + one_situation


def test_situations_another_worker_learnt_answer_here_as_a_run_would():
    """A pool's worker hands on what it stored (take_learnt); another adopts it (adopt): its cases
    in those situations are then hits, answered byte for byte as a run answers them; a situation
    it knows already is not kept twice, and adopted parts are shared with its own equal ones."""
    rnd = random.Random(5)
    cases = [dict(g["case"], id=g["name"]) for g in GOLDEN]
    teacher, learner = Advisor(RULES), Advisor(RULES)
    teacher.evaluate_mapping(cases[0])
    assert teacher.situations.take_learnt() == b"" and teacher.situations.learnt is None, "only when asked"
    teacher.situations = Advisor(RULES).situations
    teacher.situations.share_learning()
    for case in cases:
        teacher.evaluate_mapping(case)
    learnt = teacher.situations.take_learnt()
    assert teacher.situations.take_learnt() == b"", "each situation is handed on once"
    known = cases[:10]
    for case in known:  # the learner ran some of them itself
        learner.evaluate_mapping(case)
    mine = len(learner.situations)
    learner.situations.adopt(learnt, RULES.by_id)
    assert len(learner.situations) == len(teacher.situations), "what it knew is not kept twice"
    misses = learner.situations.misses
    same_answers([variant(c, rnd) for c in cases], cached=learner)
    ran = learner.situations.misses - misses
    assert ran < len(cases) // 4, f"{ran} of {len(cases)} variants ran again"
    assert mine < len(learner.situations)
    adopted = [rule for s in learner.situations._entries.values() for rule in s.undecided]
    assert adopted and all(rule is RULES.by_id[rule.id] for rule in adopted), "the rule base's own rules, not copies"
    own = {id(p) for s in learner.situations._entries.values() for p in s.warnings}
    assert len(own) < sum(len(s.warnings) for s in learner.situations._entries.values()), "parts shared"


def test_changing_a_result_does_not_change_the_next_one():
    advisor = Advisor(RULES)
    case = {"diagnosis": "gbs", "walks_unaided": False, "weight_kg": 70, "age": 80}
    first = advisor.evaluate_mapping(case)
    before = as_json(first)
    first.ivig["stance"] = "changed"
    first.warnings[0]["code"] = "changed"
    first.trace[0]["matched"][0]["value"] = "changed"
    first.dose["days"] = 99
    first.missing.append("changed")
    second = advisor.evaluate_mapping(dict(case, age=81))
    assert advisor.situations.hits == 1
    assert as_json(second) == before.replace('"age", "value": 80', '"age", "value": 81')


def test_the_run_record_of_a_hit_is_the_runs():
    advisor, plain = Advisor(RULES), Advisor(RULES, cache=0)
    case = advisor.validate({"diagnosis": "mmn", "age": 50})
    advisor.run(case)
    hit, fresh = advisor.run(case), plain.run(case)
    assert advisor.situations.hits == 1
    assert (hit.derived, hit.fired, [r.id for r in hit.undecided]) == (
        fresh.derived,
        fresh.fired,
        [r.id for r in fresh.undecided],
    )


def test_freezing_keeps_types_and_order_even_for_values_python_calls_equal():
    from pickle import loads

    from ivig_advisor.engine.core.cache.situations import _interned

    shared = {}
    first = _interned({"value": 1, "list": [], "n": 2.0, "items": [1, 2], "t": (1,)}, shared)
    second = _interned({"value": True, "list": {}, "n": 2, "items": [True, 2.0], "t": [1]}, shared)
    assert repr(loads(first)) == repr({"value": 1, "list": [], "n": 2.0, "items": [1, 2], "t": (1,)})
    assert repr(loads(second)) == repr({"value": True, "list": {}, "n": 2, "items": [True, 2.0], "t": [1]})
    assert list(loads(_interned({"b": 1, "a": 2}, shared))) == ["b", "a"]
    again = _interned({"value": 1, "list": [], "n": 2.0, "items": [1, 2], "t": (1,)}, shared)
    assert again is first, "equal parts are shared"
    assert loads(first) is not loads(first), "each replay gets objects of its own"


def test_a_batch_that_never_repeats_stores_only_a_sample_and_still_answers_the_same():
    from ivig_advisor.engine.core.cache.situations import SAMPLE_WHEN_IDLE

    advisor, keys, cases, rnd = Advisor(RULES), set(), [], random.Random(13)
    PLAIN.situation({"diagnosis": "cidp"})
    tested = sorted(PLAIN.keyers["cidp"].names)
    while len(cases) < 800:  # 800 cases, each a key of its own (mostly a situation of its own too)
        case = {"diagnosis": "cidp", "weight_kg": 70, "id": str(len(cases))}
        for name in tested:
            value = rnd.choice(SPACE.get(name, [None]))
            if value is not None:
                case[name] = list(value) if isinstance(value, tuple) else value
        if valid(case):
            key = PLAIN.situation(PLAIN.validate(case).facts)[0]
            if key not in keys:
                keys.add(key)
                cases.append(case)
    same_answers([c for c in cases if valid(c)], advisor)
    assert advisor.situations.misses > 512
    stored = len(advisor.situations)
    assert stored < advisor.situations.misses, "past 512 misses with few hits, misses are sampled"
    assert stored >= 512 + (advisor.situations.misses - 512) // SAMPLE_WHEN_IDLE - 1


# -- a run's support: any case agreeing with it there gets the same run ------------------------

ENGINE_RULES = {d: live_rules(RULES, d) for d in SPACE["diagnosis"] if d is not None}
KEYERS = {d: Keyer(rules, RULES) for d, rules in ENGINE_RULES.items()}


def run_record(run) -> tuple:
    return (as_json(run.result), run.derived, run.fired, [r.id for r in run.undecided], sorted(run.waiting))


def agreeing_case(case, support, rnd):
    """`case` with as many fields as possible changed (each redrawn in turn, kept
    only if the key still agrees at `support` and the case is still valid)."""
    keyer, pick = KEYERS[case["diagnosis"]], projector(support)
    wanted = pick(keyer.key(PLAIN.validate(case).facts))
    other = dict(case, id="other")
    for name in sorted(keyer.names - {"diagnosis"}):
        value = rnd.choice(SPACE.get(name, [None]) + [None])
        if name in ("age", "weight_kg") and rnd.random() < 0.5:
            value = rnd.randint(1, 100)
        changed = dict(other)
        if value is None:
            changed.pop(name, None)
        else:
            changed[name] = list(value) if isinstance(value, tuple) else value
        if valid(changed) and pick(keyer.key(PLAIN.validate(changed).facts)) == wanted:
            other = changed
    return other


def check_supports(cases, rnd, support=None):
    """For each case: its run's support, a case agreeing with it there, and that
    case's own run compared with the stored run replayed for it. Returns how many
    cases differed from the first in some field."""
    moved = 0
    for case in cases:
        keyer = KEYERS[case["diagnosis"]]
        first = PLAIN.run(PLAIN.validate(case))
        positions = (support or keyer.support)(keyer.key(first.case.facts), first)
        other = agreeing_case(case, positions, rnd)
        moved += other != dict(case, id="other")
        validated = PLAIN.validate(other)
        replayed = Situation(first, {}).replay(validated)
        replayed.result.rules, replayed.result.normalised = dict(PLAIN.stamp), validated.normalised  # as Advisor.run
        PLAIN.attacher.attach(replayed)  # as Advisor.run: the later evidence is the case's own, after the cache
        assert run_record(replayed) == run_record(PLAIN.run(validated)), (case, other, positions)
    return moved


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases(), st.integers(0, 2**32))
def test_a_case_that_agrees_with_a_runs_support_gets_that_run(case, seed):
    """engine/support.py's argument, checked: a random case, then another with every
    field that keeps the key's characters at the first run's support redrawn; the
    first run, replayed for the other case, is the other case's own run."""
    if valid(case):
        check_supports([case], random.Random(seed))


def test_the_support_leaves_out_what_the_run_did_not_read():
    """Not a formality: most cases agreeing with a support differ in some field."""
    rnd = random.Random(5)
    cases = [c for c in (dict(g["case"], id=g["name"]) for g in GOLDEN) if valid(c)]
    assert check_supports(cases, rnd) > len(cases) // 2


def test_a_support_missing_a_position_would_be_caught():
    """The check above can fail: a support that forgets one position it needs (each
    run's highest) lets a case in that the stored run does not answer."""
    rnd = random.Random(6)
    cases = [c for c in (dict(g["case"], id=g["name"]) for g in GOLDEN) if valid(c)]

    def short(key, run):
        return KEYERS[run.case.facts["diagnosis"]].support(key, run)[:-1]

    with pytest.raises(AssertionError):
        check_supports(cases, rnd, short)
