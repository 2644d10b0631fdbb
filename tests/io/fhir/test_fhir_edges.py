"""FHIR records at the edges (issue 25, "No wrong answer at the edges"), through the real CLI.

1. A malformed ICD code (G61.8.2, G6.182...) is no code: only the code as
   published (one dot, after the 3rd character) or that code without its dot
   matches (facts/fhir-map.yaml, `systems`: `dot_after`); anything else is
   listed under `unmapped` with why, for every system with a dot.
2. A weight with a comparator (`> 70 kg`) is a bound, not a weight: it sets
   nothing and says why; a weight written as a text is a structure error
   naming its path. No dose in grams comes from either.
3. A record whose diagnosis the mapping does not read is `diagnosis: other`
   (out of scope) and still gets every warning its facts support: in
   `ivig evaluate` and in `ivig fhir map` alike, its origin saying why.
4. Two Patients with one id (in a Bundle or a Bulk export): neither gets
   advice; each is an error naming the id and where both are.
5. The same issue re-tested: a weight whose unit text and UCUM code disagree
   is an error, never a dose (F14); a code below a prefix entry matches only
   when written in its system's form (`form` in facts/fhir-map.yaml); ICD-10
   and ATC codes written lower-case are read upper-cased and say so (F13); a
   code with whitespace around it says so; the origin beside `diagnosis:
   other` counts what `unmapped` lists.
"""

import json
from pathlib import Path

import pytest
from helpers import AS_OF, CM, LOINC, ROOT, UCUM, body_weight, coding, evaluate_json, invoke, write_json

WHO = "http://hl7.org/fhir/sid/icd-10"
PCS = "http://www.cms.gov/Medicare/Coding/ICD10"
ATC = "http://www.whocc.no/atc"


# -- records -------------------------------------------------------------------------


def patient(pid="p", birth="1970-06-01", gender="female"):
    return {"resourceType": "Patient", "id": pid, "birthDate": birth, "gender": gender}


def condition(rid, *codings, pid="p"):
    return {
        "resourceType": "Condition",
        "id": rid,
        "subject": {"reference": f"Patient/{pid}"},
        "code": {"coding": list(codings)},
    }


def weight(rid, value, unit="kg", when="2026-11-01", pid="p", **quantity):
    return body_weight(rid, {"value": value, "unit": unit, "system": UCUM, "code": unit, **quantity}, pid, when)


def ivig_order(rid="rx", pid="p"):
    return {
        "resourceType": "MedicationRequest",
        "id": rid,
        "status": "active",
        "intent": "order",
        "subject": {"reference": f"Patient/{pid}"},
        "medicationCodeableConcept": {"coding": [coding(ATC, "J06BA02")]},
    }


def procedure(rid, *codings, pid="p"):
    return {
        "resourceType": "Procedure",
        "id": rid,
        "status": "in-progress",
        "subject": {"reference": f"Patient/{pid}"},
        "code": {"coding": list(codings)},
    }


def bundle(*resources, urls=None):
    entries = [{"resource": r} for r in resources]
    for entry, url in zip(entries, urls or ()):
        if url:
            entry["fullUrl"] = url
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def write_export(directory: Path, files: dict) -> Path:
    directory.mkdir()
    for name, resources in files.items():
        (directory / name).write_text("".join(json.dumps(r) + "\n" for r in resources), encoding="utf-8")
    return directory


# -- running -------------------------------------------------------------------------


def fhir_map(*paths, explain=True):
    out = invoke("fhir", "map", *(["--explain"] if explain else []), "--as-of", AS_OF, *paths)
    assert out.exit_code in (0, 1), f"exit {out.exit_code}: {out.output}{out.exception!r}"
    return out


def unmapped_of(result, resource):
    return [u for u in result.get("unmapped") or [] if u["resource"] == resource]


def codes(result):
    return sorted(w["code"] for w in result["warnings"])


# == 1. Malformed ICD codes =============================================================

MALFORMED_CM = ["G61.8.2", "G.61.82", "G61..82", ".G6182.", "G6.182", "G618.2", "G61.82.", "G61."]


@pytest.mark.parametrize("code", MALFORMED_CM)
def test_malformed_icd10cm_code_is_not_mmn(tmp_path, code):
    """G61.82 (MMN) written with a dot out of place is no code: no MMN, no 140 g; it is listed
    under unmapped with why, and the record is out of scope (no diagnosis read)."""
    path = write_json(tmp_path / "b.json", bundle(patient(), condition("dx", coding(CM, code)), weight("w", 70)))
    _, [result] = evaluate_json(path)
    assert result["status"] == "ok", result["error"]
    assert result["ivig"]["rule"] == "out-of-scope"
    assert not (result["dose"] and result["dose"]["total_g"])
    [entry] = unmapped_of(result, "Condition/dx")
    assert entry["codes"] == [f"ICD-10-CM {code}"]
    assert entry["path"] == "Bundle.entry[1].resource.code"
    assert entry["reason"] == (
        f"{code} is no ICD-10-CM code as written: its one dot comes after the 3rd character (or is left out)"
    )


@pytest.mark.parametrize("code", ["G61.82", "G6182"])
def test_icd10cm_code_as_published_or_without_its_dot_is_mmn(tmp_path, code):
    """The code as published and the same code with its dot left out are both MMN (2 g/kg x 70 kg)."""
    path = write_json(tmp_path / "b.json", bundle(patient(), condition("dx", coding(CM, code)), weight("w", 70)))
    _, [result] = evaluate_json(path)
    assert result["origins"]["diagnosis"] == [f"Condition/dx ICD-10-CM {code}"]
    assert result["dose"]["total_g"] == 140.0


@pytest.mark.parametrize(
    "system, code, name", [(WHO, "G70..0", "ICD-10"), (WHO, "G7.00", "ICD-10"), (CM, "G70.0.1", "ICD-10-CM")]
)
def test_malformed_code_of_every_dotted_system_is_unmapped(tmp_path, system, code, name):
    """The rule is every dotted system's: WHO ICD-10 G70.0 (myasthenia) written G70..0 is no code either."""
    path = write_json(tmp_path / "b.json", bundle(patient(), condition("dx", coding(system, code))))
    _, [result] = evaluate_json(path)
    assert result["ivig"]["rule"] == "out-of-scope"
    [entry] = unmapped_of(result, "Condition/dx")
    assert entry["reason"].startswith(f"{code} is no {name} code as written")


def test_malformed_prefix_code_gives_no_renal_disease(tmp_path):
    """N18.4 is chronic kidney disease (the N18 prefix) written either way; N1.84 is no code."""
    path = write_json(
        tmp_path / "b.json",
        bundle(
            patient(),
            condition("dx", coding(CM, "G61.82")),
            condition("ok1", coding(CM, "N18.4")),
            condition("ok2", coding(CM, "N184"), pid="q"),
            patient("q"),
            condition("dq", coding(CM, "G61.82"), pid="q"),
            condition("bad", coding(CM, "N1.84"), pid="r"),
            patient("r"),
            condition("dr", coding(CM, "G61.82"), pid="r"),
        ),
    )
    _, results = evaluate_json(path)
    got = {r["id"]: r for r in results}
    assert got["p"]["origins"]["renal_disease"] == ["Condition/ok1 ICD-10-CM N18.4"]
    assert got["q"]["origins"]["renal_disease"] == ["Condition/ok2 ICD-10-CM N184"]
    assert "renal_disease" not in got["r"]["origins"]
    assert [u["codes"] for u in got["r"]["unmapped"]] == [["ICD-10-CM N1.84"]]


def test_a_malformed_coding_beside_a_mapped_one_is_listed(tmp_path):
    """A Condition coded SNOMED MMN and a malformed ICD-10-CM code: MMN from the SNOMED code, and
    the malformed one listed under unmapped with why."""
    path = write_json(
        tmp_path / "b.json",
        bundle(patient(), condition("dx", coding("http://snomed.info/sct", "230591002"), coding(CM, "G61..82"))),
    )
    _, [result] = evaluate_json(path)
    assert result["origins"]["diagnosis"] == ["Condition/dx SNOMED CT 230591002"]
    [entry] = unmapped_of(result, "Condition/dx")
    assert entry["codes"] == ["ICD-10-CM G61..82"] and "is no ICD-10-CM code as written" in entry["reason"]


def test_icd10pcs_code_with_a_dot_is_no_plasma_exchange(tmp_path):
    """ICD-10-PCS codes have no dot: 6A55.0Z3 is not 6A550Z3 (plasma exchange)."""
    path = write_json(
        tmp_path / "b.json",
        bundle(patient(), condition("dx", coding(CM, "G61.82")), procedure("pe", coding(PCS, "6A55.0Z3"))),
    )
    _, [result] = evaluate_json(path)
    assert "planned_cotherapy" not in result["origins"]
    assert [u["codes"] for u in unmapped_of(result, "Procedure/pe")] == [["ICD-10-PCS 6A55.0Z3"]]


def test_fhir_map_explain_lists_the_malformed_code(tmp_path):
    path = write_json(tmp_path / "b.json", bundle(patient(), condition("dx", coding(CM, "G6.182"))))
    out = fhir_map(path)
    assert "diagnosis: mmn" not in out.stdout
    assert (
        "#   Condition/dx ICD-10-CM G6.182: G6.182 is no ICD-10-CM code as written: its one dot comes "
        "after the 3rd character (or is left out) [Bundle.entry[1].resource.code]"
    ) in out.stdout


def mapping_errors(tmp_path, *changes) -> tuple:
    """The load errors of a copy of facts/fhir-map.yaml with each (old, new) text replaced once
    (old must be there), and the copy's lines."""
    from ivig_advisor.engine.base.errors import FhirMapInvalid
    from ivig_advisor.engine.io.fhir.mapping import FhirMap

    text = (ROOT / "facts" / "fhir-map.yaml").read_text(encoding="utf-8")
    for old, new in changes:
        assert old in text
        text = text.replace(old, new, 1)
    copy = tmp_path / "fhir-map.yaml"
    copy.write_text(text, encoding="utf-8")
    with pytest.raises(FhirMapInvalid) as caught:
        FhirMap.load(copy)
    return caught.value.errors, text.splitlines()


def test_a_mapping_code_that_breaks_its_system_dot_rule_is_refused(tmp_path):
    """The mapping's own codes follow the rule: a G6.182 in facts/fhir-map.yaml is a load error on its line."""
    [error], lines = mapping_errors(
        tmp_path, ("{system: icd-10-cm, code: G61.82,", "{system: icd-10-cm, code: G6.182,")
    )
    line = next(n for n, t in enumerate(lines, 1) if "code: G6.182" in t)
    assert error.line == line and "G6.182 is no ICD-10-CM code as written" in str(error)


# == 2. Weights that are no weight ======================================================


@pytest.mark.parametrize("comparator", ["<", "<=", ">=", ">"])
def test_weight_with_a_comparator_is_a_bound_not_a_weight(tmp_path, comparator):
    """MMN with a weight `> 70 kg`: no weight, no dose in grams (it was 140 g); unmapped says why."""
    path = write_json(
        tmp_path / "b.json",
        bundle(patient(), condition("dx", coding(CM, "G61.82")), weight("w", 70, comparator=comparator)),
    )
    _, [result] = evaluate_json(path)
    assert result["status"] == "ok", result["error"]
    assert "weight_kg" not in result["origins"] and "weight_kg" in result["missing"]
    assert result["dose"]["total_g"] is None
    [entry] = unmapped_of(result, "Observation/w")
    assert entry["path"] == "Bundle.entry[2].resource.valueQuantity"
    assert entry["reason"] == (
        f"a body-weight of {comparator} 70 kg is a bound (valueQuantity.comparator), not a weight: it sets nothing"
    )


def test_a_bound_later_than_a_weight_leaves_the_weight_unknown(tmp_path):
    """60 kg in March, `< 90 kg` in November: the latest is a bound, so the weight is not known (an
    earlier weight does not stand in for the latest); both are listed under unmapped."""
    path = write_json(
        tmp_path / "b.json",
        bundle(
            patient(),
            condition("dx", coding(CM, "G61.82")),
            weight("old", 60, when="2026-03-01"),
            weight("new", 90, when="2026-11-01", comparator="<"),
        ),
    )
    _, [result] = evaluate_json(path)
    assert "weight_kg" not in result["origins"] and result["dose"]["total_g"] is None
    [old] = unmapped_of(result, "Observation/old")
    assert old["reason"] == "an earlier body-weight: the latest, Observation/new, is a bound, so the weight is unknown"
    assert unmapped_of(result, "Observation/new")


def test_a_weight_later_than_a_bound_counts(tmp_path):
    """`> 50 kg` in March, 72 kg in November: the latest is a weight, 2 g/kg x 72 kg."""
    path = write_json(
        tmp_path / "b.json",
        bundle(
            patient(),
            condition("dx", coding(CM, "G61.82")),
            weight("old", 50, when="2026-03-01", comparator=">"),
            weight("new", 72, when="2026-11-01"),
        ),
    )
    _, [result] = evaluate_json(path)
    assert result["origins"]["weight_kg"] == ["Observation/new LOINC 29463-7 = 72 kg"]
    assert result["dose"]["total_g"] == 144.0


@pytest.mark.parametrize(
    "value, said",
    [
        ("70", "a body-weight whose value '70' is not a number (FHIR JSON writes a decimal as a number)"),
        (True, "not a valid Observation"),
        ([70], "not a valid Observation"),
        ({"v": 70}, "not a valid Observation"),
    ],
)
def test_weight_value_that_is_not_a_number_is_a_structure_error(tmp_path, value, said):
    """`value: "70"` was silently no weight (the structure check reads it as a decimal): it is an
    error naming the Observation and the path, as true, a list or an object already were."""
    path = write_json(tmp_path / "b.json", bundle(patient(), condition("dx", coding(CM, "G61.82")), weight("w", value)))
    code, [result] = evaluate_json(path)
    assert code == 1 and result["status"] == "error"
    assert result["error"]["field"] == "Bundle.entry[2].resource.valueQuantity.value"
    assert result["error"]["message"].startswith(f"Observation/w: {said}")


def test_fhir_map_shows_the_bound_as_not_read(tmp_path):
    path = write_json(
        tmp_path / "b.json", bundle(patient(), condition("dx", coding(CM, "G61.82")), weight("w", 70, comparator=">"))
    )
    out = fhir_map(path)
    assert out.exit_code == 0 and "weight_kg" not in out.stdout
    assert (
        "#   Observation/w LOINC 29463-7: a body-weight of > 70 kg is a bound (valueQuantity.comparator), not a "
        "weight: it sets nothing [Bundle.entry[2].resource.valueQuantity]"
    ) in out.stdout


# == 3. A diagnosis the mapping does not read ==========================================


def itp_bundle(tmp_path):
    """Immune thrombocytopenic purpura (D69.3, not in the mapping), an active IVIG order, CKD stage 4
    (N18.4) and dehydration (E86.0): out of scope, with the critical renal warning."""
    return write_json(
        tmp_path / "itp.json",
        bundle(
            patient(),
            condition("itp-dx", coding(CM, "D69.3", "Immune thrombocytopenic purpura")),
            condition("ckd", coding(CM, "N18.4")),
            condition("dehyd", coding(CM, "E86.0")),
            ivig_order(),
            weight("w", 70),
        ),
    )


ITP_TYPED = (
    "id: p\ndiagnosis: other\nivig_planned: true\nrenal_disease: true\nvolume_depletion: true\n"
    "age: 56\nsex: female\nweight_kg: 70\n"
)
OTHER_ORIGIN = "no Condition of the record gives a diagnosis the mapping reads (1 not read: see unmapped)"


def test_unmapped_diagnosis_is_other_with_every_warning(tmp_path):
    """The ITP record gives what the same patient typed as a case gives: out of scope, and the
    critical renal-failure warning among all the others."""
    code, [result] = evaluate_json(itp_bundle(tmp_path))
    assert code == 0 and result["status"] == "ok", result["error"]
    (tmp_path / "typed.yaml").write_text(ITP_TYPED, encoding="utf-8")
    _, [typed] = evaluate_json(tmp_path / "typed.yaml")
    assert result["ivig"] == typed["ivig"] and result["ivig"]["stance"] == "out-of-scope"
    assert codes(result) == codes(typed) and "renal-failure" in codes(result)
    assert result["max_severity"] == "critical"
    assert result["origins"]["diagnosis"] == [OTHER_ORIGIN]
    assert [u["codes"] for u in result["unmapped"]] == [["ICD-10-CM D69.3 Immune thrombocytopenic purpura"]]


def test_other_origin_is_on_the_trace(tmp_path):
    """The trace's diagnosis fact says where `other` came from."""
    _, [result] = evaluate_json(itp_bundle(tmp_path))
    facts = [f for t in result["trace"] for f in t["matched"] if f.get("name") == "diagnosis"]
    assert facts and all(f["origin"] == [OTHER_ORIGIN] for f in facts)


def test_fhir_map_of_unmapped_diagnosis_is_other_and_round_trips(tmp_path):
    """`ivig fhir map --explain` says diagnosis: other and why; its case file evaluates to the same."""
    path = itp_bundle(tmp_path)
    out = fhir_map(path)
    assert out.exit_code == 0, out.stdout
    assert f"diagnosis: other  # {OTHER_ORIGIN}\n" in out.stdout
    assert (
        "#   Condition/itp-dx ICD-10-CM D69.3 Immune thrombocytopenic purpura: no entry of the mapping "
        "has this code [Bundle.entry[1].resource.code]" in out.stdout
    )
    (tmp_path / "mapped.yaml").write_text(fhir_map(path, explain=False).stdout, encoding="utf-8")
    _, [again] = evaluate_json(tmp_path / "mapped.yaml")
    _, [direct] = evaluate_json(path)
    assert (again["ivig"], codes(again), again["dose"]) == (direct["ivig"], codes(direct), direct["dose"])


def test_record_without_any_condition_is_other(tmp_path):
    """A Patient alone: out of scope, and its origin says nothing is listed as not read."""
    _, [result] = evaluate_json(write_json(tmp_path / "p.json", patient()))
    assert result["status"] == "ok" and result["ivig"]["stance"] == "out-of-scope"
    assert result["origins"]["diagnosis"] == [
        "no Condition of the record gives a diagnosis the mapping reads (nothing left unread)"
    ]


def test_two_diagnoses_are_still_a_conflict_not_other(tmp_path):
    """`other` is for a record with no diagnosis, never for one with two."""
    path = write_json(
        tmp_path / "b.json",
        bundle(patient(), condition("c1", coding(CM, "G61.81")), condition("c2", coding(CM, "G70.00"))),
    )
    code, [result] = evaluate_json(path)
    assert code == 1 and "two values of diagnosis" in result["error"]["message"]


# == 4. Two Patients with one id ========================================================


def twins(tmp_path, urls=None):
    return write_json(
        tmp_path / "twins.json",
        bundle(
            patient("p", birth="1970-01-01", gender="female"),
            patient("p", birth="1950-01-01", gender="male"),
            condition("dx", coding(CM, "G61.82")),
            weight("w", 70),
            urls=urls,
        ),
    )


def test_two_patients_with_one_id_in_a_bundle_get_no_advice(tmp_path):
    """Born 1970 F and 1950 M, both Patient/p: two errors (the first got 140 g), each naming both entries."""
    path = twins(tmp_path)
    code, results = evaluate_json(path)
    assert code == 1
    assert [(r["id"], r["status"]) for r in results] == [("p", "error"), ("p", "error")]
    assert [r["error"]["field"] for r in results] == ["Bundle.entry[0].resource", "Bundle.entry[1].resource"]
    for result in results:
        assert result["ivig"] is None and result["dose"] is None and not result["warnings"]
        assert result["error"]["message"].startswith(
            "Patient/p: 2 Patients have the id p (Bundle.entry[0].resource, Bundle.entry[1].resource): "
        )
        assert result["error"]["source"] == str(path)


def test_two_patients_with_one_id_are_named_by_their_full_urls(tmp_path):
    path = twins(tmp_path, urls=["http://a.example/fhir/Patient/p", "urn:uuid:0b8f6f4e-64b8-4a51-9f5a-5d4c0e5a1a11"])
    _, results = evaluate_json(path)
    assert all(
        "Bundle.entry[0].resource (http://a.example/fhir/Patient/p), Bundle.entry[1].resource "
        "(urn:uuid:0b8f6f4e-64b8-4a51-9f5a-5d4c0e5a1a11)" in r["error"]["message"]
        for r in results
    )


def test_fhir_map_of_two_patients_with_one_id_is_two_errors(tmp_path):
    out = fhir_map(twins(tmp_path), explain=False)
    assert out.exit_code == 1 and out.stdout.count("# ERROR: ") == 2
    assert out.stdout.count("] Patient/p: 2 Patients have the id p (Bundle.entry[0].resource, ") == 2
    assert "diagnosis:" not in out.stdout


def test_two_patients_with_one_id_in_a_bulk_export_get_no_advice(tmp_path):
    """The same in a Bulk export (two lines of Patient.ndjson): two errors at their lines, no advice;
    the export's other patient is evaluated."""
    export = write_export(
        tmp_path / "export",
        {
            "Patient.ndjson": [patient("p", "1970-01-01", "female"), patient("q"), patient("p", "1950-01-01", "male")],
            "Condition.ndjson": [condition("dx", coding(CM, "G61.82")), condition("dq", coding(CM, "G61.82"), pid="q")],
            "Observation.ndjson": [weight("w", 70)],
        },
    )
    code, results = evaluate_json(export)
    assert code == 1
    assert [(r["id"], r["status"], r["line"]) for r in results] == [
        ("p", "error", 1),
        ("p", "error", 3),
        ("q", "ok", 2),
    ]
    for result in results[:2]:
        assert result["dose"] is None and result["error"]["message"].startswith(
            "Patient/p: 2 Patients have the id p (Patient.ndjson:1, Patient.ndjson:3): "
        )


# == The mapping for review ===========================================================


def test_fhir_codes_says_the_dot_rule_and_what_a_record_without_diagnosis_is():
    """`ivig fhir codes` shows a reviewer both decisions, in text and JSON."""
    text = invoke("fhir", "codes").stdout
    assert (
        "ICD-10-CM codes have one dot, after the 3rd character: a code matches as published or with that "
        "dot left out; with a dot elsewhere it matches nothing"
    ) in text
    assert (
        "  diagnosis = other: no Condition of the record gives a diagnosis the mapping reads  (assumptions F12)" in text
    )
    data = json.loads(invoke("fhir", "codes", "--format", "json").stdout)
    assert data["dots"] == {"ICD-10-CM": 3, "ICD-10": 3}
    assert data["otherwise"]["diagnosis"]["value"] == "other" and "F12" in data["assumptions"]


# == 5. The second round (issue 25 re-tested) ==========================================

SCT = "http://snomed.info/sct"
ATC_CORTICOSTEROID = "H02AB06"  # prednisolone, below the mapping's H02AB


def quantity(value=70, **given):
    """A body weight's valueQuantity exactly as given (unit, system and code only where named)."""
    return {"value": value, **given}


def mmn_weighing(tmp_path, value_quantity, *more):
    return write_json(
        tmp_path / "b.json",
        bundle(patient(), condition("dx", coding(CM, "G61.82")), body_weight("w", value_quantity), *more),
    )


def text_of(*args):
    out = invoke(*args)
    assert out.exit_code in (0, 1), f"exit {out.exit_code}: {out.output}{out.exception!r}"
    return out.stdout


# -- 5.1 a weight whose unit and code disagree --------------------------------------------


@pytest.mark.parametrize(
    "unit, code",
    [
        ("lb", "kg"),
        ("lbs", "kg"),
        ("pounds", "kg"),
        ("kg", "[lb_av]"),
        ("Kilograms", "[lb_av]"),
        ("g", "kg"),
        ("kg", "g"),
        ("grams", "[lb_av]"),
    ],
)
def test_a_weight_whose_unit_and_code_disagree_is_not_read(tmp_path, unit, code):
    """{value 70, unit lb, code kg} was 70 kg and 140 g: if the record meant 70 lb, 2.2 times the dose.
    Which is meant cannot be told, so it is an error naming valueQuantity, as an unknown unit is."""
    path = mmn_weighing(tmp_path, quantity(70, unit=unit, system=UCUM, code=code))
    exit_code, [result] = evaluate_json(path)
    assert exit_code == 1 and result["status"] == "error"
    assert result["dose"] is None and result["ivig"] is None
    assert result["error"]["field"] == "Bundle.entry[2].resource.valueQuantity"
    assert result["error"]["message"].startswith(
        f"Observation/w: a body-weight whose unit '{unit}' names another unit than its code {code}"
    )


def test_a_weight_whose_unit_ivig_cannot_name_is_not_read(tmp_path):
    """A unit text that is no spelling of any unit the mapping knows (stone) cannot be told to agree
    with the code either: an error, never a dose."""
    path = mmn_weighing(tmp_path, quantity(11, unit="stone", system=UCUM, code="kg"))
    exit_code, [result] = evaluate_json(path)
    assert exit_code == 1 and result["error"]["field"] == "Bundle.entry[2].resource.valueQuantity"
    assert "a body-weight whose unit 'stone' is not one ivig can tell is kg" in result["error"]["message"]


@pytest.mark.parametrize(
    "given, grams",
    [
        (dict(unit="kg", system=UCUM, code="kg"), 140.0),
        (dict(unit="Kilograms", system=UCUM, code="kg"), 140.0),
        (dict(unit="KG", system=UCUM, code="kg"), 140.0),
        (dict(system=UCUM, code="kg"), 140.0),
        (dict(unit="lbs", system=UCUM, code="[lb_av]", value=154.32), 140.0),
        (dict(unit="[lb_av]", system=UCUM, code="[lb_av]", value=154.32), 140.0),
        (dict(unit="pound", system=UCUM, code="[lb_av]", value=154.32), 140.0),
        (dict(unit="grams", system=UCUM, code="g", value=70000), 140.0),
    ],
)
def test_a_unit_that_restates_its_code_is_read(tmp_path, given, grams):
    """The unit text may say the code's unit in any common spelling, or be left out."""
    value = given.pop("value", 70)
    _, [result] = evaluate_json(mmn_weighing(tmp_path, quantity(value, **given)))
    assert result["status"] == "ok", result["error"]
    assert result["dose"]["total_g"] == grams


def test_a_unit_given_only_as_text_is_not_read(tmp_path):
    """`unit: kg` with no UCUM code: the R4 vital-signs profile requires the code, and the text is for
    people. It is an error naming valueQuantity.code (as before; F14 says why)."""
    exit_code, [result] = evaluate_json(mmn_weighing(tmp_path, quantity(70, unit="kg")))
    assert exit_code == 1 and result["error"]["field"] == "Bundle.entry[2].resource.valueQuantity.code"
    assert result["error"]["message"].startswith("Observation/w: a body-weight in the unit 'kg' with no system")


def test_fhir_codes_lists_each_unit_with_its_spellings():
    text = text_of("fhir", "codes")
    assert "    units: kg x 1 (written kg, kgs, kilo, kilos, kilogram, kilograms), " in text
    assert "[lb_av] x 0.45359237 (written [lb_av], lb, lbs, pound, pounds)" in text
    data = json.loads(text_of("fhir", "codes", "--format", "json"))
    [weight_quantity] = data["quantities"]
    assert {u["code"]: u["spellings"] for u in weight_quantity["units"]}["g"] == ["g", "gm", "gram", "grams"]
    assert "F14" in data["assumptions"] and "F14" in json.dumps(weight_quantity)


def test_a_spelling_of_two_units_is_refused_on_load(tmp_path):
    """A unit text that names two units of the mapping could never be checked: a load error on its line."""
    [error], lines = mapping_errors(
        tmp_path, ("spellings: [lb, lbs, pound, pounds]", "spellings: [lb, lbs, pound, pounds, kilos]")
    )
    assert "'kilos' is a spelling of both kg and [lb_av]" in str(error)
    assert error.line == next(n for n, t in enumerate(lines, 1) if "pounds, kilos" in t)


# -- 5.2 a prefix entry matches only codes as published -------------------------------------

FORM_CM = (
    "is no ICD-10-CM code as written: ICD-10-CM writes a letter, two letters or digits, then "
    "optionally a dot and 1 to 4 letters or digits"
)


@pytest.mark.parametrize("code", ["M33.1 junk", "M33.1-", "M33.19999", "M331ZZZZZ", "M33.1/3", "M33.13X9Z"])
def test_a_code_below_a_prefix_entry_must_be_well_formed(tmp_path, code):
    """M33.1 (other dermatomyositis) matched any tail: 'M33.1 junk' was dermatomyositis, second-line,
    140 g. A code that is not written as ICD-10-CM writes codes matches nothing, and says so."""
    path = write_json(tmp_path / "b.json", bundle(patient(), condition("dx", coding(CM, code)), weight("w", 70)))
    _, [result] = evaluate_json(path)
    assert result["status"] == "ok" and result["ivig"]["rule"] == "out-of-scope"
    assert not (result["dose"] and result["dose"]["total_g"])
    [entry] = unmapped_of(result, "Condition/dx")
    assert entry["reason"] == f"{code} {FORM_CM}"


@pytest.mark.parametrize("code", ["M33.1", "M33.13", "M3313", "M33.1X"])
def test_a_well_formed_code_below_a_prefix_entry_is_read(tmp_path, code):
    path = write_json(tmp_path / "b.json", bundle(patient(), condition("dx", coding(CM, code)), weight("w", 70)))
    _, [result] = evaluate_json(path)
    assert result["origins"]["diagnosis"] == [f"Condition/dx ICD-10-CM {code}"]


@pytest.mark.parametrize(
    "system, code", [(CM, "N18 foo"), (CM, "N18.4 stage 4"), (WHO, "N18.123"), (WHO, "N18.A"), (WHO, "N1B.4")]
)
def test_a_malformed_kidney_code_sets_no_renal_disease(tmp_path, system, code):
    """'N18 foo' set renal disease (the N18 prefix); WHO ICD-10 codes have at most two digits after
    the dot (who-icd10-2019: B18.00 is the longest)."""
    path = write_json(
        tmp_path / "b.json",
        bundle(
            patient(),
            condition("dx", coding(CM, "G61.82")),
            condition("ckd", coding(system, code)),
            ivig_order(),
            weight("w", 70),
        ),
    )
    _, [result] = evaluate_json(path)
    assert "renal_disease" not in result["origins"]
    [entry] = unmapped_of(result, "Condition/ckd")
    assert " is no ICD-10" in entry["reason"] and " code as written: " in entry["reason"]


def test_a_malformed_atc_code_below_a_prefix_entry_is_no_corticosteroid(tmp_path):
    """ATC H02AB (glucocorticoids) is a prefix entry too: H02AB06 is prednisolone, H02AB06X no code."""

    def order(rid, code):
        return dict(ivig_order(rid), medicationCodeableConcept={"coding": [coding(ATC, code)]})

    path = write_json(
        tmp_path / "b.json",
        bundle(
            patient(),
            condition("dx", coding(CM, "G61.82")),
            order("good", ATC_CORTICOSTEROID),
            patient("q"),
            condition("dq", coding(CM, "G61.82"), pid="q"),
            dict(order("bad", "H02AB06X"), subject={"reference": "Patient/q"}),
        ),
    )
    _, results = evaluate_json(path)
    got = {r["id"]: r for r in results}
    assert got["p"]["origins"]["planned_cotherapy"] == [f"MedicationRequest/good ATC {ATC_CORTICOSTEROID}"]
    assert "planned_cotherapy" not in got["q"]["origins"]
    [entry] = unmapped_of(got["q"], "MedicationRequest/bad")
    assert entry["reason"].startswith("H02AB06X is no ATC code as written: ATC writes ")


def test_a_prefix_entry_in_a_system_without_a_form_is_refused_on_load(tmp_path):
    """A prefix entry whose system does not say how its codes are written would match any tail."""
    [error], _ = mapping_errors(
        tmp_path,
        ('{system: snomed, code: "709044004", display', '{system: snomed, code: "709044004", match: prefix, display'),
    )
    assert "a prefix code needs its system's 'form'" in str(error)


def test_a_mapping_code_not_written_as_its_system_writes_codes_is_refused(tmp_path):
    """The mapping's own codes follow the form (and are written upper-case, as published)."""
    errors, _ = mapping_errors(
        tmp_path,
        ("{system: icd-10-cm, code: G61.82,", "{system: icd-10-cm, code: G61.82345,"),
        ("{system: icd-10-cm, code: G61.81,", "{system: icd-10-cm, code: g61.81,"),
    )
    messages = [str(e) for e in errors]
    assert len(messages) == 2
    assert any(f"entry 'mmn' code: G61.82345 {FORM_CM}" in m for m in messages)
    assert any(
        "entry 'cidp' code: ICD-10-CM publishes g61.81 as G61.81, and the mapping writes its codes as published" in m
        for m in messages
    )


# -- 5.3 lower case and whitespace ------------------------------------------------------------

READ_UPPER = "(read as {}: ICD-10-CM publishes its codes upper-case, F13)"


@pytest.mark.parametrize("code, published", [("g61.82", "G61.82"), ("g6182", "G6182"), ("G61.82", None)])
def test_a_lower_case_icd_code_is_read_upper_cased_and_says_so(tmp_path, code, published):
    """g61.82 was unmapped as 'no entry of the mapping has this code'. ICD-10-CM publishes its codes
    upper-case and none differs from another only in case, so it is read as G61.82, and the
    origin and `normalised` say so (as a case file's other spellings are)."""
    path = write_json(tmp_path / "b.json", bundle(patient(), condition("dx", coding(CM, code)), weight("w", 70)))
    _, [result] = evaluate_json(path)
    assert result["dose"]["total_g"] == 140.0 and not result["unmapped"]
    origin = f"Condition/dx ICD-10-CM {code}" + (f" {READ_UPPER.format(published)}" if published else "")
    assert result["origins"]["diagnosis"] == [origin]
    if published:
        assert result["normalised"] == [
            {"field": "diagnosis", "written": f"ICD-10-CM {code}", "read": f"ICD-10-CM {published}"}
        ]
    else:
        assert "normalised" not in result


def test_a_lower_case_kidney_code_keeps_the_renal_warning(tmp_path):
    """n18.4 with an IVIG order lost the renal warning; read as N18.4 it warns, and every output says
    what was read: text (Read as), CSV (normalised) and `fhir map --explain`."""
    path = write_json(
        tmp_path / "b.json",
        bundle(
            patient(),
            condition("dx", coding(CM, "G61.82")),
            condition("ckd", coding(CM, "n18.4")),
            ivig_order(),
            weight("w", 70),
        ),
    )
    _, [result] = evaluate_json(path)
    assert "renal-failure" in codes(result)
    assert result["origins"]["renal_disease"] == [f"Condition/ckd ICD-10-CM n18.4 {READ_UPPER.format('N18.4')}"]
    text = text_of("evaluate", "--quiet", "--as-of", AS_OF, path)
    assert "Read as: renal_disease: ICD-10-CM n18.4 -> ICD-10-CM N18.4" in text
    csv_text = text_of("evaluate", "--quiet", "--format", "csv", "--as-of", AS_OF, path)
    assert "renal_disease: ICD-10-CM n18.4 -> ICD-10-CM N18.4" in csv_text
    assert f"renal_disease: true  # Condition/ckd ICD-10-CM n18.4 {READ_UPPER.format('N18.4')}" in fhir_map(path).stdout


def test_a_lower_case_who_code_is_read_upper_cased(tmp_path):
    path = write_json(tmp_path / "b.json", bundle(patient(), condition("dx", coding(WHO, "g70.0"))))
    _, [result] = evaluate_json(path)
    assert result["origins"]["diagnosis"] == [
        "Condition/dx ICD-10 g70.0 (read as G70.0: ICD-10 publishes its codes upper-case, F13)"
    ]


@pytest.mark.parametrize(
    "system, code", [(CM, " G61.82"), (CM, "G61.82 "), (CM, "G61.82\n"), (CM, "\tG61.82"), (SCT, "230591002 ")]
)
def test_a_code_with_whitespace_around_it_says_so(tmp_path, system, code):
    """' G61.82' was 'its one dot comes after the 3rd character', which is not the problem: FHIR's code
    type allows no whitespace before or after a code. Not read, and the reason says what is wrong."""
    path = write_json(tmp_path / "b.json", bundle(patient(), condition("dx", coding(system, code)), weight("w", 70)))
    _, [result] = evaluate_json(path)
    assert result["ivig"]["rule"] == "out-of-scope"
    [entry] = unmapped_of(result, "Condition/dx")
    assert entry["reason"] == (
        f"'{code}' has whitespace before or after it, which FHIR's code type does not allow: it is no code"
    )


def test_fhir_codes_says_how_codes_are_written_and_read():
    text = text_of("fhir", "codes")
    assert (
        "ICD-10-CM codes are written as a letter, two letters or digits, then optionally a dot and 1 to 4 "
        "letters or digits (checked: cdc-icd10cm-fy2026"
    ) in text
    assert "written in lower case, one is read upper-cased and listed as read so (F13)" in text
    data = json.loads(text_of("fhir", "codes", "--format", "json"))
    assert data["forms"]["ICD-10"]["pattern"] == "[A-Z][0-9]{2}(\\.[0-9]{1,2})?"
    assert data["forms"]["ATC"]["upper_case"] is True and "F13" in data["assumptions"]


# -- 5.4 what is listed is what is counted -------------------------------------------------------


def test_the_count_beside_diagnosis_other_is_what_is_listed(tmp_path):
    """A Condition coded only as text is listed under 'Not read (1)', while the origin beside
    diagnosis: other said '(0 codes not read)'. The origin counts what is listed, in every output."""
    path = write_json(
        tmp_path / "b.json",
        bundle(
            patient(),
            {
                "resourceType": "Condition",
                "id": "dx",
                "subject": {"reference": "Patient/p"},
                "code": {"text": "immune thrombocytopenia"},
            },
            ivig_order(),
            weight("w", 70),
        ),
    )
    _, [result] = evaluate_json(path)
    assert len(result["unmapped"]) == 1
    origin = "no Condition of the record gives a diagnosis the mapping reads (1 not read: see unmapped)"
    assert result["origins"]["diagnosis"] == [origin]
    explained = fhir_map(path).stdout
    assert f"diagnosis: other  # {origin}\n" in explained and "# Not read (1):" in explained
    text = text_of("evaluate", "--quiet", "--as-of", AS_OF, path)
    assert f"diagnosis: {origin}" in text and "Not read (1;" in text


def test_a_weight_code_with_whitespace_is_listed_once(tmp_path):
    """An Observation whose only code is '29463-7 ' is listed once, with why, not a second time as
    'no entry of the mapping has this code'."""
    observation = body_weight("w", quantity(70, system=UCUM, code="kg"))
    observation["code"] = {"coding": [coding(LOINC, "29463-7 ")]}
    _, [result] = evaluate_json(
        write_json(tmp_path / "b.json", bundle(patient(), condition("dx", coding(CM, "G61.82")), observation))
    )
    assert "weight_kg" not in result["origins"]
    [entry] = unmapped_of(result, "Observation/w")
    assert entry["reason"].startswith("'29463-7 ' has whitespace before or after it")


def test_fhir_map_of_a_case_file_with_a_list_writes_the_list(run_cli, tmp_path):
    """A YAML case file's list (the reader's own list type) was an internal error (exit 70)."""
    out = run_cli("fhir", "map", str(ROOT / "examples" / "mmn.yaml"))
    assert out.exit_code == 0, out.output
    assert "planned_cotherapy: [corticosteroids]" in out.stdout
