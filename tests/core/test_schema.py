"""The case schema: types, ranges, unknowns, constraints."""

import pytest

from ivig_advisor.engine import CaseInvalid, evaluate_case


def errors_of(case, rulebase):
    with pytest.raises(CaseInvalid) as info:
        rulebase.schema.validate(case, "x.yaml")
    return info.value.errors


def test_missing_field_is_unknown_never_false(rulebase):
    result = evaluate_case({"diagnosis": "gbs"})
    assert "walks_unaided" in result.missing
    assert result.ivig["rule"] == "gbs-general"  # not the rule for walking patients


def test_null_is_unknown(rulebase):
    assert evaluate_case({"diagnosis": "gbs", "walks_unaided": None}).ivig["rule"] == "gbs-general"


@pytest.mark.parametrize(
    "case, field, words",
    [
        ({"diagnosis": "gbs", "age": "old"}, "age", "must be a number"),
        ({"diagnosis": "gbs", "age": True}, "age", "must be a number"),
        ({"diagnosis": "gbs", "weight_kg": 0.5}, "weight_kg", "outside 1-350 kg"),
        ({"diagnosis": "gbs", "walks_unaided": "maybe"}, "walks_unaided", "true or false"),
        ({"diagnosis": "gbs", "walks_unaided": "off"}, "walks_unaided", "not 'off'"),
        (
            {"diagnosis": "gbs", "age": "0x41"},
            "age",
            "'0x41' is not a number as written (hexadecimal): write it in decimal",
        ),
        ({"diagnosis": "gbs", "age": "1:05"}, "age", "(base 60, as a time)"),
        ({"diagnosis": "gbs", "age": "65 lb"}, "age", "'65 lb': 'age' is in years, not 'lb'"),
        ({"diagnosis": "gbs", "weight_kg": "70,5"}, "weight_kg", "has a comma"),
        ({"diagnosis": "gbs", "age": "٦٥"}, "age", "must be a number"),  # digits of another script: not read
        ({"diagnosis": "gbs", "age": "1e999"}, "age", "too large"),
        ({"diagnosis": "gbs", "age": "yes"}, "age", "never a yes or a no"),
        ({"diagnosis": "gbs", "walks_unaided": 1}, "walks_unaided", "a boolean is never a number"),
        ({"diagnosis": "gbs", "walks_unaided": "0"}, "walks_unaided", "a boolean is never a number"),
        ({"diagnosis": "gbs", "walks_unaided": "yess"}, "walks_unaided", "did you mean 'yes'"),
        ({"diagnosis": "gsb"}, "diagnosis", "did you mean 'gbs'"),
        ({"diagnosis": "myastenia"}, "diagnosis", "did you mean 'myasthenia_gravis'?"),
        ({"diagnosis": "mnm"}, "diagnosis", "did you mean 'mmn'?"),  # a value first: never 'mnd' (als), its mimic
        ({"diagnosis": "lamber eaton"}, "diagnosis", "did you mean 'lambert eaton' (lems)?"),  # else an alias
        ({"diagnosis": "gbs", "age": 10**5000}, "age", "more than 15 digits: too large"),
        ({"diagnosis": False}, "diagnosis", "'false' is not an allowed value"),
        ({"diagnosis": "no"}, "diagnosis", "'no' is not an allowed value"),
        ({"diagnosis": "x" * 10_000}, "diagnosis", "(10,000 characters)"),
        ({"diagnosis": "lambert"}, "diagnosis", "not an allowed value"),
        ({"diagnosis": "lems", "planned_cotherapy": {"steroids": 1}}, "planned_cotherapy", "must be a list"),
        (
            {"diagnosis": "lems", "planned_cotherapy": ["steroid"]},
            "planned_cotherapy",
            "did you mean 'corticosteroids'?",
        ),
        ({"diagnosis": "lems", "planned_cotherapy": ""}, "planned_cotherapy", "an empty text"),
        ({"diagnosis": "lems", "planned_cotherapy": "pe; ivig"}, "planned_cotherapy", "'ivig' is not an allowed value"),
        ({"diagnosis": "gbs", "refactory": True}, "refactory", "did you mean 'refractory'"),
        ({"age": 4}, "diagnosis", "required"),
        (
            {"diagnosis": "gbs", "needs_ventilation": True, "walks_unaided": True},
            "needs_ventilation",
            "cannot walk unaided",
        ),
    ],
)
def test_invalid_cases_name_the_field(case, field, words, rulebase):
    errors = errors_of(case, rulebase)
    assert errors[0].field == field and words in errors[0].message


@pytest.mark.parametrize("written, value", [("yes", True), ("No", False), ("TRUE", True), ("false", False)])
def test_yes_and_no_are_read_for_boolean_fields_only(written, value, rulebase):
    assert rulebase.schema.validate({"diagnosis": "gbs", "walks_unaided": written}).facts["walks_unaided"] is value


@pytest.mark.parametrize(
    "written, read",
    [
        ({"diagnosis": "mg"}, {"diagnosis": "myasthenia_gravis"}),
        ({"diagnosis": "GBS"}, {"diagnosis": "gbs"}),
        ({"diagnosis": " Myasthenia Gravis "}, {"diagnosis": "myasthenia_gravis"}),  # the label
        ({"diagnosis": "gbs", "walks_unaided": "N"}, {"walks_unaided": False}),
        ({"diagnosis": "gbs", "walks_unaided": "present"}, {"walks_unaided": True}),
        ({"diagnosis": "gbs", "weight_kg": "70 kg"}, {"weight_kg": 70}),
        ({"diagnosis": "gbs", "weight_kg": "70.5KG"}, {"weight_kg": 70.5}),
        ({"diagnosis": "gbs", "weight_kg": "70 Kilos."}, {"weight_kg": 70}),
        ({"diagnosis": "gbs", "age": "65y"}, {"age": 65}),
        (
            {"diagnosis": "gbs", "planned_cotherapy": ["Steroids", "plex"]},
            {"planned_cotherapy": ("corticosteroids", "plasma_exchange")},
        ),
        (
            {"diagnosis": "gbs", "planned_cotherapy": "steroids; PE"},
            {"planned_cotherapy": ("corticosteroids", "plasma_exchange")},
        ),
        ({"diagnosis": "gbs", "planned_cotherapy": "None"}, {"planned_cotherapy": ()}),
    ],
)
def test_aliases_labels_units_and_words_are_read_and_listed(written, read, rulebase):
    case = rulebase.schema.validate(written)
    assert {k: case.facts[k] for k in read} == read
    listed = {n["field"]: (n["written"], n["read"]) for n in case.normalised}
    for name, value in read.items():
        as_written = list(written[name]) if isinstance(written[name], list) else written[name]
        assert listed.pop(name) == (as_written, list(value) if isinstance(value, tuple) else value)
    assert listed == {}  # a value written as itself is not listed


@pytest.mark.parametrize(
    "written, read",
    [
        ({"diagnosis": "gbs", "age": "070"}, {"age": 70}),  # seventy, never octal 56
        ({"diagnosis": "gbs", "age": " 65 "}, {"age": 65}),
        ({"diagnosis": "gbs", "weight_kg": "70.0"}, {"weight_kg": 70.0}),
        ({"diagnosis": "gbs", "walks_unaided": "Yes"}, {"walks_unaided": True}),
        ({"diagnosis": "gbs", "walks_unaided": "FALSE"}, {"walks_unaided": False}),
        (
            {"diagnosis": "gbs", "planned_cotherapy": "corticosteroids;plasma_exchange"},
            {"planned_cotherapy": ("corticosteroids", "plasma_exchange")},
        ),
        (
            {"diagnosis": "gbs", "planned_cotherapy": ["plasma_exchange", "plasma_exchange"]},
            {"planned_cotherapy": ("plasma_exchange",)},
        ),
    ],
)
def test_a_value_written_as_itself_is_read_and_not_listed(written, read, rulebase):
    case = rulebase.schema.validate(written)
    assert {k: case.facts[k] for k in read} == read and type(case.facts.get("age", 0)) is int
    assert case.normalised == []


def test_a_number_as_text_reads_as_yaml_reads_it(rulebase):
    """'70' from a CSV cell and 70 from YAML are one fact, of one type: results are identical."""
    from ivig_advisor.engine.base.yamlsrc import load_one

    for text in ("70", "070", "70.0", "7e1", "-0", "+70"):
        from_yaml = rulebase.schema.validate(load_one(f"diagnosis: gbs\nage: {text}\n", "x.yaml")).facts["age"]
        from_text = rulebase.schema.validate({"diagnosis": "gbs", "age": text}).facts["age"]
        assert (from_text, type(from_text)) == (from_yaml, type(from_yaml)), text


def test_the_spellings_come_from_the_schema_file(tmp_path):
    """Nothing of the vocabulary is in Python: an edited schema reads other words."""
    schema = _schema_with(
        tmp_path, ("  yes: [y,", "  yes: [jawohl, y,"), ("    kg: [kgs,", "    kg: [stone-free, kgs,")
    )
    case = schema.validate({"diagnosis": "gbs", "walks_unaided": "Jawohl", "weight_kg": "70 stone-free"})
    assert case.facts["walks_unaided"] is True and case.facts["weight_kg"] == 70


@pytest.mark.parametrize(
    "edit, words",
    [
        (("  yes: [y,", "  yes: ['1', y,"), "is a number, never a yes or a no"),
        (("  yes: [y,", "  yes: [1, y,"), "must be a list of words"),
        (("  yes: [y,", "  yes: [absent, y,"), "read as both yes and no"),
        (("aliases: [mg, myasthenia]", "aliases: [mg, myasthenia, ms]"), "'ms' names two values of field 'diagnosis'"),
        (("aliases: [steroids,", "aliases: [steroids; pe,"), "holds ';'"),
    ],
)
def test_a_schema_whose_spellings_read_one_word_two_ways_is_refused(tmp_path, edit, words):
    from ivig_advisor.engine.base.errors import SourceError

    with pytest.raises(SourceError) as info:
        _schema_with(tmp_path, edit)
    assert words in str(info.value)


def test_a_text_field_keeps_a_plain_scalar_as_written(rulebase):
    from ivig_advisor.engine.base.yamlsrc import load_one

    for written in ("00123", "1.50", "1e3", "true", "12:30"):
        data = load_one(f"id: {written}\ndiagnosis: als\n", "x.yaml")
        assert rulebase.schema.validate(data).id == written
        assert rulebase.schema.id_of(data) == written


def test_suggestions_only_for_text(rulebase):
    errors = errors_of({"diagnosis": False}, rulebase)
    assert "did you mean" not in errors[0].message


def test_every_error_is_reported_not_only_the_first(rulebase):
    errors = errors_of({"diagnosis": "nope", "age": -1, "foo": 1}, rulebase)
    assert {e.field for e in errors} == {"diagnosis", "age", "foo"}


def test_every_field_documents_itself(rulebase):
    for spec in rulebase.schema.fields.values():
        assert spec.help, spec.name
        if spec.name != "id":
            assert spec.question, spec.name
        if spec.type in ("number", "integer"):
            assert spec.unit and spec.min is not None and spec.max is not None


def _schema_with(tmp_path, *edits):
    """The shipped case schema, edited (see helpers.mutate), loaded from a temporary file."""
    from helpers import ROOT, mutate

    from ivig_advisor.engine.core.schema import CaseSchema

    path = tmp_path / "case.yaml"
    path.write_text((ROOT / "facts" / "case.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    for old, new in edits:
        mutate(path, old, new)
    return CaseSchema.load(path)


AGE_RANGE = "    min: 0\n    max: 120\n"
MIN_ONLY, MAX_ONLY = (AGE_RANGE, "    min: 0\n"), (AGE_RANGE, "    max: 120\n")


@pytest.mark.parametrize(
    "edit, case, words",
    [
        (MIN_ONLY, {"age": -1}, "'age' is -1 years, below the minimum 0 years"),
        (MAX_ONLY, {"age": 121}, "'age' is 121 years, above the maximum 120 years"),
        ((AGE_RANGE, AGE_RANGE), {"age": 121}, "'age' is 121 years, outside 0-120 years"),
        (
            ("    max: 350\n    unit: kg\n", ""),
            {"weight_kg": 0.5},
            "'weight_kg' is 0.5, below the minimum 1",
        ),  # no unit
    ],
)
def test_a_number_beyond_a_single_bound_says_which(tmp_path, edit, case, words):
    schema = _schema_with(tmp_path, edit)
    with pytest.raises(CaseInvalid) as info:
        schema.validate(dict(case, diagnosis="gbs"), "x.yaml")
    (error,) = info.value.errors
    assert (error.field, error.message) == (next(iter(case)), words)


@pytest.mark.parametrize("edit, age", [(MIN_ONLY, 300), (MAX_ONLY, -5)])
def test_a_single_bound_leaves_the_other_side_open(tmp_path, edit, age):
    assert _schema_with(tmp_path, edit).validate({"diagnosis": "gbs", "age": age}).facts["age"] == age
