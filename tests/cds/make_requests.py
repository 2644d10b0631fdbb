"""Writes tests/cds/*.json: CDS Hooks 2.0 requests adapted from the spec's examples
(/work/notes/cdshooks.md 3.4, 4.1-4.4). Run it to regenerate them: python tests/cds/make_requests.py"""

import copy
import json
from pathlib import Path

OUT = Path(__file__).resolve().parent
ICD = "http://hl7.org/fhir/sid/icd-10-cm"
RX = "http://www.nlm.nih.gov/research/umls/rxnorm"
ATC = "http://www.whocc.no/atc"
PID = "1288992"


def condition(cid, code, pid=PID):
    return {
        "resourceType": "Condition",
        "id": cid,
        "subject": {"reference": f"Patient/{pid}"},
        "clinicalStatus": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]
        },
        "code": {"coding": [{"system": ICD, "code": code}]},
    }


def searchset(*resources):
    return {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r} for r in resources]}


def weight(kg, pid=PID):
    return searchset(
        {
            "resourceType": "Observation",
            "id": "weight-1",
            "status": "final",
            "subject": {"reference": f"Patient/{pid}"},
            "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7", "display": "Body weight"}]},
            "effectiveDateTime": "2026-01-05",
            "valueQuantity": {"value": kg, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"},
        }
    )


def ivig_order(oid="ivig-draft-1", value=2, unit="g/kg", coding=None, pid=PID):
    return {
        "resourceType": "MedicationRequest",
        "id": oid,
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": {
            "coding": coding
            or [{"system": ATC, "code": "J06BA02", "display": "immunoglobulins, normal human, for intravascular adm."}],
            "text": "Immune globulin (human) IV",
        },
        "subject": {"reference": f"Patient/{pid}"},
        "dosageInstruction": [
            {
                "doseAndRate": [
                    {
                        "doseQuantity": {
                            "value": value,
                            "unit": unit,
                            "system": "http://unitsofmeasure.org",
                            "code": unit,
                        }
                    }
                ]
            }
        ],
    }


# the spec's NutritionOrder (order-select example, 4.1), trimmed of nothing that matters here
NUTRITION = {
    "resourceType": "NutritionOrder",
    "id": "pureeddiet-simple",
    "identifier": [{"system": "http://goodhealthhospital.org/nutrition-requests", "value": "123"}],
    "status": "draft",
    "intent": "order",
    "patient": {"reference": f"Patient/{PID}"},
    "dateTime": "2014-09-17",
    "orderer": {"reference": "Practitioner/example", "display": "Dr Adam Careful"},
    "oralDiet": {
        "type": [
            {
                "coding": [{"system": "http://snomed.info/sct", "code": "226211001", "display": "Pureed diet"}],
                "text": "Pureed diet",
            }
        ]
    },
}

PATIENT = {"resourceType": "Patient", "id": PID, "gender": "male", "birthDate": "1925-12-23", "active": True}


def prefetch(conditions, kg=70, **extra):
    out = {
        "patient": copy.deepcopy(PATIENT),
        "conditions": searchset(*conditions),
        "weights": weight(kg) if kg else None,
        "medications": searchset(),
        "statements": searchset(),
        "procedures": searchset(),
        "allergies": searchset(),
    }
    out.update(extra)
    return out


def order_select(name, conditions, orders, selections, kg=70, hook="order-select", **kw):
    body = {
        "hook": hook,
        "hookInstance": kw.pop("instance", "3f1c1f4e-6a8e-4f43-9a43-2b2f6f0f7a11"),
        "fhirServer": "https://ehr.example.org/fhir",
        "context": {
            "userId": "PractitionerRole/123",
            "patientId": PID,
            "encounterId": "89284",
            "selections": selections,
            "draftOrders": {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": o} for o in orders]},
        },
        "prefetch": prefetch(conditions, kg),
    }
    if hook == "order-sign":
        del body["context"]["selections"]
    (OUT / f"{name}.json").write_text(json.dumps(body, indent=1) + "\n")


mmn = [condition("mmn-1", "G61.82")]
# 4.4: an IVIG draft order at 2 g/kg a day (the review: 0.4 g/kg a day for 5 days) beside the spec's diet order
order_select(
    "order-select-mmn",
    mmn,
    [NUTRITION, ivig_order()],
    ["NutritionOrder/pureeddiet-simple", "MedicationRequest/ivig-draft-1"],
)
# 4.2: order-sign signs every draft order; the dose is the review's (28 g a day at 70 kg); IgA deficiency
order_select(
    "order-sign-mmn",
    mmn + [condition("iga-1", "D80.2")],
    [NUTRITION, ivig_order(value=28, unit="g", coding=[{"system": RX, "code": "1809518"}])],
    None,
    hook="order-sign",
    instance="a0e3b6f2-0c1d-4e57-9c55-2f1d1c1f0b21",
)
# 4.1: the clinician selected only the diet order: the IVIG order is not among the selections
order_select("order-select-unselected", mmn, [NUTRITION, ivig_order()], ["NutritionOrder/pureeddiet-simple"])
# IVIG ordered where the review finds it not effective (ALS)
order_select(
    "order-select-als", [condition("als-1", "G12.21")], [ivig_order(value=0.4)], ["MedicationRequest/ivig-draft-1"]
)
# IVIG ordered for MS (the FHIR map cannot say "established weakness": ms_presentation stays a question)
order_select(
    "order-select-ms", [condition("ms-1", "G35.D")], [ivig_order(value=0.4)], ["MedicationRequest/ivig-draft-1"]
)
# IVIG ordered for a patient with no disease the review covers: diabetes, kidney disease
order_select(
    "order-select-uncovered",
    [condition("dm-1", "E11.9"), condition("ckd-1", "N18.3")],
    [ivig_order(value=0.4)],
    ["MedicationRequest/ivig-draft-1"],
)
# critical: MMN with prednisone ordered beside IVIG, and kidney disease with volume depletion
PRED = {
    "resourceType": "MedicationRequest",
    "id": "pred-1",
    "status": "draft",
    "intent": "order",
    "medicationCodeableConcept": {"coding": [{"system": RX, "code": "8640", "display": "Prednisone"}]},
    "subject": {"reference": f"Patient/{PID}"},
}
order_select(
    "order-select-critical",
    mmn + [condition("ckd-1", "N18.3"), condition("dehydration-1", "E86.0")],
    [ivig_order()],
    ["MedicationRequest/ivig-draft-1"],
)
order_select(
    "order-select-mmn-prednisone",
    mmn,
    [ivig_order(value=0.4), PRED],
    ["MedicationRequest/ivig-draft-1", "MedicationRequest/pred-1"],
)

# 3.4: the spec's full patient-view request (its prefetch key renamed to this service's, every key sent)
pv = {
    "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
    "fhirServer": "http://hooks.smarthealthit.org:9080",
    "hook": "patient-view",
    "fhirAuthorization": {
        "access_token": "some-opaque-fhir-access-token",
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "user/Patient.read user/Observation.read",
        "subject": "cds-service4",
    },
    "context": {"userId": "Practitioner/example", "patientId": PID, "encounterId": "89284"},
    "prefetch": prefetch([condition("cidp-1", "G61.81")], kg=80),
}
(OUT / "patient-view-cidp.json").write_text(json.dumps(pv, indent=1) + "\n")
pv = copy.deepcopy(pv)
pv["prefetch"]["conditions"] = searchset(condition("dm-1", "E11.9"))
(OUT / "patient-view-uncovered.json").write_text(json.dumps(pv, indent=1) + "\n")
# Issue 26's acceptance patient: MMN on prednisone (an active order: corticosteroids planned, the
# mapping's F06), with chronic kidney disease (N18.3) and volume depletion (E86.0, dehydration);
# the chart opened (patient-view), no IVIG order in it
pv = copy.deepcopy(pv)
pv["hookInstance"] = "6b0f4c2e-3d7a-4e1b-8f5c-9a2d7e4b1c30"
pv["prefetch"] = prefetch(
    mmn + [condition("ckd-1", "N18.3"), condition("dehydration-1", "E86.0")],
    medications=searchset(dict(PRED, status="active")),
)
(OUT / "patient-view-mmn-prednisone-renal.json").write_text(json.dumps(pv, indent=1) + "\n")
