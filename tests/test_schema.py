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


@pytest.mark.parametrize("case, field, words", [
    ({"diagnosis": "gbs", "age": "old"}, "age", "must be a number"),
    ({"diagnosis": "gbs", "age": True}, "age", "must be a number"),
    ({"diagnosis": "gbs", "weight_kg": 0.5}, "weight_kg", "outside 1-350 kg"),
    ({"diagnosis": "gbs", "walks_unaided": "maybe"}, "walks_unaided", "true or false"),
    ({"diagnosis": "gbs", "walks_unaided": "off"}, "walks_unaided", "not 'off'"),
    ({"diagnosis": "gbs", "age": "0x41"}, "age", "'0x41' is not a number as written (hexadecimal): write it in decimal"),
    ({"diagnosis": "gbs", "age": "1:05"}, "age", "(base 60, as a time)"),
    ({"diagnosis": "gbs", "age": "65"}, "age", "remove the quotes"),
    ({"diagnosis": "gbs", "age": 10 ** 5000}, "age", "more than 15 digits: too large"),
    ({"diagnosis": False}, "diagnosis", "'false' is not an allowed value"),
    ({"diagnosis": "no"}, "diagnosis", "'no' is not an allowed value"),
    ({"diagnosis": "x" * 10_000}, "diagnosis", "(10,000 characters)"),
    ({"diagnosis": "lambert"}, "diagnosis", "not an allowed value"),
    ({"diagnosis": "lems", "planned_cotherapy": "steroids"}, "planned_cotherapy", "must be a list"),
    ({"diagnosis": "lems", "planned_cotherapy": ["steroids"]}, "planned_cotherapy", "did you mean 'corticosteroids'"),
    ({"diagnosis": "gbs", "refactory": True}, "refactory", "did you mean 'refractory'"),
    ({"age": 4}, "diagnosis", "required"),
    ({"diagnosis": "gbs", "needs_ventilation": True, "walks_unaided": True}, "needs_ventilation", "cannot walk unaided"),
])
def test_invalid_cases_name_the_field(case, field, words, rulebase):
    errors = errors_of(case, rulebase)
    assert errors[0].field == field and words in errors[0].message


@pytest.mark.parametrize("written, value", [("yes", True), ("No", False), ("TRUE", True), ("false", False)])
def test_yes_and_no_are_read_for_boolean_fields_only(written, value, rulebase):
    assert rulebase.schema.validate({"diagnosis": "gbs", "walks_unaided": written}).facts["walks_unaided"] is value


def test_a_text_field_keeps_a_plain_scalar_as_written(rulebase):
    from ivig_advisor.engine.yamlsrc import load_one
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
    """The shipped case schema, edited (see conftest.mutate), loaded from a temporary file."""
    from conftest import ROOT, mutate
    from ivig_advisor.engine.schema import CaseSchema
    path = tmp_path / "case.yaml"
    path.write_text((ROOT / "facts" / "case.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    for old, new in edits:
        mutate(path, old, new)
    return CaseSchema.load(path)


AGE_RANGE = "    min: 0\n    max: 120\n"
MIN_ONLY, MAX_ONLY = (AGE_RANGE, "    min: 0\n"), (AGE_RANGE, "    max: 120\n")


@pytest.mark.parametrize("edit, case, words", [
    (MIN_ONLY, {"age": -1}, "'age' is -1 years, below the minimum 0 years"),
    (MAX_ONLY, {"age": 121}, "'age' is 121 years, above the maximum 120 years"),
    ((AGE_RANGE, AGE_RANGE), {"age": 121}, "'age' is 121 years, outside 0-120 years"),
    (("    max: 350\n    unit: kg\n", ""), {"weight_kg": 0.5}, "'weight_kg' is 0.5, below the minimum 1"),  # no unit
])
def test_a_number_beyond_a_single_bound_says_which(tmp_path, edit, case, words):
    schema = _schema_with(tmp_path, edit)
    with pytest.raises(CaseInvalid) as info:
        schema.validate(dict(case, diagnosis="gbs"), "x.yaml")
    (error,) = info.value.errors
    assert (error.field, error.message) == (next(iter(case)), words)


@pytest.mark.parametrize("edit, age", [(MIN_ONLY, 300), (MAX_ONLY, -5)])
def test_a_single_bound_leaves_the_other_side_open(tmp_path, edit, age):
    assert _schema_with(tmp_path, edit).validate({"diagnosis": "gbs", "age": age}).facts["age"] == age
