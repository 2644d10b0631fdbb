"""A generated FHIR Bulk Data export, read through the real CLI, against the same patients as a case file.

The export (bench/fhir_bulk.py: codes taken from facts/fhir-map.yaml, one
set of NDJSON files per resource type, a type split across files, each
type's lines shuffled so that no patient's resources are together) must give
per patient the result of the case the mapping says it is. Also: -j 2 gives
the bytes of -j 1; origins name the resources; a malformed line or a
resource of no Patient is one error result and costs no patient its result;
the temporary SQLite join leaves nothing behind, also when reading stops
early. Timing and memory are the benchmark's (python bench/fhir_bulk.py --bench).
"""

import importlib.util
import json
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import ROOT

from ivig_advisor.cli import main

_spec = importlib.util.spec_from_file_location("fhir_bulk", ROOT / "bench" / "fhir_bulk.py")
fhir_bulk = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("fhir_bulk", fhir_bulk)
_spec.loader.exec_module(fhir_bulk)

PATIENTS = 250
AS_OF = "2026-11-25"


def evaluate(*paths, workers=1):
    """`ivig evaluate PATHS --format jsonl -q --as-of 2026-11-25 -j N`: (exit code, stdout)."""
    result = CliRunner().invoke(
        main,
        ["evaluate", "--format", "jsonl", "-q", "--as-of", AS_OF, "-j", str(workers), *map(str, paths)],
        catch_exceptions=False,
    )
    return result.exit_code, result.stdout


def lines(stdout):
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def cases_of(path):
    """The expected cases the generator wrote, by id (its JSON Lines file)."""
    return {c["id"]: c for c in map(json.loads, Path(path).read_text(encoding="utf-8").splitlines())}


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """250 patients, seed 7; types split every 300 lines (Condition and Observation span files)."""
    return fhir_bulk.generate(tmp_path_factory.mktemp("bulk"), PATIENTS, seed=7, per_file=300)


@pytest.fixture(scope="module")
def runs(made):
    """The export with -j 1 and -j 2, and the YAML case file: (exit code, stdout) each."""
    export = made["paths"]["export"]
    return {"fhir": evaluate(export), "fhir-j2": evaluate(export, workers=2), "yaml": evaluate(made["paths"]["yaml"])}


def copy_export(made, tmp_path):
    target = tmp_path / "export"
    shutil.copytree(made["paths"]["export"], target)
    return target


# -- the generator's export -----------------------------------------------------------


def test_the_export_is_laid_out_as_a_bulk_export_and_not_grouped_by_patient(made):
    """One set of files per type, Condition and Observation split as servers do; within a type the
    patients come in another order than the Patient file's (the lines are shuffled)."""
    export = made["paths"]["export"]
    names = sorted(p.name for p in export.iterdir())
    assert {n.split(".")[0] for n in names} == set(fhir_bulk.TYPES)
    assert "Condition.1.ndjson" in names and "Condition.2.ndjson" in names and "Observation.2.ndjson" in names
    order = [json.loads(x)["id"] for x in (export / "Patient.ndjson").read_text().splitlines()]
    subjects = [
        json.loads(x)["subject"]["reference"][len("Patient/") :]
        for x in (export / "Observation.1.ndjson").read_text().splitlines()
    ]
    adjacent = sum(a == b for a, b in zip(subjects, subjects[1:]))
    assert adjacent < len(subjects) // 10, "a patient's weights are together: the lines are not shuffled"
    firsts = list(dict.fromkeys(subjects))
    assert firsts != [p for p in order if p in set(firsts)], "the weights come in the patients' order"
    assert made["counts"]["Patient"] == PATIENTS and made["counts"]["Condition"] > PATIENTS


def test_every_mapped_code_the_export_uses_is_in_the_mapping_and_the_unmapped_ones_are_not(made):
    """The generator draws its codes from facts/fhir-map.yaml (only UNMAPPED ones are its own)."""
    pool = fhir_bulk.Pool()
    unmapped = {code for _, code, _ in fhir_bulk.UNMAPPED}
    seen = 0
    for path in made["paths"]["export"].glob("Condition*.ndjson"):
        for line in path.read_text().splitlines():
            coding = json.loads(line)["code"]["coding"][0]
            matched = pool.fmap.matches(coding["system"], coding["code"])
            assert bool(matched) != (coding["code"] in unmapped), coding
            seen += 1
    assert seen == made["counts"]["Condition"]


# -- FHIR against the case file ----------------------------------------------------------


def test_the_export_gives_per_patient_the_results_of_the_case_file(made, runs):
    """Every patient gets one ok result, equal (status, IVIG, dose, warnings, missing, trace...)
    to the YAML case's, leaving out where it came from; patients with planned co-therapy
    (a list field, which once reached the case as a tuple) among them."""
    fhir, yaml = lines(runs["fhir"][1]), lines(runs["yaml"][1])
    expected = cases_of(made["paths"]["jsonl"])
    assert sorted(r["id"] for r in fhir) == sorted(expected)
    assert runs["yaml"][0] == 0 and all(r["status"] == "ok" for r in yaml)
    assert len({i for i, c in expected.items() if "planned_cotherapy" in c}) > 10
    assert fhir_bulk.differences(fhir, yaml, limit=3) == ([], [], [])
    assert all(r["status"] == "ok" for r in fhir)


def test_one_active_prednisone_request_is_planned_corticosteroids(tmp_path):
    """The smallest record with a list field: an active prednisone order is planned co-therapy."""
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"resource": {"resourceType": "Patient", "id": "p1", "birthDate": "1970-01-01"}},
            {
                "resource": {
                    "resourceType": "Condition",
                    "id": "c1",
                    "subject": {"reference": "Patient/p1"},
                    "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "G61.0"}]},
                }
            },
            {
                "resource": {
                    "resourceType": "MedicationRequest",
                    "id": "m1",
                    "status": "active",
                    "intent": "order",
                    "subject": {"reference": "Patient/p1"},
                    "medicationCodeableConcept": {
                        "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "8640"}]
                    },
                }
            },
        ],
    }
    path = tmp_path / "record.json"
    path.write_text(json.dumps(bundle), encoding="utf-8")
    [result] = lines(evaluate(path)[1])
    assert result["status"] == "ok", result["error"]
    assert result["origins"]["planned_cotherapy"] == ["MedicationRequest/m1 RxNorm 8640"]


def test_codes_for_a_list_field_takes_one_item():
    from ivig_advisor.engine.io.fhir.mapping import FhirMap

    fmap = FhirMap.load()
    assert (
        fmap.codes_for("planned_cotherapy", "corticosteroids")
        == fmap.codes_for("planned_cotherapy", ("corticosteroids",))
        != []
    )


def test_two_workers_give_the_bytes_of_one(runs):
    assert runs["fhir"][1] and runs["fhir-j2"][1] == runs["fhir"][1]
    assert runs["fhir-j2"][0] == runs["fhir"][0]


def test_origins_name_the_latest_weight_and_the_diagnosis_condition(made, runs):
    """For the first 50 patients: the weight's origin is the latest counted Observation (not an older
    one), the diagnosis's the diagnosis Condition, the age's the Patient."""
    results = {r["id"]: r for r in lines(runs["fhir"][1])}
    several = 0
    for pid, note in made["notes"].items():
        origins = results[pid]["origins"]
        assert [o.split()[0] for o in origins["weight_kg"]] == [f"Observation/{note['weight']}"], pid
        assert note["weights"][-1] == note["weight"]
        assert [o.split()[0] for o in origins["diagnosis"]] == [f"Condition/{note['diagnosis']}"], pid
        assert origins["age"][0].startswith(f"Patient/{pid} birthDate ")
        several += len(note["weights"]) > 1
    assert several >= 10, "too few patients with more than one weight to test 'the latest'"


# -- broken exports -------------------------------------------------------------------------


def test_a_malformed_line_is_one_error_naming_file_and_line_and_every_patient_keeps_a_result(made, tmp_path):
    export = copy_export(made, tmp_path)
    path = export / "Condition.2.ndjson"
    text = path.read_text().splitlines(keepends=True)
    text[4] = text[4][:40] + "\n"  # line 5: cut short, no longer JSON
    path.write_text("".join(text))
    code, stdout = evaluate(export)
    results = lines(stdout)
    assert code == 1
    bad = [
        r
        for r in results
        if r["status"] == "error"
        and (r["error"].get("source") or "").endswith("Condition.2.ndjson")
        and r["error"].get("line") == 5
    ]
    assert len(bad) == 1, [r["error"] for r in results if r["status"] == "error"]
    assert len(results) == PATIENTS + 1
    assert set(made["ids"]) <= {r["id"] for r in results}


def test_a_resource_of_no_patient_in_the_export_is_an_error_naming_it(made, tmp_path):
    export = copy_export(made, tmp_path)
    orphan = {
        "resourceType": "Condition",
        "id": "orphan-1",
        "subject": {"reference": "Patient/nobody"},
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "I10"}]},
    }
    with open(export / "Condition.1.ndjson", "a", encoding="utf-8") as handle:
        handle.write(json.dumps(orphan) + "\n")
    code, stdout = evaluate(export)
    results = lines(stdout)
    errors = [r for r in results if r["status"] == "error" and "nobody" in json.dumps(r["error"])]
    assert code == 1 and len(errors) == 1, errors
    assert "Patient/nobody" in errors[0]["error"]["message"] and errors[0]["id"] == "Condition/orphan-1"
    assert errors[0]["error"]["source"].endswith("Condition.1.ndjson")
    assert {r["id"] for r in results} - {"Condition/orphan-1"} == set(made["ids"])


# -- the temporary join ------------------------------------------------------------------------


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """A temporary directory of this test's own (others' runs cannot leave ivig-bulk-* in it), and the
    names of every TemporaryDirectory made while the test runs."""
    where = tmp_path / "tmp"
    where.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(where))
    made = []

    class Recording(tempfile.TemporaryDirectory):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self.name)

    monkeypatch.setattr(tempfile, "TemporaryDirectory", Recording)
    return where, made


def test_the_sqlite_join_is_removed_after_a_run(made, private_tmp):
    where, created = private_tmp
    assert len(lines(evaluate(made["paths"]["export"])[1])) == PATIENTS
    bulk = [d for d in created if Path(d).name.startswith("ivig-bulk-")]
    assert len(bulk) == 1 and Path(bulk[0]).parent == where, created
    assert list(where.glob("ivig-bulk-*")) == []


def test_the_sqlite_join_is_removed_when_reading_stops_early(made, private_tmp):
    """A reader that takes one case and closes the generator (a consumer that stops early)."""
    import datetime as dt

    from ivig_advisor.engine.io.cases import read_cases

    where, _ = private_tmp
    reader = read_cases([str(made["paths"]["export"])], as_of=dt.date(2026, 11, 25))
    first = next(reader)
    assert first.id in made["ids"]
    [join] = where.glob("ivig-bulk-*")
    assert (join / "join.sqlite").exists()
    reader.close()
    assert list(where.glob("ivig-bulk-*")) == []
