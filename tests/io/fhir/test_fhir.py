"""FHIR R4 input through the real CLI: official examples, golden Bundles, bad data, Bulk exports.

What these tests protect (commit 86539e5, facts/fhir-map.yaml, engine/fhir*.py):

1. The official R4 examples (tests/fhir/r4-examples, CC0, unchanged) never end
   in an internal error, and what each gives is pinned: orphans, reference
   resolution in Bundles, a 185 [lb_av] body weight.
2. One golden Bundle per diagnosis (tests/fhir/bundles, expectations in
   tests/fhir/golden.yaml): stance, rule, dose, warnings, origins, unmapped;
   and `ivig fhir map` round-trips: its YAML evaluates to the same result.
3. Bad data is an error *result* naming file, FHIR path and resource, while
   the rest of the batch goes on.
4. Bulk Data exports (NDJSON) give the same results as one Bundle per patient,
   alone or mixed with YAML and CSV case files.
5. `ivig fhir map [--explain] [--id]` and `ivig fhir codes` output.
6. Mutation checks: a broken copy of the mapping makes the checks above fail.

Known bugs are `xfail(strict=True, reason="BUG: ...")`: when the engine is
fixed they turn into failures, to be unmarked.
"""

import copy
import json

import pytest
import yaml
from helpers import AS_OF, CM, LOINC, ROOT, UCUM, body_weight, coding, evaluate_json, invoke, write_json

FHIR = ROOT / "tests" / "fhir"
R4 = FHIR / "r4-examples"
BUNDLES = FHIR / "bundles"
GOLDEN = yaml.safe_load((FHIR / "golden.yaml").read_text(encoding="utf-8"))

SCT = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"

NUMERIC_CODE_BUG = (
    "BUG: since c61c09d only resources whose code matched are validated, so a coding whose code "
    "is not a string (invalid FHIR) is never checked: it is listed under unmapped as 'no entry of "
    "the mapping has this code', even when the mapping has it (SNOMED written as a JSON number)"
)


# -- helpers -------------------------------------------------------------------------


def by_id(results):
    ids = [r["id"] for r in results]
    assert len(ids) == len(set(ids)), f"duplicate ids: {ids}"
    return {r["id"]: r for r in results}


def outcome(result):
    """What a result advises, for comparing two results of one patient."""
    assert result["status"] == "ok", result["error"]
    return (
        result["ivig"]["stance"],
        result["ivig"]["rule"],
        result["dose"] and result["dose"]["total_g"],
        sorted(w["code"] for w in result["warnings"]),
    )


def labels(result):
    return [c for u in result.get("unmapped") or [] for c in u["codes"]]


def patient(pid, birth="1970-06-01", gender="female", **more):
    return {"resourceType": "Patient", "id": pid, "birthDate": birth, "gender": gender, **more}


def condition(rid, pid, *codings, **more):
    return {
        "resourceType": "Condition",
        "id": rid,
        "subject": {"reference": f"Patient/{pid}"},
        "code": {"coding": list(codings)},
        **more,
    }


def weight(rid, pid, value, unit, system=UCUM, when="2026-11-01"):
    quantity = {"value": value, "unit": unit, **({"system": system, "code": unit} if system else {})}
    return body_weight(rid, quantity, pid, when)


def bundle(*resources, kind="collection"):
    return {"resourceType": "Bundle", "type": kind, "entry": [{"resource": r} for r in resources]}


def read_r4(name):
    return json.loads((R4 / name).read_text(encoding="utf-8"))


def the_error(results, rid):
    """The error of the one result with id `rid`."""
    [result] = [r for r in results if r["id"] == rid]
    assert result["status"] == "error", result
    return result["error"]


# == 1. Official R4 examples ==========================================================

R4_FILES = sorted(p.name for p in R4.glob("*.json"))
LONE_MEDICATION_BUG = (
    "BUG: a file holding only a Medication (a Bundle or lone resource with no Patient and no "
    "resource joined to one) gives no result at all and exit 0: fhirio._joined counts Medication "
    "as a resource ivig reads, so the 'holds no Patient' error is skipped"
)


def test_r4_examples_are_the_selection_and_small():
    """The copied examples are the ones NOTICE.md names, and stay small."""
    notice = (R4 / "NOTICE.md").read_text(encoding="utf-8")
    assert "hl7.fhir.r4.examples" in notice and "4.0.1" in notice and "CC0-1.0" in notice
    assert all(f"| {name} |" in notice for name in R4_FILES)
    assert {
        "Bundle-bundle-references.json",
        "Observation-example.json",
        "Patient-example.json",
        "AllergyIntolerance-example.json",
        "Bundle-bundle-example.json",
        "Bundle-bundle-transaction.json",
        "Bundle-father.json",
        "MedicationStatement-example001.json",
        "Procedure-example.json",
    } <= set(R4_FILES)
    assert sum(p.stat().st_size for p in R4.iterdir()) < 400_000


@pytest.mark.parametrize("name", R4_FILES)
def test_every_r4_example_evaluates_without_internal_error(name):
    """Every official example is read as FHIR: exit 0 or 1 (never 2 or 70), every result ok or an
    error that names its source; nothing raises."""
    out = invoke("evaluate", "--format", "json", "--quiet", "--as-of", AS_OF, R4 / name)
    assert out.exception is None or isinstance(out.exception, SystemExit), repr(out.exception)
    assert out.exit_code in (0, 1), out.output
    results = json.loads(out.stdout)
    assert results
    for result in results:
        assert result["status"] in ("ok", "error")
        if result["status"] == "error":
            assert result["error"]["message"] and result["error"]["source"].endswith(name)


def test_lone_observation_example_is_an_orphan():
    """Observation-example.json alone: its Patient/example is not in the input, so one error result
    naming the resource and the subject.reference path (not a case without a patient)."""
    code, results = evaluate_json(R4 / "Observation-example.json")
    assert code == 1
    [result] = results
    assert result["id"] == "Observation/example"
    assert result["error"]["field"] == "Observation.subject.reference"
    assert result["error"]["message"] == (
        "Observation/example: its subject 'Patient/example' is no Patient in the input"
    )


@pytest.mark.parametrize(
    "name, rid, element",
    [
        ("Condition-example.json", "Condition/example", "subject"),
        ("Procedure-example.json", "Procedure/example", "subject"),
        ("AllergyIntolerance-example.json", "AllergyIntolerance/example", "patient"),
        ("MedicationRequest-medrx0303.json", "MedicationRequest/medrx0303", "subject"),
        ("MedicationStatement-example001.json", "MedicationStatement/example001", "subject"),
    ],
)
def test_lone_r4_resources_name_their_join_element(name, rid, element):
    """A lone resource is joined by its subject, an AllergyIntolerance by `patient`: the orphan error says which."""
    _, [result] = evaluate_json(R4 / name)
    assert result["id"] == rid
    assert result["error"]["field"] == f"{rid.split('/')[0]}.{element}.reference"
    assert f"its {element} 'Patient/" in result["error"]["message"]


def test_lone_medication_is_no_case():
    """A lone Medication belongs to no Patient and is no record: one error result."""
    code, [result] = evaluate_json(R4 / "Medication-med0311.json")
    assert code == 1 and result["status"] == "error" and result["error"]["field"] == "Bundle.entry"


NO_DIAGNOSIS = "no Condition of the record gives a diagnosis the mapping reads ({})"


def test_lone_patient_example_is_out_of_scope():
    """Patient-example.json alone is a Patient with no Condition: diagnosis other (F12), out of scope,
    its origin saying why."""
    _, [result] = evaluate_json(R4 / "Patient-example.json")
    assert result["id"] == "example" and result["status"] == "ok"
    assert result["ivig"]["stance"] == "out-of-scope"
    assert result["origins"]["diagnosis"] == [NO_DIAGNOSIS.format("nothing left unread")]


@pytest.fixture
def chalmers(tmp_path):
    """The official Patient/example with the official resources about him (unchanged), plus an MMN
    Condition so that he is a case."""
    resources = [
        read_r4(n)
        for n in (
            "Patient-example.json",
            "Observation-example.json",
            "Condition-example.json",
            "Condition-stroke.json",
            "Procedure-example.json",
            "AllergyIntolerance-example.json",
        )
    ]
    resources.append(condition("mmn", "example", coding(CM, "G61.82")))
    return write_json(tmp_path / "chalmers.json", bundle(*resources))


def test_r4_body_weight_in_pounds_converts_to_kg(chalmers):
    """185 [lb_av] x 0.45359237 = 83.915 kg (rounded to grams), read from the first matching coding;
    the dose is 2 g/kg of it."""
    _, [result] = evaluate_json(chalmers)
    assert result["id"] == "example"
    assert result["origins"]["weight_kg"] == ["Observation/example LOINC 29463-7 = 185 [lb_av]"]
    assert result["dose"]["total_g"] == pytest.approx(2 * 83.915, abs=0.05)
    out = invoke("fhir", "map", "--as-of", AS_OF, chalmers)
    assert "weight_kg: 83.915\n" in out.stdout


def test_r4_patient_example_fields_and_unread_resources(chalmers):
    """birthDate 1974-12-25 gives 51 at 2026-11-25, gender male; the official Conditions, Procedure and
    AllergyIntolerance are listed as not read, each with its path."""
    _, [result] = evaluate_json(chalmers)
    assert result["origins"]["age"] == ["Patient/example birthDate 1974-12-25 (age at 2026-11-25)"]
    assert result["origins"]["sex"] == ["Patient/example gender male"]
    unread = {u["resource"]: (u["path"], u["codes"]) for u in result["unmapped"]}
    assert unread == {
        "Condition/example": ("Bundle.entry[2].resource.code", ["SNOMED CT 39065001 Burn of ear"]),
        "Condition/stroke": ("Bundle.entry[3].resource.code", ["SNOMED CT 422504002 Ischemic stroke (disorder)"]),
        "Procedure/example": ("Bundle.entry[4].resource.code", ["SNOMED CT 80146002 Appendectomy (Procedure)"]),
        "AllergyIntolerance/example": ("Bundle.entry[5].resource.code", ["SNOMED CT 227493005 Cashew nuts"]),
    }


def test_r4_contained_medication_is_read(tmp_path):
    """MedicationRequest-medrx0303 (unchanged) names its drug by "#med0311", a contained Medication: its
    code is read (and listed as not mapped: a prednisone tablet product, not the substance)."""
    path = write_json(
        tmp_path / "pat1.json",
        bundle(
            patient("pat1"), condition("c", "pat1", coding(CM, "G61.82")), read_r4("MedicationRequest-medrx0303.json")
        ),
    )
    _, [result] = evaluate_json(path)
    assert result["status"] == "ok"
    assert result["unmapped"] == [
        {
            "resource": "MedicationRequest/medrx0303",
            "path": "Bundle.entry[2].resource.medicationReference",
            "codes": ["SNOMED CT 373994007 Prednisone 5mg tablet (Product)"],
            "reason": "no entry of the mapping has this code",
        }
    ]


URN = "urn:uuid:04121321-4af5-424c-a0e1-ed3aab1c349d"  # the fullUrl of Bundle-bundle-references' id-less Patient


def _ok_results(results):
    return by_id([r for r in results if r["status"] == "ok"])


def test_bundle_references_resolve_relative_absolute_and_urn():
    """Bundle-bundle-references.json: Patient/23 gets Observation/123 (relative) and /124 (absolute);
    the Patient without id gets Observation/12 and its id is its entry's fullUrl (urn:uuid:...)."""
    code, results = evaluate_json(R4 / "Bundle-bundle-references.json")
    assert code == 1
    got = _ok_results(results)
    assert set(got) == {"23", URN}
    assert [u["resource"] for u in got["23"]["unmapped"]][:2] == ["Observation/123", "Observation/124"]
    assert [u["resource"] for u in got[URN]["unmapped"]] == ["Observation/12"]
    assert got[URN]["line"] == 25  # the id-less Patient
    # no Condition: diagnosis other (F12), its origin counting what unmapped lists (the Observations)
    assert got["23"]["origins"]["diagnosis"] == [NO_DIAGNOSIS.format("2 not read: see unmapped")]
    assert got[URN]["origins"]["diagnosis"] == [NO_DIAGNOSIS.format("1 not read: see unmapped")]


def test_bundle_references_versioned_reference_drops_the_version(tmp_path):
    """Bundle-bundle-references.json without the second version of Patient/45 (entry 8): Patient/45 gets
    Observation/47, whose subject is Patient/45/_history/2."""
    document = read_r4("Bundle-bundle-references.json")
    del document["entry"][8]
    _, results = evaluate_json(write_json(tmp_path / "one-version.json", document))
    assert [u["resource"] for u in _ok_results(results)["45"]["unmapped"]] == ["Observation/47"]


def test_bundle_references_orphans_name_resource_and_path():
    """The other-server reference and the identifier-only reference are orphan errors naming the
    resource and its path; the second version of Patient/45 is refused, naming the first."""
    _, results = evaluate_json(R4 / "Bundle-bundle-references.json")
    other = [r["error"] for r in results if r["id"] == "http://example.org/fhir/Observation/14"]
    assert {
        "field": "Bundle.entry[5].resource.subject.reference",
        "source": str(R4 / "Bundle-bundle-references.json"),
        "line": 124,
        "message": "Observation/14: its subject 'http://example.org/fhir-2/Patient/1' is no Patient in the input",
    } in other
    identifier_only = the_error(results, "http://example.org/fhir/Observation/48")  # an orphan: its fullUrl
    assert identifier_only["field"] == "Bundle.entry[10].resource.subject"
    assert identifier_only["message"] == "Observation/48: it has no subject reference, so it belongs to no Patient"
    versions = [r["error"] for r in results if r["id"] == "45"]  # two versions of Patient/45: neither is read
    assert [e["field"] for e in versions] == ["Bundle.entry[7].resource", "Bundle.entry[8].resource"]
    assert all(
        e["message"] == "Patient/45: 2 Patients have the id 45 (Bundle.entry[7].resource "
        "(http://example.org/fhir/Patient/45), Bundle.entry[8].resource "
        "(http://example.org/fhir/Patient/45)): one record is one patient, so none of them "
        "is read"
        for e in versions
    )


def test_bundle_references_relative_reference_is_read_against_its_own_server():
    """The Observation/14 of http://example.org/fhir-2 says Patient/23, i.e. http://example.org/fhir-2/Patient/23,
    which is not in the Bundle: an orphan, not a resource of http://example.org/fhir/Patient/23."""
    _, results = evaluate_json(R4 / "Bundle-bundle-references.json")
    assert "Observation/14" not in [u["resource"] for u in _ok_results(results)["23"]["unmapped"]]
    fields = [r["error"]["field"] for r in results if r["id"] == "http://example.org/fhir-2/Observation/14"]
    assert "Bundle.entry[6].resource.subject.reference" in fields


def test_searchset_bundle_example():
    """Bundle-bundle-example.json (searchset): its MedicationRequest's Patient/347 is not in the page."""
    code, [result] = evaluate_json(R4 / "Bundle-bundle-example.json")
    assert code == 1 and result["id"] == "https://example.com/base/MedicationRequest/3123"  # an orphan: its fullUrl
    assert result["error"]["field"] == "Bundle.entry[0].resource.subject.reference"


def test_transaction_bundle_example_gives_a_case_per_patient():
    """Bundle-bundle-transaction.json: five Patients (two by urn:uuid and one by conditional PUT without
    id, two with ids); the entries without a resource (DELETE, GET) and the Parameters are skipped.
    None has a Condition: each is out of scope (F12)."""
    code, results = evaluate_json(R4 / "Bundle-bundle-transaction.json")
    assert code == 0
    # a Patient without id is named by its entry's fullUrl
    assert [r["id"] for r in results] == [
        "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a",
        "urn:uuid:88f151c0-a954-468a-88bd-5ae15c08e059",
        "123",
        "urn:uuid:74891afc-ed52-42a2-bcd7-f13d9b60f096",
        "123a",
    ]
    assert all(r["ivig"]["stance"] == "out-of-scope" for r in results)


def test_document_bundle_father():
    """Bundle-father.json (document): Patient/d1, 71 at 2026-11-25, with four resources not read
    (two text-only, two with unmapped codes); the Composition and Encounter are ignored. No Condition:
    out of scope (F12)."""
    _, [result] = evaluate_json(R4 / "Bundle-father.json")
    assert result["id"] == "d1" and result["ivig"]["stance"] == "out-of-scope"
    assert [(u["path"], u["reason"].split(":")[0]) for u in result["unmapped"]] == [
        ("Bundle.entry[4].resource.code", "no entry of the mapping has this code"),
        ("Bundle.entry[5].resource.medicationCodeableConcept", "no entry of the mapping has this code"),
        ("Bundle.entry[6].resource.medicationCodeableConcept", "no coding"),
        ("Bundle.entry[7].resource.code", "no coding"),
    ]
    assert result["origins"]["age"] == ["Patient/d1 birthDate 1955-01-06 (age at 2026-11-25)"]
    assert result["origins"]["sex"] == ["Patient/d1 gender female"]
    out = invoke("fhir", "map", "--explain", "--as-of", AS_OF, R4 / "Bundle-father.json")
    assert out.exit_code == 0 and "# ERROR: " not in out.stdout
    assert f"diagnosis: other  # {NO_DIAGNOSIS.format('4 not read: see unmapped')}\n" in out.stdout


# == 2. Golden Bundles, one per diagnosis =============================================


def _golden_param(case):
    marks = [pytest.mark.xfail(strict=True, reason=case["xfail"])] if case.get("xfail") else []
    return pytest.param(case, id=case["file"].removesuffix(".json"), marks=marks)


GOLDEN_PARAMS = [_golden_param(c) for c in GOLDEN]


@pytest.fixture(scope="module")
def golden_results():
    """Every golden Bundle in one run, by the real CLI."""
    _, results = evaluate_json(*sorted(BUNDLES.glob("*.json")))
    return by_id(results)


def test_every_diagnosis_has_a_golden_bundle(rulebase):
    """One Bundle per diagnosis of the case schema ('other' aside), and one golden entry per Bundle."""
    diagnoses = set(rulebase.schema.fields["diagnosis"].values) - {"other"}
    assert {p.stem for p in BUNDLES.glob("*.json")} == diagnoses
    assert sorted(c["file"] for c in GOLDEN) == sorted(p.name for p in BUNDLES.glob("*.json"))


def test_golden_bundles_are_realistic():
    """Each Bundle is a collection or transaction, mixes ICD-10 and SNOMED codes, has a weight and a Patient."""
    systems = set()
    for path in BUNDLES.glob("*.json"):
        document = json.loads(path.read_text(encoding="utf-8"))
        assert document["type"] in ("collection", "transaction"), path.name
        types = [e["resource"]["resourceType"] for e in document["entry"]]
        assert types.count("Patient") == 1 and "Observation" in types, path.name
        systems |= {c["system"] for e in document["entry"] for c in e["resource"].get("code", {}).get("coding", [])}
    assert {CM, SCT, LOINC} <= systems


@pytest.mark.parametrize("case", GOLDEN_PARAMS)
def test_golden_bundle(case, golden_results):
    """The Bundle's result: stance, rule, dose, warnings, the origins named, and the codes not read."""
    result = golden_results[case["id"]]
    if "error" in case:
        assert result["status"] == "error"
        assert result["error"]["field"] == case["error"]["field"]
        assert case["error"]["message"] in result["error"]["message"]
    else:
        assert result["status"] == "ok", result["error"]
        assert result["ivig"]["stance"] == case["stance"]
        assert result["ivig"]["rule"] == case["rule"]
        assert (result["dose"] and result["dose"]["total_g"]) == case["total_g"]
        assert sorted(w["code"] for w in result["warnings"]) == sorted(case["warnings"])
        for name, origins in case.get("origins", {}).items():
            assert result["origins"][name] == origins, name
    assert labels(result) == case["unmapped"]


def _evaluated_case_file(text, tmp_path):
    path = tmp_path / "mapped.yaml"
    path.write_text(text, encoding="utf-8")
    _, [result] = evaluate_json(path, as_of=None)
    return result


@pytest.mark.parametrize("case", [p for p in GOLDEN_PARAMS if "error" not in p.values[0]])
def test_golden_bundle_round_trips_through_fhir_map(case, golden_results, tmp_path):
    """`ivig fhir map` prints a case file that `ivig evaluate` reads back as YAML to the same advice."""
    out = invoke("fhir", "map", "--as-of", AS_OF, BUNDLES / case["file"])
    assert out.exit_code == 0, out.output
    assert f"id: {case['id']}\n" in out.stdout
    if "weight_kg" in case:
        assert f"weight_kg: {case['weight_kg']}\n" in out.stdout
    assert outcome(_evaluated_case_file(out.stdout, tmp_path)) == outcome(golden_results[case["id"]])


def test_paraproteinemic_pair_maps_to_other(tmp_path):
    """G63 + D47.2: `fhir map --explain` says diagnosis: other and why (F12), and lists both codes."""
    out = invoke("fhir", "map", "--explain", "--as-of", AS_OF, BUNDLES / "paraproteinemic_neuropathy.json")
    assert out.exit_code == 0 and "# ERROR: " not in out.stdout
    assert f"diagnosis: other  # {NO_DIAGNOSIS.format('2 not read: see unmapped')}\n" in out.stdout
    assert "#   Condition/pdn-neuro ICD-10-CM G63 " in out.stdout
    assert "#   Condition/pdn-mgus ICD-10-CM D47.2 " in out.stdout


# == 3. Bad data ======================================================================


@pytest.fixture
def bad(tmp_path):
    """A directory for bad-data files, and a good Bundle to evaluate beside them."""
    write_json(tmp_path / "good.json", bundle(patient("good"), condition("g", "good", coding(CM, "G61.82"))))
    return tmp_path


def _with_good(bad, *paths):
    """Evaluate the bad files and then good.json: the good patient is still evaluated."""
    code, results = evaluate_json(*paths, bad / "good.json")
    assert code == 1
    assert by_id(results)["good"]["status"] == "ok"
    return results


def test_two_diagnoses_are_a_conflict(bad):
    """G61.81 (CIDP) and G70.00 (MG) in one patient: an error naming both codes and the second Condition."""
    path = write_json(
        bad / "conflict.json",
        bundle(patient("a"), condition("c1", "a", coding(CM, "G61.81")), condition("c2", "a", coding(CM, "G70.00"))),
    )
    error = the_error(_with_good(bad, path), "a")
    assert error["source"] == str(path) and error["field"] == "Bundle.entry[2].resource.code"
    assert error["message"] == (
        "Condition/c2: the record gives two values of diagnosis: cidp (Condition/c1 "
        "ICD-10-CM G61.81) and myasthenia_gravis (Condition/c2 ICD-10-CM G70.00): "
        "evaluate them as separate cases"
    )


def test_miller_fisher_refines_gbs(bad):
    """SNOMED 1767005 (Fisher syndrome) with G61.0 is no conflict: Miller Fisher refines GBS (F03)."""
    path = write_json(
        bad / "mfs.json",
        bundle(patient("m"), condition("c1", "m", coding(SCT, "1767005")), condition("c2", "m", coding(CM, "G61.0"))),
    )
    _, [result] = evaluate_json(path)
    assert result["status"] == "ok", result["error"]
    assert result["ivig"]["rule"] == "miller-fisher-not-established"
    assert result["origins"]["diagnosis"] == ["Condition/c1 SNOMED CT 1767005", "Condition/c2 ICD-10-CM G61.0"]


@pytest.mark.parametrize(
    "value, unit, system, said",
    [
        (12, "[stone_av]", UCUM, "in the unit '[stone_av]': ivig reads kg (UCUM), g (UCUM), [lb_av] (UCUM)"),
        (150, "lbs", None, "in the unit 'lbs' with no system: ivig reads"),
    ],
)
def test_weight_in_an_unknown_unit(bad, value, unit, system, said):
    """A weight ivig cannot convert is an error at valueQuantity.code, never a guess."""
    path = write_json(
        bad / "unit.json",
        bundle(patient("u"), condition("c", "u", coding(CM, "G61.82")), weight("w", "u", value, unit, system)),
    )
    error = the_error(_with_good(bad, path), "u")
    assert error["field"] == "Bundle.entry[2].resource.valueQuantity.code" and error["source"] == str(path)
    assert error["message"].startswith("Observation/w: a body-weight ") and said in error["message"]


def test_resource_of_no_patient_in_the_input(bad):
    """A Condition whose subject is not in the input is its own error; its Bundle's Patient is still a case."""
    path = write_json(
        bad / "orphan.json",
        bundle(
            patient("p"), condition("c1", "p", coding(CM, "G61.82")), condition("c2", "nobody", coding(CM, "G61.81"))
        ),
    )
    results = _with_good(bad, path)
    assert by_id(results)["p"]["status"] == "ok"
    error = the_error(results, "Condition/c2")
    assert error == {
        "message": "Condition/c2: its subject 'Patient/nobody' is no Patient in the input",
        "field": "Bundle.entry[2].resource.subject.reference",
        "source": str(path),
        "line": error["line"],
    }


def test_malformed_json_file(bad):
    """A .json file that is not JSON is one error result; the next file is read all the same."""
    path = bad / "broken.json"
    path.write_text('{"resourceType": "Bundle", "type": "collection", "entry": [\n {"resource": {\n', encoding="utf-8")
    results = _with_good(bad, path)
    error = the_error(results, "broken.json")
    assert error["source"] == str(path) and "the input ends inside the value" in error["message"]


def test_unknown_clinical_status(bad):
    """clinicalStatus 'bogus' (a required binding) is an error at that element, naming the Condition."""
    status = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "bogus"}]}
    path = write_json(
        bad / "bogus.json",
        bundle(
            patient("p"),
            condition("c1", "p", coding(CM, "G61.82")),
            condition("c2", "p", coding(CM, "N18.3"), clinicalStatus=status),
        ),
    )
    error = the_error(_with_good(bad, path), "p")
    assert error["field"] == "Bundle.entry[2].resource.clinicalStatus"
    assert error["message"].startswith("Condition/c2: clinicalStatus 'bogus' is not one of active, ")


def test_refuted_condition_is_listed_not_counted(bad):
    """A refuted diagnosis does not count (F02): no conflict, and it is listed under unmapped with why."""
    refuted = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "refuted"}]}
    path = write_json(
        bad / "refuted.json",
        bundle(
            patient("p"),
            condition("c1", "p", coding(CM, "G61.82")),
            condition("c2", "p", coding(CM, "G70.00"), verificationStatus=refuted),
        ),
    )
    _, [result] = evaluate_json(path)
    assert result["status"] == "ok" and result["ivig"]["rule"] == "mmn-general"
    assert result["unmapped"] == [
        {
            "resource": "Condition/c2",
            "path": "Bundle.entry[2].resource.code",
            "codes": ["ICD-10-CM G70.00"],
            "reason": "verificationStatus refuted: not counted",
        }
    ]


def test_structurally_invalid_condition(bad):
    """code.coding[0].code = 5 (not a string): an error naming the exact FHIR path."""
    broken = condition("c2", "p", coding(CM, "G61.81"))
    broken["code"]["coding"][0]["code"] = 5
    path = write_json(bad / "invalid.json", bundle(patient("p"), condition("c1", "p", coding(CM, "G61.82")), broken))
    error = the_error(_with_good(bad, path), "p")
    assert error["field"] == "Bundle.entry[2].resource.code.coding[0].code"
    assert error["message"].startswith("Condition/c2: not a valid Condition: ")


def test_snomed_code_written_as_a_number_is_not_silently_dropped(tmp_path):
    """Chronic kidney disease as SNOMED 709044004 written as a JSON number: an error at
    code.coding[0].code, not an ok result without the kidney warning that says the mapping lacks the code."""
    ckd = condition("ckd", "p", coding(SCT, "709044004"))
    ckd["code"]["coding"][0]["code"] = 709044004
    order = {
        "resourceType": "MedicationRequest",
        "id": "rx",
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": {"coding": [coding(RXNORM, "1809417")]},
        "subject": {"reference": "Patient/p"},
    }
    path = write_json(
        tmp_path / "ckd.json", bundle(patient("p"), condition("c", "p", coding(CM, "G61.82")), ckd, order)
    )
    _, [result] = evaluate_json(path)
    assert result["status"] == "error", [u["reason"] for u in result["unmapped"]]
    assert result["error"]["field"] == "Bundle.entry[2].resource.code.coding[0].code"


def test_invalid_element_of_a_read_resource(bad):
    """A resource the mapping reads is checked for structure: clinicalStatus written as a bare code
    (it is a CodeableConcept) is an error at its path; recordedDate "yesterday", an element the
    mapping does not read, is listed under unmapped and decides nothing."""
    dm = condition("dm", "p", coding(CM, "E11.9"), clinicalStatus="active")
    path = write_json(bad / "status.json", bundle(patient("p"), condition("c1", "p", coding(CM, "G61.82")), dm))
    error = the_error(_with_good(bad, path), "p")
    assert error["field"] == "Bundle.entry[2].resource.clinicalStatus"
    assert error["message"].startswith("Condition/dm: not a valid Condition: ")
    dm = condition("dm", "q", coding(CM, "E11.9"), recordedDate="yesterday")
    path = write_json(bad / "recorded.json", bundle(patient("q"), condition("c1", "q", coding(CM, "G61.82")), dm))
    _, results = evaluate_json(path)
    [result] = results
    assert result["status"] == "ok" and result["origins"]["diabetes"] == ["Condition/dm ICD-10-CM E11.9"]
    [note] = [u for u in result["unmapped"] if u["path"] == "Bundle.entry[2].resource.recordedDate"]
    assert note["resource"] == "Condition/dm" and note["reason"].endswith("not read, so it decides nothing")


def test_partial_birth_dates(bad):
    """At 2026-11-25, birthDate "1950" could be 75 or 76: age unknown, listed; "1950-01" is 76 (F09)."""
    path = write_json(
        bad / "years.json",
        bundle(
            patient("y", "1950"),
            condition("c1", "y", coding(CM, "G61.82")),
            patient("m", "1950-01"),
            condition("c2", "m", coding(CM, "G61.82")),
        ),
    )
    _, results = evaluate_json(path)
    got = by_id(results)
    assert "age" not in got["y"]["origins"]
    assert got["y"]["unmapped"] == [
        {
            "resource": "Patient/y",
            "path": "Bundle.entry[0].resource.birthDate",
            "codes": [],
            "reason": "birthDate 1950 gives an age of 75 or 76 at 2026-11-25: the age stays unknown",
        }
    ]
    assert got["m"]["origins"]["age"] == ["Patient/m birthDate 1950-01 (age at 2026-11-25)"]
    assert "elderly" in [t["rule"] for t in got["m"]["trace"]]


def test_history_bundle_is_refused(bad):
    """A history Bundle holds versions, not a record: an error at Bundle.type."""
    path = write_json(bad / "history.json", bundle(patient("h"), kind="history"))
    error = the_error(_with_good(bad, path), "history.json:1")
    assert error["field"] == "Bundle.type" and "a Bundle of type 'history'" in error["message"]


@pytest.mark.parametrize(
    "document",
    [{"resourceType": "Bundle", "type": "collection"}, {"resourceType": "Bundle", "type": "collection", "entry": []}],
)
def test_empty_bundle(bad, document):
    """A Bundle with no entry is one error result, not nothing."""
    path = write_json(bad / "empty.json", document)
    error = the_error(_with_good(bad, path), "empty.json:1")
    assert error["field"] == "Bundle.entry" and error["message"].startswith("the Bundle holds no Patient")


def test_bundle_with_two_patients(bad):
    """Two Patients in one Bundle: two cases, with the Patients' ids, each with its own resources."""
    path = write_json(
        bad / "two.json",
        bundle(
            patient("one"),
            condition("c1", "one", coding(CM, "G61.82")),
            patient("two"),
            condition("c2", "two", coding(CM, "G70.00")),
        ),
    )
    code, results = evaluate_json(path)
    assert code == 0 and [r["id"] for r in results] == ["one", "two"]
    assert [r["ivig"]["rule"] for r in results] == ["mmn-general", "mg-general"]


# == 4. Bulk Data exports =============================================================

BULK_PATIENTS = {
    "b1": [
        condition("c1", "b1", coding(CM, "G61.81")),
        weight("o1", "b1", 70, "kg"),
        {
            "resourceType": "MedicationRequest",
            "id": "m1",
            "status": "active",
            "intent": "order",
            "subject": {"reference": "Patient/b1"},
            "medicationReference": {"reference": "Medication/ivig"},
        },
    ],
    "b2": [condition("c2", "b2", coding(SCT, "91637004")), weight("o2", "b2", 132, "[lb_av]")],
    "b3": [condition("c3", "b3", coding(CM, "G61.82")), condition("c4", "b3", coding(CM, "N18.4"))],
}
IVIG_MEDICATION = {"resourceType": "Medication", "id": "ivig", "code": {"coding": [coding(RXNORM, "1809417")]}}
BIRTHS = {"b1": "1960-05-05", "b2": "1990-01-01", "b3": "1980-01-01"}


def _ndjson(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def export(tmp_path):
    """A Bulk Data export: one NDJSON file per resource type, medicationReference to Medication/ivig."""
    folder = tmp_path / "export"
    folder.mkdir()
    rows = [r for resources in BULK_PATIENTS.values() for r in resources]
    _ndjson(folder / "Patient.ndjson", [patient(pid, birth) for pid, birth in BIRTHS.items()])
    for rtype in ("Condition", "Observation", "MedicationRequest"):
        _ndjson(folder / f"{rtype}.ndjson", [r for r in rows if r["resourceType"] == rtype])
    _ndjson(folder / "Medication.ndjson", [IVIG_MEDICATION])
    return folder


@pytest.fixture
def one_bundle_each(tmp_path):
    """The same patients as one Bundle each (with the Medication in each Bundle)."""
    folder = tmp_path / "bundles"
    folder.mkdir()
    for pid, resources in BULK_PATIENTS.items():
        write_json(folder / f"{pid}.json", bundle(patient(pid, BIRTHS[pid]), *resources, IVIG_MEDICATION))
    return folder


def _comparable(result):
    return {k: result[k] for k in ("status", "ivig", "dose", "warnings", "missing", "origins", "unmapped")}


def test_bulk_export_as_directory_equals_one_bundle_each(export, one_bundle_each):
    """A directory of NDJSON is one export joined per Patient; each case equals its Bundle's, but for where
    it was read (source, line, the FHIR paths)."""
    code, results = evaluate_json(export)
    assert code == 0 and [r["id"] for r in results] == ["b1", "b2", "b3"]
    _, expected = evaluate_json(one_bundle_each)
    bulk, bundles = by_id(results), by_id(expected)
    for pid in BULK_PATIENTS:
        got, want = _comparable(bulk[pid]), _comparable(bundles[pid])
        for u in got["unmapped"] + want["unmapped"]:
            u.pop("path")
        assert got == want, pid
    assert bulk["b1"]["origins"]["ivig_planned"] == ["MedicationRequest/m1 RxNorm 1809417"]
    assert bulk["b2"]["origins"]["weight_kg"] == ["Observation/o2 LOINC 29463-7 = 132 [lb_av]"]
    assert bulk["b1"]["source"] == str(export / "Patient.ndjson")


def test_bulk_export_as_list_of_files_equals_directory(export):
    """Naming the export's files gives what naming its directory gives."""
    _, as_directory = evaluate_json(export)
    _, as_files = evaluate_json(*sorted(export.glob("*.ndjson")))
    assert as_files == as_directory


def test_bulk_export_mixed_with_yaml_and_csv(export, tmp_path):
    """One run reads a YAML case file, a CSV file and a FHIR export: every format keeps working."""
    (tmp_path / "case.yaml").write_text(
        "id: from-yaml\ndiagnosis: gbs\nwalks_unaided: false\nweight_kg: 70\n", encoding="utf-8"
    )
    (tmp_path / "cases.csv").write_text("id,diagnosis,weight_kg\nfrom-csv,mmn,60\n", encoding="utf-8")
    code, results = evaluate_json(tmp_path / "case.yaml", export, tmp_path / "cases.csv")
    assert code == 0
    assert [r["id"] for r in results] == ["from-yaml", "b1", "b2", "b3", "from-csv"]
    got = by_id(results)
    assert got["from-yaml"]["dose"]["total_g"] == 140.0 and got["from-csv"]["dose"]["total_g"] == 120.0
    assert "origins" not in got["from-yaml"] and got["b3"]["origins"]["renal_disease"] == [
        "Condition/c4 ICD-10-CM N18.4"
    ]


def test_bulk_malformed_line_costs_one_line(export):
    """A broken line of Condition.ndjson is one error result; the other lines' patients are evaluated."""
    path = export / "Condition.ndjson"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text(lines[0] + '{"resourceType": "Condition", "id": "cut", \n' + "".join(lines[1:]), encoding="utf-8")
    code, results = evaluate_json(export)
    assert code == 1
    [error] = [r["error"] for r in results if r["status"] == "error"]
    assert error["source"] == str(path) and error["message"].startswith("not valid JSON")
    assert [r["id"] for r in results if r["status"] == "ok"] == ["b1", "b2", "b3"]


def test_bulk_malformed_line_names_its_line(export):
    """The broken line is line 2 of Condition.ndjson."""
    path = export / "Condition.ndjson"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text(lines[0] + '{"resourceType": "Condition", "id": "cut", \n' + "".join(lines[1:]), encoding="utf-8")
    _, results = evaluate_json(export)
    [error] = [r["error"] for r in results if r["status"] == "error"]
    assert error["line"] == 2


def test_bulk_orphan_and_missing_medication(export):
    """An export's resource of a Patient not exported is an orphan after the cases; a medicationReference
    to a Medication not exported is an error for that patient."""
    _ndjson(export / "Medication.ndjson", [dict(IVIG_MEDICATION, id="other")])
    with (export / "Condition.ndjson").open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(condition("lost", "b9", coding(CM, "G61.82"))) + "\n")
    code, results = evaluate_json(export)
    assert code == 1 and [r["id"] for r in results] == ["b1", "b2", "b3", "Condition/lost"]
    assert the_error(results, "b1")["field"] == "MedicationRequest.medicationReference.reference"
    assert the_error(results, "Condition/lost")["message"] == (
        "Condition/lost: its subject 'Patient/b9' is no Patient in the input"
    )


def test_bulk_patient_with_a_name(export):
    """A Patient with a human name is a Patient like any other."""
    rows = [patient(pid, birth, name=[{"family": "Doe", "given": ["Jo"]}]) for pid, birth in BIRTHS.items()]
    _ndjson(export / "Patient.ndjson", rows)
    code, results = evaluate_json(export)
    assert code == 0 and [r["id"] for r in results] == ["b1", "b2", "b3"]


# == 5. `ivig fhir map` and `ivig fhir codes` =========================================

MMN_EXPLAINED = """\
---
# mmn-1: {path}:8, ages at 2026-11-25
id: mmn-1
age: 47  # Patient/mmn-1 birthDate 1979-09-30 (age at 2026-11-25)
weight_kg: 64.2  # Observation/mmn-wt LOINC 29463-7 = 64200 g
sex: female  # Patient/mmn-1 gender female
diagnosis: mmn  # Condition/mmn-dx SNOMED CT 230591002
renal_disease: true  # Condition/mmn-ckd ICD-10-CM N18.30
volume_depletion: true  # Condition/mmn-dehyd ICD-10-CM E86.0
ivig_planned: true  # MedicationRequest/mmn-ivig RxNorm 1809417; MedicationRequest/mmn-ivig ATC J06BA02
# Not read (1):
#   Condition/mmn-cramp ICD-10-CM R25.2 Cramp and spasm: no entry of the mapping has this code [Bundle.entry[4].resource.code]
"""


def test_fhir_map_explain_is_pinned():
    """What the MMN Bundle becomes, with each field's resource and code, and what was not read."""
    path = BUNDLES / "mmn.json"
    out = invoke("fhir", "map", "--explain", "--as-of", AS_OF, path)
    assert out.exit_code == 0
    assert out.stdout == MMN_EXPLAINED.format(path=path)


def test_fhir_map_without_explain_is_the_case_file():
    """Without --explain: the same fields, no comments but the header."""
    path = BUNDLES / "mmn.json"
    out = invoke("fhir", "map", "--as-of", AS_OF, path)
    expected = [
        line.split("  #")[0]
        for line in MMN_EXPLAINED.format(path=path).splitlines()
        if not line.startswith("#   ") and not line.startswith("# Not read")
    ]
    expected[1] = f"# mmn-1: {path}:8"
    assert out.stdout.splitlines() == expected


def test_fhir_map_id_filter(tmp_path):
    """--id keeps one Patient's case; an id no case has is a usage error (exit 2)."""
    path = write_json(
        tmp_path / "two.json",
        bundle(
            patient("one"),
            condition("c1", "one", coding(CM, "G61.82")),
            patient("two"),
            condition("c2", "two", coding(CM, "G70.00")),
        ),
    )
    out = invoke("fhir", "map", "--id", "two", "--as-of", AS_OF, path)
    assert out.exit_code == 0
    assert out.stdout.count("---") == 1 and "id: two\n" in out.stdout and "diagnosis: myasthenia_gravis\n" in out.stdout
    missing = invoke("fhir", "map", "--id", "three", path)
    assert missing.exit_code == 2 and "no case with the id 'three'" in missing.output


def test_fhir_codes_lists_every_entry_and_code():
    """`ivig fhir codes` (text and json) lists every entry, quantity and code of the mapping file."""
    mapping = yaml.safe_load((ROOT / "facts" / "fhir-map.yaml").read_text(encoding="utf-8"))
    text = invoke("fhir", "codes")
    data = json.loads(invoke("fhir", "codes", "--format", "json").stdout)
    assert [e["name"] for e in data["entries"]] == [e["name"] for e in mapping["entries"]]
    assert [[c["code"] for c in e["codes"]] for e in data["entries"]] == [
        [str(c["code"]) for c in e["codes"]] for e in mapping["entries"]
    ]
    assert [q["name"] for q in data["quantities"]] == [q["name"] for q in mapping["quantities"]]
    assert set(data["assumptions"]) == set(mapping["assumptions"])
    for entry in mapping["entries"]:
        assert f"\n{entry['name']}  [" in text.stdout, entry["name"]
        for c in entry["codes"]:
            assert f" {c['code']}" in text.stdout
    for key in mapping["assumptions"]:
        assert f"  {key}: " in text.stdout


def test_fhir_codes_text_shows_values_as_the_schema_writes_them():
    """The text says `sets planned_cotherapy = corticosteroids`, not a Python tuple."""
    out = invoke("fhir", "codes")
    assert "('" not in out.stdout


def test_contained_corticosteroid_sets_planned_cotherapy(tmp_path):
    """MMN with a prednisone order (contained Medication, SNOMED 116602009) gives planned_cotherapy
    [corticosteroids] and the MMN steroid rule (the list value once reached the case as a tuple, af0d2b2)."""
    order = {
        "resourceType": "MedicationRequest",
        "id": "rx",
        "status": "active",
        "intent": "order",
        "contained": [{"resourceType": "Medication", "id": "med0311", "code": {"coding": [coding(SCT, "116602009")]}}],
        "medicationReference": {"reference": "#med0311"},
        "subject": {"reference": "Patient/p"},
    }
    path = write_json(tmp_path / "steroid.json", bundle(patient("p"), condition("c", "p", coding(CM, "G61.82")), order))
    _, [result] = evaluate_json(path)
    assert result["status"] == "ok", result["error"]
    assert result["origins"]["planned_cotherapy"] == ["MedicationRequest/rx SNOMED CT 116602009"]
    rules = [t["rule"] for t in result["trace"]]
    assert "mmn-corticosteroids-planned" in rules and "mmn-avoid-corticosteroids" not in rules


# == 6. Mutation checks: the tests above can fail =====================================


@pytest.fixture
def mutated_map(tmp_path, monkeypatch):
    """Load an edited copy of facts/fhir-map.yaml (never the real file) as the mapping every reader uses."""
    from ivig_advisor.engine.io.fhir import bundles as fhirio
    from ivig_advisor.engine.io.fhir import mapping as fhirmap

    def use(old, new):
        text = (ROOT / "facts" / "fhir-map.yaml").read_text(encoding="utf-8")
        assert old in text
        copy_path = tmp_path / "fhir-map.yaml"
        copy_path.write_text(text.replace(old, new, 1), encoding="utf-8")
        loaded = fhirmap.FhirMap.load(copy_path)
        monkeypatch.setattr(fhirio, "default_map", lambda: loaded)
        monkeypatch.setattr(fhirmap, "default_map", lambda: loaded)
        return loaded

    return use


def test_mutation_wrong_pound_factor_breaks_the_weight_check(mutated_map, chalmers):
    """With [lb_av] worth 0.5 kg in a copy of the mapping, the 83.915 kg check fails."""
    mutated_map('code: "[lb_av]", factor: 0.45359237', 'code: "[lb_av]", factor: 0.5')
    with pytest.raises(AssertionError):
        test_r4_body_weight_in_pounds_converts_to_kg(chalmers)


def test_mutation_dropped_refines_breaks_miller_fisher(mutated_map, tmp_path):
    """Without `refines` Miller Fisher + G61.0 becomes a conflict, and the Miller Fisher check fails."""
    mutated_map("    refines: {diagnosis: gbs}\n", "")
    with pytest.raises(AssertionError):
        test_miller_fisher_refines_gbs(tmp_path)


def test_mutation_refuted_counted_breaks_the_refuted_check(mutated_map, tmp_path):
    """If a refuted Condition counted, the refuted-Condition check fails."""
    mutated_map("counts: [confirmed]", "counts: [confirmed, refuted]")
    with pytest.raises(AssertionError):
        test_refuted_condition_is_listed_not_counted(tmp_path)


def test_mutation_wrong_golden_expectation_fails(golden_results):
    """The golden comparison is not vacuous: a golden entry with another dose fails it."""
    case = copy.deepcopy(next(c for c in GOLDEN if c["id"] == "mmn-1"))
    case["total_g"] = 128.5
    with pytest.raises(AssertionError):
        test_golden_bundle(case, golden_results)


def test_mutation_removed_code_breaks_the_golden_bundle(mutated_map):
    """Without the SNOMED MMN code in the mapping, the MMN golden Bundle no longer gives a case."""
    mutated_map('      - {system: snomed, code: "230591002"', '      - {system: snomed, code: "230591009"')
    _, [result] = evaluate_json(BUNDLES / "mmn.json")
    case = next(c for c in GOLDEN if c["id"] == "mmn-1")
    with pytest.raises(AssertionError):
        test_golden_bundle(case, {"mmn-1": result})
