"""A generated FHIR R4 Bulk Data export, the same patients as a case file, and a benchmark of the two.

    python bench/fhir_bulk.py --patients 10000 --out /tmp/export     # write an export and its cases
    python bench/fhir_bulk.py --bench                                 # 1k and 10k patients, -j 1 and 2
    python bench/fhir_bulk.py --bench --sizes 1000,10000,30000        # and 30k (the flat-memory question)

The export is laid out as the Bulk Data Access IG's file format: NDJSON, one
resource a line, one set of files per resource type (Patient.ndjson,
Condition.ndjson, Observation.ndjson, MedicationRequest.ndjson,
Procedure.ndjson), a type split into Type.1.ndjson, Type.2.ndjson ... past
`--per-file` lines as servers do. The lines of each type are shuffled: one
patient's resources are spread across the files, never grouped.

Every code comes from the mapping itself (facts/fhir-map.yaml via
`FhirMap.load()`, `codes_for(field, value)`, the body-weight quantity's codes
and units, the resource states), and the case each patient should become is
worked out from the entry each code belongs to (its `current` or `past`
fields, by the status written), never from a table of codes kept here. The
only codes not taken from the mapping are those meant to be unmapped
(UNMAPPED), and the generator checks that the mapping indeed has none of them.

Each patient: a full birthDate and a gender; one diagnosis Condition among
the mapped diagnoses (ICD-10-CM with and without its dot, ICD-10, SNOMED CT;
the codes of an ICD category below it); 0-3 risk-factor Conditions (some
resolved, some provisional: not counted); 0-3 unmapped Conditions; 1-3 body
weights on different days in kg, [lb_av] or g (only the latest counts; now and
then a later one entered in error); sometimes an active IVIG
MedicationRequest (ATC or RxNorm; some completed: treated before), a
corticosteroid or immunosuppressant one, a plasma-exchange Procedure
(mostly completed: treated before).

The benchmark times `ivig evaluate --format jsonl -q --as-of 2026-11-25` on
the export directory and on the same patients as a YAML case file (and JSON
Lines), with peak memory of the process tree sampled from /proc as
bench/bench.py does, and checks that both give the same results per id.
"""

import argparse
import datetime as dt
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from ivig_advisor.engine.core.schema import CaseSchema  # noqa: E402
from ivig_advisor.engine.io.fhir.mapping import Entry, FhirMap  # noqa: E402

AS_OF = dt.date(2026, 11, 25)
TYPES = ("Patient", "Condition", "Observation", "MedicationRequest", "Procedure")
# Codes meant to be unmapped (a mapping cannot give codes it lacks); checked against the mapping on load.
UNMAPPED = (
    ("icd-10-cm", "I10", "Essential (primary) hypertension"),
    ("icd-10-cm", "J45.909", "Unspecified asthma, uncomplicated"),
    ("icd-10-cm", "E78.5", "Hyperlipidemia, unspecified"),
    ("icd-10-cm", "K21.9", "Gastro-esophageal reflux disease without esophagitis"),
    ("snomed", "38341003", "Hypertensive disorder"),
    ("snomed", "195967001", "Asthma"),
)
# How common each diagnosis is (relative): bench/bench.py's weights, one not named there 1.
try:
    from bench import DIAGNOSES  # bench/bench.py
except ImportError:  # pragma: no cover - run from elsewhere
    DIAGNOSES = {}
CHILD = "childhood_epilepsy"
HL7 = "http://terminology.hl7.org/CodeSystem/"
IGNORED_KEYS = ("source", "line", "origins", "unmapped")


# -- what the mapping offers ------------------------------------------------------


class Pool:
    """The codes a generator draws from, each with the entry it belongs to, read off the mapping."""

    def __init__(self, fmap: FhirMap = None, schema: CaseSchema = None):
        self.fmap = fmap or FhirMap.load()
        self.schema = schema or CaseSchema.load()
        fields = self.schema.fields
        self.diagnoses = {}  # diagnosis -> [(Code, Entry)] of Condition entries
        for value in fields["diagnosis"].values:
            found = self.coded("diagnosis", value, "Condition")
            if found:
                self.diagnoses[value] = found
        self.risks = {}  # risk field -> [(Code, Entry)]
        for name, spec in fields.items():
            if spec.group == "risk" and spec.type == "boolean":
                found = self.coded(name, True, "Condition")
                if found:
                    self.risks[name] = found
        self.ivig = self.coded("ivig_planned", True, "MedicationRequest")
        self.steroids = self.coded("planned_cotherapy", "corticosteroids", "MedicationRequest")
        self.immuno = self.coded("planned_cotherapy", "immunosuppressants", "MedicationRequest")
        self.pex = self.coded("planned_cotherapy", "plasma_exchange", "Procedure")
        self.weight = next(q for q in self.fmap.quantities if q.field == "weight_kg")
        self.units = {code: (uri, factor) for (uri, code), factor in self.weight.units.items()}
        self.states = {t: self._kinds(t) for t in TYPES if t in self.fmap.states}
        self.unmapped = []
        for system, code, display in UNMAPPED:
            uri = self.fmap.systems[system]["uri"]
            if self.fmap.matches(uri, code):
                raise ValueError(f"{system} {code} is in the mapping now: UNMAPPED must hold unmapped codes")
            self.unmapped.append((uri, code, display))
        for need in ("diagnoses", "risks", "ivig", "steroids", "pex"):
            if not getattr(self, need):
                raise ValueError(f"the mapping gives no {need} codes to draw from")

    def coded(self, field_name, value, rtype):
        """(Code, Entry) for the mapping's codes that set `field_name` to `value` on a `rtype`."""
        out = []
        codes = self.fmap.codes_for(field_name, value)
        if not codes and self.schema.fields[field_name].type == "list":
            # a list field's entries hold a tuple of values: codes_for(field, "x") finds none of them
            codes = self.fmap.codes_for(field_name, (value,))
        for code in codes:
            entries = [
                e
                for e, c in self.fmap.matches(code.uri, code.code)
                if isinstance(e, Entry) and rtype in e.resources and c == code
            ]
            if entries:
                out.append((code, entries[0]))
        return out

    def _kinds(self, rtype):
        """status code -> current | past | ignore, for one resource type (the mapping's `states`)."""
        by_kind = {}
        for status, kind in self.fmap.states[rtype].kinds.items():
            by_kind.setdefault(kind, []).append(status)
        return by_kind

    def written(self, code, rnd):
        """The code as a record writes it: an ICD category as a code below it, a dot sometimes left out."""
        text = code.code
        dotless = code.uri in self.fmap.dotless
        if code.match == "prefix":  # a code below the category: N18 -> N18.9, H02AB -> H02AB01
            text += ("9" if "." in text else ".9") if dotless else "01"
        if dotless and "." in text and rnd.random() < 0.4:
            text = text.replace(".", "")
        return text


# -- one patient --------------------------------------------------------------------


def _id(rnd):
    return str(uuid.UUID(int=rnd.getrandbits(128), version=4))


def _day(rnd, first: dt.date, last: dt.date) -> dt.date:
    return first + dt.timedelta(days=rnd.randint(0, (last - first).days))


def _concept(uri, code, display):
    return {"coding": [{"system": uri, "code": code, "display": display}], "text": display}


def _status(system, code):
    return {"coding": [{"system": HL7 + system, "code": code}]}


def _apply(case, fields):
    """Put an entry's fields on the expected case (list fields take every value)."""
    for name, value in fields.items():
        if isinstance(value, (list, tuple)):
            case[name] = sorted(set(case.get(name, [])) | set(value))
        else:
            case[name] = value


def patient(rnd, pool: Pool, as_of: dt.date = AS_OF, cotherapy: bool = True):
    """(resources by type, expected case, notes) of one generated patient.

    cotherapy=False: no planned co-therapy (corticosteroid and immunosuppressant requests all
    completed, plasma exchange only completed), which the patient's case would list under
    planned_cotherapy: for runs comparable with the first ones, made while a bug turned every
    patient with planned co-therapy into an error result (fixed in engine/fhir.py).

    notes: what a test can check the origins against: `diagnosis`, the diagnosis Condition's id;
    `weights`, the counted weight Observations' ids, oldest first; `weight`, the latest one's."""
    pid = _id(rnd)
    subject = {"reference": f"Patient/{pid}"}
    out = {t: [] for t in TYPES}
    case = {"id": pid}
    notes = {}
    states = pool.states

    diagnoses = list(pool.diagnoses)
    diagnosis = rnd.choices(diagnoses, [DIAGNOSES.get(d, 1) for d in diagnoses])[0]
    age = rnd.randint(1, 15) if diagnosis == CHILD else rnd.randint(18, 90)
    born = as_of.replace(year=as_of.year - age) - dt.timedelta(days=rnd.randint(0, 364))
    case["age"] = as_of.year - born.year - ((as_of.month, as_of.day) < (born.month, born.day))
    gender = rnd.choices(["female", "male", "other", "unknown"], [48, 48, 2, 2])[0]
    if pool.fmap.sex_values.get(gender):
        case["sex"] = pool.fmap.sex_values[gender]
    out["Patient"].append(
        {
            "resourceType": "Patient",
            "id": pid,
            "active": True,
            "identifier": [{"system": "urn:oid:2.16.840.1.113883.3.9999.1", "value": str(rnd.randint(10**7, 10**8))}],
            "gender": gender,
            "birthDate": born.isoformat(),
        }
    )

    def condition(uri, code, display, clinical, verification=None):
        onset = _day(rnd, max(born, as_of - dt.timedelta(days=3650)), as_of)
        resource = {"resourceType": "Condition", "id": _id(rnd)}
        if clinical:
            resource["clinicalStatus"] = _status("condition-clinical", clinical)
        if verification:
            resource["verificationStatus"] = _status("condition-ver-status", verification)
        resource.update(
            {
                "category": [_status("condition-category", "encounter-diagnosis")],
                "code": _concept(uri, code, display),
                "subject": subject,
                "onsetDateTime": onset.isoformat(),
                "recordedDate": onset.isoformat(),
            }
        )
        out["Condition"].append(resource)
        return resource["id"]

    # the diagnosis: current (active mostly; remission, relapse...; sometimes no clinicalStatus)
    code, entry = rnd.choice(pool.diagnoses[diagnosis])
    clinical = (
        None
        if rnd.random() < 0.1
        else rnd.choices(
            states["Condition"]["current"], [10 if s == "active" else 1 for s in states["Condition"]["current"]]
        )[0]
    )
    notes["diagnosis"] = condition(
        code.uri, pool.written(code, rnd), code.display, clinical, "confirmed" if rnd.random() < 0.5 else None
    )
    _apply(case, entry.current)

    # risk factors: 0-3, most current; some resolved (past), some provisional (not counted)
    risks = rnd.sample(sorted(pool.risks), rnd.choices([0, 1, 2, 3], [45, 30, 17, 8])[0])
    if {"thrombocytopenia", "thrombocytosis"} <= set(risks):  # a platelet count is low or high, not both
        risks.remove("thrombocytosis")
    for field_name in risks:
        code, entry = rnd.choice(pool.risks[field_name])
        roll = rnd.random()
        if roll < 0.12:
            condition(code.uri, pool.written(code, rnd), code.display, rnd.choice(states["Condition"]["past"]))
            _apply(case, entry.past)
        elif roll < 0.17:
            condition(code.uri, pool.written(code, rnd), code.display, "active", "provisional")
        else:
            condition(code.uri, pool.written(code, rnd), code.display, "active")
            _apply(case, entry.current)

    # unmapped conditions: 0-3
    for uri, code, display in rnd.sample(pool.unmapped, rnd.choice([0, 0, 1, 1, 2, 3])):
        condition(uri, code, display, rnd.choice(["active", "resolved"]))

    # body weights: 1-3 on different days, the latest counts
    kg = rnd.uniform(8, 50) if diagnosis == CHILD else rnd.uniform(40, 130)
    days = sorted(rnd.sample(range(1, 1500), rnd.choice([1, 1, 2, 2, 3])))
    latest, notes["weights"] = None, []
    for back in reversed(days):  # oldest first
        weight = max(1.5, kg + rnd.uniform(-4, 4))
        unit = rnd.choices(
            sorted(pool.units), [{"kg": 70, "[lb_av]": 20, "g": 10}.get(u, 5) for u in sorted(pool.units)]
        )[0]
        uri, factor = pool.units[unit]
        value = round(weight / factor, 1) if factor >= 0.01 else int(round(weight / factor, -1))
        observation = _weight(rnd, pool, subject, as_of - dt.timedelta(days=back), uri, unit, value, "final")
        out["Observation"].append(observation)
        notes["weights"].append(observation["id"])
        latest = observation["id"], round(value * factor, 3)
    if rnd.random() < 0.03:  # a later weight entered in error: not counted
        out["Observation"].append(
            _weight(
                rnd,
                pool,
                subject,
                as_of,
                *next((pool.units[u][0], u) for u in sorted(pool.units)),
                999,
                "entered-in-error",
            )
        )
    notes["weight"], case["weight_kg"] = latest

    # treatment
    if rnd.random() < 0.45:
        code, entry = rnd.choice(pool.ivig)
        past = rnd.random() < 0.25
        out["MedicationRequest"].append(
            _medication(rnd, code, subject, rnd.choice(states["MedicationRequest"]["past" if past else "current"][:2]))
        )
        _apply(case, entry.past if past else entry.current)
    for codes, share in ((pool.steroids, 0.2), (pool.immuno, 0.08)):
        if codes and rnd.random() < share:
            code, entry = rnd.choice(codes)
            past = rnd.random() < 0.2 or not cotherapy
            out["MedicationRequest"].append(
                _medication(
                    rnd, code, subject, rnd.choice(states["MedicationRequest"]["past" if past else "current"][:1]), pool
                )
            )
            _apply(case, entry.past if past else entry.current)
    if rnd.random() < 0.15:
        code, entry = rnd.choice(pool.pex)
        past = rnd.random() < 0.8 or not cotherapy
        status = "completed" if past else rnd.choice(states["Procedure"]["current"][:2])
        when = (as_of - dt.timedelta(days=rnd.randint(30, 900))).isoformat()
        out["Procedure"].append(
            {
                "resourceType": "Procedure",
                "id": _id(rnd),
                "status": status,
                "code": _concept(code.uri, pool.written(code, rnd), code.display),
                "subject": subject,
                "performedDateTime": when,
            }
        )
        _apply(case, entry.past if status in states["Procedure"]["past"] else entry.current)
    return out, case, notes


def _weight(rnd, pool, subject, day, uri, unit, value, status):
    code = rnd.choice(pool.weight.codes)
    moment = f"{day.isoformat()}T{rnd.randint(7, 18):02d}:{rnd.randint(0, 59):02d}:00Z"
    return {
        "resourceType": "Observation",
        "id": _id(rnd),
        "status": status,
        "category": [{"coding": [{"system": HL7 + "observation-category", "code": "vital-signs"}]}],
        "code": _concept(code.uri, code.code, code.display),
        "subject": subject,
        "effectiveDateTime": moment,
        "valueQuantity": {"value": value, "unit": {"[lb_av]": "lb"}.get(unit, unit), "system": uri, "code": unit},
    }


def _medication(rnd, code, subject, status, pool=None):
    """A MedicationRequest: the code in medicationCodeableConcept, or now and then in a contained Medication."""
    text = pool.written(code, rnd) if pool else code.code
    resource = {"resourceType": "MedicationRequest", "id": _id(rnd), "status": status, "intent": "order"}
    concept = _concept(code.uri, text, code.display)
    if rnd.random() < 0.1:
        resource["contained"] = [{"resourceType": "Medication", "id": "med", "code": concept}]
        resource["medicationReference"] = {"reference": "#med"}
    else:
        resource["medicationCodeableConcept"] = concept
    resource.update({"subject": subject, "authoredOn": (AS_OF - dt.timedelta(days=rnd.randint(0, 400))).isoformat()})
    return resource


# -- the export and the case file -------------------------------------------------------


def generate(
    out_dir, patients=10_000, seed=2026, per_file=20_000, as_of=AS_OF, case_formats=("yaml", "jsonl"), cotherapy=True
):
    """Write `out_dir`/export/*.ndjson and `out_dir`/cases.{yaml,jsonl}; return a summary.

    The summary: the paths, the number of resources of each type, and `notes` (patient id ->
    the ids of its diagnosis Condition and its latest weight Observation) for up to 50 patients."""
    out_dir = Path(out_dir)
    export = out_dir / "export"
    export.mkdir(parents=True, exist_ok=True)
    rnd, pool = random.Random(seed), Pool()
    lines = {t: [] for t in TYPES}
    cases, notes = [], {}
    for _ in range(patients):
        resources, case, note = patient(rnd, pool, as_of, cotherapy)
        for rtype, items in resources.items():
            lines[rtype].extend(json.dumps(r, ensure_ascii=False, separators=(",", ":")) for r in items)
        cases.append(case)
        if len(notes) < 50:
            notes[case["id"]] = note
    files = {}
    for rtype in TYPES:
        rnd.shuffle(lines[rtype])
        chunks = [lines[rtype][i : i + per_file] for i in range(0, len(lines[rtype]), per_file)] or [[]]
        for number, chunk in enumerate(chunks, start=1):
            if not chunk:
                continue
            name = f"{rtype}.ndjson" if len(chunks) == 1 else f"{rtype}.{number}.ndjson"
            with open(export / name, "w", encoding="utf-8") as handle:
                handle.writelines(line + "\n" for line in chunk)
            files[name] = len(chunk)
    paths = {"export": export}
    if "jsonl" in case_formats:
        paths["jsonl"] = out_dir / "cases.jsonl"
        with open(paths["jsonl"], "w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(c) + "\n" for c in cases)
    if "yaml" in case_formats:
        paths["yaml"] = out_dir / "cases.yaml"
        with open(paths["yaml"], "w", encoding="utf-8") as handle:
            for case in cases:
                handle.write("---\n" + "".join(f"{k}: {_yaml(v)}\n" for k, v in case.items()))
    return {
        "paths": paths,
        "files": files,
        "counts": {t: len(lines[t]) for t in TYPES},
        "patients": patients,
        "notes": notes,
        "ids": [c["id"] for c in cases],
    }


def _yaml(value):
    """A case value in YAML (JSON's spelling of it is YAML too: quoted texts, lists, booleans)."""
    return json.dumps(value)


# -- comparing results ----------------------------------------------------------------


def comparable(result):
    """A result without what says where it came from: source, line, origins, unmapped, and
    the origin of each fact of its trace."""
    out = {k: v for k, v in result.items() if k not in IGNORED_KEYS}
    out["trace"] = [
        dict(entry, matched=[{k: v for k, v in fact.items() if k != "origin"} for fact in entry.get("matched", ())])
        for entry in result.get("trace") or ()
    ]
    return out


def differences(a_lines, b_lines, limit=5):
    """(ids only in a, ids only in b, [(id, key, a's, b's)] for up to `limit` results that differ)."""
    a = {r["id"]: comparable(r) for r in a_lines}
    b = {r["id"]: comparable(r) for r in b_lines}
    differ = []
    for key in a.keys() & b.keys():
        if a[key] != b[key] and len(differ) < limit:
            field = next(k for k in sorted(a[key].keys() | b[key].keys()) if a[key].get(k) != b[key].get(k))
            differ.append((key, field, a[key].get(field), b[key].get(field)))
    return sorted(a.keys() - b.keys()), sorted(b.keys() - a.keys()), differ


# -- the benchmark --------------------------------------------------------------------------


def run_cli(path, workers, output):
    """`ivig evaluate PATH --format jsonl -q --as-of 2026-11-25 -j N` into `output`: bench.run_cli's
    time and memory (the process tree's RSS sampled from /proc)."""
    import bench

    command = [
        sys.executable,
        "-m",
        "ivig_advisor.cli",
        "evaluate",
        str(path),
        "--format",
        "jsonl",
        "-q",
        "--as-of",
        AS_OF.isoformat(),
        "-j",
        str(workers),
    ]
    with open(output, "wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.PIPE)
        sampler = bench.TreeSampler(proc.pid)
        sampler.start()
        _, status = os.waitpid(proc.pid, 0)
        seconds = time.perf_counter() - start
        sampler.stop.set()
        sampler.join()
    code = os.waitstatus_to_exitcode(status)
    stderr = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if code not in (0, 1):
        raise RuntimeError(f"{' '.join(command)} exited {code}:\n{stderr}")
    return {
        "seconds": seconds,
        "tree": sampler.tree_peak / bench.MIB,
        "process": sampler.process_peak / bench.MIB,
        "hwm": sampler.hwm / bench.MIB,
        "processes": len(sampler.pids),
        "sha256": bench.sha256(output),
        "exit": code,
    }


def busy():
    """Other test runs on the machine (pytest processes not ours), and the load average."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if "pytest" in cmd:
                found.append(f"{entry.name}: {cmd.strip()[:80]}")
    return found, os.getloadavg()


def benchmark(
    sizes, workers=(1, 2), formats=("fhir", "yaml", "jsonl"), say=print, seed=2026, per_file=20_000, cotherapy=True
):
    """Every size x format x worker count through the CLI; results compared per id. Returns failures."""
    failures = 0
    header = (
        f"{'patients':>8} {'input':>5} {'-j':>2} {'wall s':>8} {'ms/pt':>7} {'tree':>6} {'process':>7} "
        f"{'hwm':>6} {'procs':>5}  sha256"
    )
    say(header)
    rows = {}
    with tempfile.TemporaryDirectory(prefix="ivig-fhirbench-") as tmp:
        for n in sizes:
            made = generate(
                Path(tmp) / str(n),
                n,
                seed=seed,
                per_file=per_file,
                case_formats=tuple(f for f in formats if f != "fhir"),
                cotherapy=cotherapy,
            )
            inputs = {"fhir": made["paths"]["export"], **{f: made["paths"][f] for f in formats if f != "fhir"}}
            outputs = {}
            for fmt in formats:
                for w in workers:
                    output = Path(tmp) / f"out-{n}-{fmt}-{w}.jsonl"
                    r = rows[n, fmt, w] = run_cli(inputs[fmt], w, output)
                    outputs[fmt, w] = output
                    say(
                        f"{n:>8,} {fmt:>5} {w:>2} {r['seconds']:>8.2f} {r['seconds'] * 1000 / n:>7.3f} "
                        f"{r['tree']:>6.1f} {r['process']:>7.1f} {r['hwm']:>6.1f} {r['processes']:>5}  "
                        f"{r['sha256'][:16]}"
                    )
            results = {k: [json.loads(x) for x in open(p, encoding="utf-8")] for k, p in outputs.items()}
            for k, lines in results.items():
                ids = [r["id"] for r in lines]
                errors = sum(r["status"] == "error" for r in lines)
                if sorted(ids) != sorted(made["ids"]) or errors:
                    failures += 1
                    say(f"  !!! {n:,} {k}: {len(ids)} results for {n} patients, {errors} errors")
            for w in workers:
                if w != workers[0] and rows[n, "fhir", w]["sha256"] != rows[n, "fhir", workers[0]]["sha256"]:
                    failures += 1
                    say(f"  !!! {n:,} FHIR: -j {w} output differs from -j {workers[0]}")
                for fmt in formats:
                    if fmt == "fhir":
                        continue
                    only_a, only_b, differ = differences(results["fhir", w], results[fmt, w])
                    same = not (only_a or only_b or differ)
                    failures += not same
                    say(
                        f"  {n:,} patients, -j {w}: FHIR vs {fmt} results per id "
                        + (
                            "equal"
                            if same
                            else f"DIFFER: {len(only_a)} only FHIR, {len(only_b)} only {fmt}, first: {differ[:2]}"
                        )
                    )
            for p in outputs.values():
                p.unlink()
    return rows, failures


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--out", type=Path, help="the directory to write (export/ and cases.yaml, cases.jsonl)")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--per-file", type=int, default=20_000, help="lines per NDJSON file before a type is split")
    parser.add_argument("--bench", action="store_true", help="run the benchmark")
    parser.add_argument("--sizes", default="1000,10000", help="patients per benchmark run, comma-separated")
    parser.add_argument("--formats", default="fhir,yaml,jsonl")
    parser.add_argument(
        "--no-cotherapy",
        action="store_true",
        help="generate no planned co-therapy (works around the planned_cotherapy bug)",
    )
    parser.add_argument("--results", type=Path, help="append the benchmark's figures to this file")
    args = parser.parse_args(argv)
    if not args.bench:
        if args.out is None:
            parser.error("--out is needed to write an export (or --bench)")
        made = generate(
            args.out, args.patients, seed=args.seed, per_file=args.per_file, cotherapy=not args.no_cotherapy
        )
        print(f"{args.patients:,} patients: " + ", ".join(f"{k} {v:,}" for k, v in made["counts"].items()))
        print("files: " + ", ".join(f"{k} ({v:,})" for k, v in made["files"].items()))
        print("cases: " + ", ".join(str(p) for k, p in made["paths"].items() if k != "export"))
        return 0
    lines = []

    def say(text=""):
        print(text, flush=True)
        lines.append(text)

    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True
    ).stdout.strip()
    others, load = busy()
    began = time.perf_counter()
    say(
        f"python bench/fhir_bulk.py --bench --sizes {args.sizes} --formats {args.formats}"
        f"{' --no-cotherapy' if args.no_cotherapy else ''}, "
        f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC"
    )
    say(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}; code {commit}{' (+ uncommitted changes)' if dirty else ''}; "
        f"load average {', '.join(f'{x:.2f}' for x in load)}"
    )
    say("other pytest processes at the start: " + ("; ".join(others) if others else "none"))
    say(
        "memory in MiB: tree = peak sum of RSS over the command and its workers, process = the largest single "
        "process (sampled from /proc every 20 ms), hwm = the largest VmHWM; ms/pt = wall ms per patient"
    )
    sizes = [int(s) for s in args.sizes.split(",")]
    rows, failures = benchmark(
        sizes,
        formats=tuple(args.formats.split(",")),
        say=say,
        seed=args.seed,
        per_file=args.per_file,
        cotherapy=not args.no_cotherapy,
    )
    others, load = busy()
    say(
        f"{time.perf_counter() - began:.0f} s in all; load average at the end {', '.join(f'{x:.2f}' for x in load)}; "
        "other pytest processes at the end: " + ("; ".join(others) if others else "none")
    )
    if args.results:
        with open(args.results, "a", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n\n")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
