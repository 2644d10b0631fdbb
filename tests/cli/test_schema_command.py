"""`ivig schema`: every field for a person (text), as data (json), and as a
JSON Schema of case files (json-schema) that accepts what ivig accepts in
canonical form and refuses what ivig refuses."""

import json

import pytest
import yaml
from helpers import ROOT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

jsonschema = pytest.importorskip("jsonschema")

EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
GOLDEN = ROOT / "tests" / "cases" / "golden.yaml"


@pytest.fixture(scope="module")
def exported():
    from click.testing import CliRunner

    from ivig_advisor.cli import main

    out = CliRunner().invoke(main, ["schema", "--format", "json-schema"])
    assert out.exit_code == 0, out.output
    return json.loads(out.output)


@pytest.fixture(scope="module")
def validator(exported):
    jsonschema.Draft202012Validator.check_schema(exported)
    return jsonschema.Draft202012Validator(exported)


def test_the_text_lists_every_field_with_its_type_values_aliases_unit_question_and_help(run_cli, rulebase):
    out = run_cli("schema")
    assert out.exit_code == 0
    text = out.output
    for spec in rulebase.schema.fields.values():
        assert f"\n  {spec.name}  " in text, spec.name
        assert spec.help[:60] in text and (spec.question or "") in text
        for value, about in spec.values.items():
            assert about.get("label", value) in text
            for alias in about.get("aliases", []):
                assert alias in text
    assert "weight_kg  number, 1-350 kg (also: kgs, kilo, kilos, kilogram, kilograms)" in text
    assert "      mmn                         Multifocal motor neuropathy  (also: mmn, multifocal)" in text
    assert "yes/no fields as true, yes, y, t," in text


def test_json_gives_every_field_as_data(run_cli, rulebase):
    data = json.loads(run_cli("schema", "--format", "json").output)
    assert [f["name"] for f in data["fields"]] == list(rulebase.schema.fields)
    diagnosis = next(f for f in data["fields"] if f["name"] == "diagnosis")
    assert (
        diagnosis["required"]
        and {"value": "myasthenia_gravis", "label": "Myasthenia gravis", "aliases": ["mg", "myasthenia"]}
        in diagnosis["values"]
    )
    assert data["spellings"]["list_separator"] == ";" and "none" in data["spellings"]["empty_list"]


def test_the_json_schema_is_draft_2020_12_and_written_atomically_with_o(run_cli, tmp_path, exported):
    assert exported["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    target = tmp_path / "case.schema.json"
    out = run_cli("schema", "--format", "json-schema", "-o", str(target))
    assert out.exit_code == 0 and json.loads(target.read_text()) == exported


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_the_json_schema_accepts_every_example(validator, path):
    validator.validate(yaml.safe_load(path.read_text(encoding="utf-8")))


def test_the_json_schema_accepts_the_golden_file_and_each_golden_case(validator):
    golden = yaml.safe_load(GOLDEN.read_text(encoding="utf-8"))
    validator.validate(golden)
    for item in golden:
        validator.validate(item)  # a scenario with its case under case:
        validator.validate(dict(item["case"], name=item["name"], expect=item["expect"]))  # beside its keys
        validator.validate(item["case"])
    validator.validate({"cases": [item["case"] for item in golden]})


@pytest.mark.parametrize(
    "bad",
    [
        {"age": 40},  # no diagnosis
        {"diagnosis": None},
        {"diagnosis": "gbs", "wieght_kg": 70},  # unknown field
        {"diagnosis": "gbs x"},
        {"diagnosis": "gbs", "age": 121},
        {"diagnosis": "gbs", "weight_kg": 0.5},
        {"diagnosis": "gbs", "age": True},  # a boolean is not a number
        {"diagnosis": "gbs", "walks_unaided": 1},  # nor a number a boolean
        {"diagnosis": "gbs", "planned_cotherapy": ["ivig"]},
        {"diagnosis": "gbs", "planned_cotherapy": "plasma_exchange"},  # canonical form: a list
        {"diagnosis": "gbs", "needs_ventilation": True, "walks_unaided": True},  # the schema's constraint
        {"diagnosis": "gbs", "expect": {"stanse": "first-line"}},
        {"diagnosis": "gbs", "expect": {"stance": "first line"}},
        {"diagnosis": "gbs", "expect": {"not_fired": ["gbs-dosse"]}},
        {"diagnosis": "gbs", "expect": {}},
        {"name": "x", "case": {"diagnosis": "gbs"}, "age": 4},
        {"cases": [{"diagnosis": "gbs"}], "extra": 1},
        [{"diagnosis": "gbs"}, {"diagnosis": "nope"}],
    ],
)
def test_the_json_schema_refuses_what_ivig_refuses(validator, bad, rulebase):
    assert not validator.is_valid(bad)


# -- on canonical values, the JSON Schema and ivig agree ------------------------------------

WRONG = [12345, 1.5, -1, "zzz", "", True, False, [1], ["zzz"], [], {"a": 1}, None]


def _verdicts(schema, validator, case):
    from ivig_advisor.engine.base.errors import CaseInvalid

    try:
        schema.validate(case)
        accepted = True
    except CaseInvalid:
        accepted = False
    return accepted, validator.is_valid(case)


def test_each_field_with_each_kind_of_value_gets_one_verdict_from_both(validator, rulebase):
    """Every field, with each of its canonical values (and its bounds) and each kind of wrong value."""
    schema, disagree = rulebase.schema, []
    for name, spec in schema.fields.items():
        # a list field's items as one text ('a;b') is a spelling, like an alias: not the canonical form
        values = (list(spec.values) if spec.type != "list" else []) + [[v] for v in spec.values] + WRONG
        if spec.min is not None:
            values += [spec.min, spec.max, spec.min - 0.5, spec.max + 0.5, (spec.min + spec.max) / 2]
        for value in values:
            case = dict({"diagnosis": "gbs"}, **{name: value})
            ivig, json_schema = _verdicts(schema, validator, case)
            if ivig != json_schema:
                disagree.append((name, value, ivig, json_schema))
    assert disagree == []


# -- property: on canonical values, the JSON Schema and ivig agree ------------------------


def _values(spec):
    """Values of a field: mostly canonical ones, sometimes one that is wrong in any reader (never an alias)."""
    wrong = st.sampled_from([12345, 1.5, "zzz", True, [1], {"a": 1}, None])
    if spec.type == "boolean":
        right = st.booleans()
    elif spec.type in ("number", "integer"):
        right = st.integers(int(spec.min) - 2, int(spec.max) + 2) | st.floats(spec.min - 1, spec.max + 1)
    elif spec.type == "enum":
        right = st.sampled_from(list(spec.values))
    elif spec.type == "list":
        right = st.lists(st.sampled_from(list(spec.values) + ["zzz"]), max_size=3)
    else:
        right = st.text(max_size=5)
    return st.one_of(right, wrong)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_the_json_schema_and_ivig_agree_on_every_case_in_canonical_form(validator, rulebase, data):
    schema = rulebase.schema
    names = data.draw(st.lists(st.sampled_from(list(schema.fields)), unique=True, max_size=3))
    if data.draw(st.integers(0, 9)):  # most cases name their diagnosis, so that the other fields decide
        names = ["diagnosis"] + [n for n in names if n != "diagnosis"]
    case = {name: data.draw(_values(schema.fields[name])) for name in names}
    ivig, json_schema = _verdicts(schema, validator, case)
    assert ivig == json_schema, case
