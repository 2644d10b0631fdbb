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
    ({"diagnosis": "gbs", "walks_unaided": "no"}, "walks_unaided", "true or false"),
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
