"""FHIR records in: Bundles and Bulk Data exports, joined into one case per Patient.

io/ recognises FHIR by content (sniffing.py, fhir/records.py) and hands over what it parsed: a Bundle
(or a lone resource) as one document, or a Bulk Data export as a stream of
(source, line, resource) from its NDJSON files. This module joins each
Patient to the resources that reference it and gives `FhirCase`s, which
fhir/records.py turns into case records like any other.

A Bulk export puts each resource type in its own files, so one patient's
resources are spread across the whole export. They are joined on disk, in a
temporary SQLite database (removed when reading ends), so that memory stays
flat whatever the number of patients; patients come out in the order of the
export's Patient files.
"""

import datetime as dt
import functools
import json
import os
import sqlite3
import tempfile
from dataclasses import dataclass, field
from typing import Callable, Dict, Generator, Iterable, Iterator, List, Optional, Tuple

from ...base.errors import SourceError
from ...base.yamlsrc import shown
from .mapping import default_map
from .resources import READ_TYPES, SUBJECT, Item, Provenance, medication_reference, patient_case

# Bundle types that hold a record; the others hold versions or replies.
RECORD_BUNDLES = ("collection", "searchset", "transaction", "batch", "document", "message")


@dataclass
class FhirCase:
    """One Patient's case mapping and the errors that keep it from being evaluated (a
    resource's error has no data); or, `pending`, the Patient and its resources still to be
    read into one (`built()`), which a worker process can do as well as the reader."""

    data: Optional[dict]
    source: str
    line: Optional[int]
    id: Optional[str]  # the Patient's id, or the resource an error is about
    errors: List[SourceError] = field(default_factory=list)
    provenance: Optional[Provenance] = None
    pending: Optional["Pending"] = None

    def built(self) -> "FhirCase":
        """The case read from its resources (itself when it was already)."""
        return self.pending.build() if self.pending is not None else self


@dataclass
class Pending:
    """A Patient joined to its resources, with the Medications they name already found (the
    join's indexes stay with the reader): everything the mapping needs, and picklable."""

    patient: Item
    items: List[Item]
    medications: Dict[tuple, Item]  # (index in items, reference) -> the Medication
    as_of: Optional[dt.date]

    def build(self) -> FhirCase:
        index = {id(item): i for i, item in enumerate(self.items)}
        data, provenance, errors = patient_case(
            self.patient,
            self.items,
            default_map(),
            default_schema(),
            _today(self.as_of),
            lambda item, reference: self.medications.get((index.get(id(item)), reference)),
        )
        # the data stays beside its errors (what was read); a record whose diagnosis the mapping
        # does not read has none: it is `other` (facts/fhir-map.yaml, otherwise), with every warning
        return FhirCase(data, self.patient.source, self.patient.line, _patient_id(self.patient), errors, provenance)


@functools.cache
def is_resource_type(name: str) -> bool:
    """Whether `name` is a FHIR resource type (fhir.resources' R4B models, which read R4:
    a misspelt 'Conditon' is none, nor is a data type such as Coding)."""
    if not isinstance(name, str) or not name.isidentifier():
        return False
    from fhir.resources.R4B import get_fhir_model_class
    from fhir.resources.R4B.resource import Resource

    try:
        model = get_fhir_model_class(name)
    except Exception:
        return False
    return isinstance(model, type) and issubclass(model, Resource) and model.__name__ == name


def is_fhir(value) -> bool:
    """Whether a parsed document is a FHIR resource (it names its resourceType)."""
    return isinstance(value, dict) and isinstance(value.get("resourceType"), str)


def is_bulk_manifest(value) -> bool:
    """Whether a parsed document is a Bulk Data export's manifest (transactionTime, output[])."""
    return (
        isinstance(value, dict)
        and "transactionTime" in value
        and isinstance(value.get("output"), list)
        and "resourceType" not in value
    )


def default_schema():
    """The packaged case schema, which the mapping is checked against (loaded once)."""
    from ...core.schema import CaseSchema

    global _SCHEMA
    if _SCHEMA is None:
        _SCHEMA = CaseSchema.load()
    return _SCHEMA


_SCHEMA = None


def _today(as_of: Optional[dt.date]) -> dt.date:
    return as_of or dt.date.today()


# -- references ------------------------------------------------------------------


def local_key(reference) -> Optional[str]:
    """'Type/id' of a relative or absolute RESTful reference (its version dropped), else None."""
    if not isinstance(reference, str) or not reference or reference.startswith(("#", "urn:")):
        return None
    parts = _without_version(reference).split("/")
    if len(parts) < 2 or not parts[-2][:1].isupper():
        return None
    return f"{parts[-2]}/{parts[-1]}"


def _root(full_url: Optional[str]) -> Optional[str]:
    """The server root of a RESTful fullUrl (http://x/fhir/ of http://x/fhir/Patient/1), else None."""
    if not full_url or "://" not in full_url:
        return None
    parts = _without_version(full_url).split("/")
    if len(parts) < 5 or not parts[-2][:1].isupper():
        return None
    return "/".join(parts[:-2]) + "/"


def _without_version(reference: str) -> str:
    parts = reference.split("/")
    return "/".join(parts[:-2]) if len(parts) >= 4 and parts[-2] == "_history" else reference


def _subject(item: Item) -> Tuple[str, Optional[str]]:
    """(the element, its reference text or None) that joins a resource to its Patient."""
    element = SUBJECT.get(item.type, "subject")
    value = item.resource.get(element)
    reference = value.get("reference") if isinstance(value, dict) else None
    return element, reference if isinstance(reference, str) else None


def _contained(item: Item, reference: str) -> Optional[Item]:
    """The contained resource `#id` names: the one with that id (None when none, or several, has it)."""
    found = [
        Item(r, item.source, getattr(r, "line", item.line), f"{item.path}.contained[{i}]")
        for i, r in enumerate(item.resource.get("contained") or ())
        if isinstance(r, dict) and isinstance(r.get("id"), str) and r["id"] and f"#{r['id']}" == reference
    ]
    return found[0] if len(found) == 1 else None


# -- Bundles and lone resources ---------------------------------------------------------


def bundle_cases(
    document: dict, source: str, line: Optional[int], as_of: Optional[dt.date] = None
) -> Iterator[FhirCase]:
    """The cases of one FHIR document: a Bundle (one case per Patient in it) or a lone resource."""
    if document.get("resourceType") != "Bundle":
        items = [Item(document, source, line, document["resourceType"])]
    else:
        problem = _unreadable_bundle(document, source, line)
        if problem is not None:
            yield FhirCase(None, source, line, None, [problem])
            return
        items = yield from _entry_items(document.get("entry") or [], source, line, as_of)
    yield from _joined(items, source, line, _BundleIndex(items), as_of)


def _unreadable_bundle(document: dict, source: str, line: Optional[int]) -> Optional[SourceError]:
    """Why a Bundle cannot be read at all (its type holds no record, or its entry is no list), else None."""
    kind = document.get("type")
    if kind not in RECORD_BUNDLES:
        return SourceError(
            f"a Bundle of type {shown(kind)}: ivig reads {', '.join(RECORD_BUNDLES)} Bundles, which hold a record",
            source,
            getattr(document, "line_of", lambda k: line)("type"),
            "Bundle.type",
        )
    if not isinstance(document.get("entry") or [], list):
        return SourceError("Bundle.entry must be a list", source, line, "Bundle.entry")
    return None


def _entry_items(
    entries: list, source: str, line: Optional[int], as_of: Optional[dt.date]
) -> Generator[FhirCase, None, List[Item]]:
    """The resources of a Bundle's entries, to be joined; on the way, in entry order, it yields
    the error of each entry that cannot be read and the cases of each Bundle in the Bundle."""
    items = []
    for i, entry in enumerate(entries):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        at, where = getattr(entry, "line", line), f"Bundle.entry[{i}]"
        if isinstance(entry, dict) and resource is None:
            continue  # a DELETE in a transaction, a search outcome: no resource to read
        problem = _entry_problem(entry, resource)
        if problem is not None:
            error = SourceError(problem, source, at, f"{where}.resource" if resource is not None else where)
            yield FhirCase(None, source, at, f"{os.path.basename(source)}:{where}", [error])
        elif resource["resourceType"] == "Bundle":  # a Bundle in a Bundle: its own record
            yield from bundle_cases(resource, source, getattr(resource, "line", at), as_of)
        else:
            url = entry.get("fullUrl")
            at_resource = getattr(resource, "line", None) or line
            items.append(
                Item(resource, source, at_resource, f"{where}.resource", url if isinstance(url, str) else None)
            )
    return items


def _entry_problem(entry, resource) -> Optional[str]:
    """Why a Bundle entry that is not empty cannot be read, else None."""
    if not isinstance(entry, dict):
        return "a Bundle entry must be an object"
    if not is_fhir(resource):
        return "the entry's resource names no resourceType"
    if not is_resource_type(resource["resourceType"]):
        return f"{shown(resource['resourceType'])} is not a FHIR R4 resource type"
    return None


class _BundleIndex:
    """Resolves references inside one Bundle (FHIR's rules for resolving references in Bundles)."""

    def __init__(self, items: List[Item]):
        self.by_url, self.by_key = {}, {}
        for item in items:
            if item.full_url:
                self.by_url.setdefault(item.full_url, item)
            rid = item.resource.get("id")
            if isinstance(rid, str) and rid:
                self.by_key.setdefault(f"{item.type}/{rid}", item)

    def resolve(self, reference: str, within: Optional[Item] = None) -> Optional[Item]:
        """The entry a reference names. A relative `Type/id` in an entry whose fullUrl is
        RESTful means that server's root + Type/id (FHIR's rules for resolving references in
        Bundles); where the entries have no such fullUrl, it means the entry with that id."""
        reference = _without_version(reference)
        found = self.by_url.get(reference)
        if found is not None or "://" in reference or reference.startswith(("urn:", "#")):
            return found
        root = _root(within.full_url) if within is not None else None
        if root is not None and root + reference in self.by_url:
            return self.by_url[root + reference]
        found = self.by_key.get(reference)
        if found is not None and root is not None and _root(found.full_url) not in (None, root):
            return None  # Patient/23 on another server is not this one's Patient/23
        return found


def _joined(items: List[Item], source: str, line, index: "_BundleIndex", as_of) -> Iterator[FhirCase]:
    patients = [item for item in items if item.type == "Patient"]
    joined = {id(patient): [] for patient in patients}
    named: Dict[object, List[Item]] = {}  # a Patient's name (id, else fullUrl) -> the Patients of that name
    for patient in patients:
        named.setdefault(_patient_id(patient) or id(patient), []).append(patient)
    for item in items:
        if item.type in ("Patient", "Medication") or item.type not in READ_TYPES:
            continue
        element, reference = _subject(item)
        target = index.resolve(reference, item) if reference else None
        if target is None or target.type != "Patient" or id(target) not in joined:
            yield _orphan(item, element, reference)
            continue
        joined[id(target)].append(item)
    if not patients and not any(i.type in READ_TYPES and i.type not in ("Patient", "Medication") for i in items):
        yield FhirCase(
            None,
            source,
            line,
            None,
            [
                SourceError(
                    "the Bundle holds no Patient and no resource ivig reads (" + ", ".join(READ_TYPES) + ")",
                    source,
                    line,
                    "Bundle.entry",
                )
            ],
        )
        return

    def medication(item: Item, reference: str) -> Optional[Item]:
        found = _contained(item, reference) if reference.startswith("#") else index.resolve(reference, item)
        return found if found is not None and found.type == "Medication" else None

    for patient in patients:
        same = named[_patient_id(patient) or id(patient)]
        if len(same) > 1:
            yield _duplicate(patient, same, _entry_place)
        else:
            yield _case(patient, joined[id(patient)], medication, as_of)


def _duplicate(patient: Item, same: List[Item], place: Callable[[Item], str]) -> FhirCase:
    """The error of one of several Patients with one name (id, or fullUrl without one): which of
    them the resources naming it belong to cannot be told, so none is read (never advice for
    one of them with the other's record). Each is named by `place`."""
    rid = patient.resource.get("id")
    name = f"the id {rid}" if isinstance(rid, str) and rid else f"the fullUrl {patient.full_url}"
    return FhirCase(
        None,
        patient.source,
        patient.line,
        _patient_id(patient),
        [
            patient.error(
                f"{len(same)} Patients have {name} ({', '.join(place(p) for p in same)}): one record is one patient, "
                "so none of them is read"
            )
        ],
    )


def _entry_place(item: Item) -> str:
    """Where a Bundle entry is: its path, and its fullUrl when it has one."""
    return item.path + (f" ({item.full_url})" if item.full_url else "")


def _line_place(item: Item) -> str:
    """Where a line of an export is: file:line."""
    return f"{os.path.basename(item.source)}:{item.line}"


def _orphan(item: Item, element: str, reference: Optional[str], why: Optional[str] = None) -> FhirCase:
    problem = (
        f"its {element} {shown(reference)} is no Patient in the input"
        if reference
        else f"it has no {element} reference, so it belongs to no Patient"
    )
    if why:
        problem += f": {why}"
    # its id: Observation/14, or its fullUrl when it has one (two servers' Observation/14 are two resources)
    return FhirCase(
        None,
        item.source,
        item.line,
        item.full_url or item.ref,
        [item.error(problem, f"{element}.reference" if reference else element)],
    )


def _case(patient: Item, items: List[Item], medication, as_of) -> FhirCase:
    """A Patient's case, pending: the Medications its resources name are found now, while the
    join's indexes are at hand; the mapping runs when the case is built."""
    medications = {}
    for i, item in enumerate(items):
        target = medication_reference(item.resource)
        if item.type in ("MedicationRequest", "MedicationStatement") and target is not None:
            found = medication(item, target)
            if found is not None:
                medications[(i, target)] = found
    return FhirCase(
        None, patient.source, patient.line, _patient_id(patient), pending=Pending(patient, items, medications, as_of)
    )


def _patient_id(patient: Item) -> Optional[str]:
    """A Patient's case id: its id, else its entry's fullUrl (urn:uuid:...); None: the reader's name:N."""
    rid = patient.resource.get("id")
    return rid if isinstance(rid, str) and rid else patient.full_url


# -- Bulk Data exports -----------------------------------------------------------------


def export_base(request: str) -> Optional[str]:
    """The server base of a Bulk export's kick-off request URL: https://x/fhir/ of
    https://x/fhir/Patient/$export?... or https://x/fhir/Group/7/$export."""
    path = request.split("?", 1)[0]
    if "$export" not in path:
        return None
    parts = path.split("$export", 1)[0].rstrip("/").split("/")
    if parts and parts[-1] == "Patient":
        parts = parts[:-1]
    elif len(parts) >= 2 and parts[-2] == "Group":
        parts = parts[:-2]
    return "/".join(parts) + "/"


def bulk_cases(
    lines: Iterable[Tuple[str, int, object]], as_of: Optional[dt.date] = None, base: Optional[str] = None
) -> Iterator[FhirCase]:
    """The cases of a Bulk Data export, given as (source, line, parsed resource or SourceError)
    for every line of its NDJSON files. Errors of single lines come first, as they are read;
    then one case per Patient, in the order of the Patients; then resources whose subject is no
    Patient of the export."""
    with tempfile.TemporaryDirectory(prefix="ivig-bulk-") as directory:
        db = sqlite3.connect(os.path.join(directory, "join.sqlite"))
        try:
            yield from _bulk(db, lines, as_of, base)
        finally:
            db.close()


_TABLES = """
pragma journal_mode = off;
pragma synchronous = off;
create table patient (seq integer primary key, key text unique, source text, line integer, body text);
create table resource (seq integer primary key, patient text, source text, line integer, path text, body text);
create table medication (key text primary key, source text, line integer, body text);
create table duplicate (seq integer primary key, key text, source text, line integer, body text);
create index duplicate_key on duplicate (key);
"""


def _foreign(reference: str, base: Optional[str]) -> bool:
    """Whether an export's reference is absolute and not rooted in the export's server (a base
    the manifest gives): another server's Patient/1 is not this one's, and without a base an
    absolute reference cannot be told from one."""
    return "://" in reference and (base is None or not reference.startswith(base))


def _bulk(db, lines, as_of, base: Optional[str]) -> Iterator[FhirCase]:
    """Reads the export's lines into `db` (yielding their errors as they come), then joins it:
    the Patients' cases in the order of the Patients, then the resources of no Patient."""
    db.executescript(_TABLES)
    for source, number, value in lines:
        yield from _read_line(db, source, number, value, as_of, base)
    db.execute("create index resource_patient on resource (patient, seq)")
    yield from _patient_cases(db, as_of, base)
    yield from _resources_of_no_patient(db)


def _read_line(db, source: str, number: int, value, as_of, base: Optional[str]) -> Iterator[FhirCase]:
    """One line of an export: its error, or the cases of a Bundle on it, or its resource kept in `db`."""
    at = f"{os.path.basename(source)}:{number}"  # the id of a line's own error: where it is
    if isinstance(value, SourceError):
        yield FhirCase(None, source, number, at, [value])
        return
    if not is_fhir(value):
        message = "a line of a FHIR export that is no FHIR resource (it names no resourceType)"
        yield FhirCase(None, source, number, at, [SourceError(message, source, number)])
        return
    rtype = value["resourceType"]
    if rtype == "Bundle":  # a whole record on one line: read as any Bundle
        yield from bundle_cases(value, source, number, as_of)
        return
    if not is_resource_type(rtype):
        error = SourceError(f"{shown(rtype)} is not a FHIR R4 resource type", source, number, "resourceType")
        yield FhirCase(None, source, number, at, [error])
        return
    body = json.dumps(value, ensure_ascii=False)
    item = Item(value, source, number, rtype)
    if rtype == "Patient":
        yield from _keep_patient(db, item, body, at)
    elif rtype == "Medication":
        _keep_medication(db, item, body)
    elif rtype in READ_TYPES:
        yield from _keep_resource(db, item, body, base)


def _keep_patient(db, item: Item, body: str, at: str) -> Iterator[FhirCase]:
    """Keeps a Patient in `db` (a second one of its id as a duplicate), or yields why it cannot be joined."""
    rid = item.resource.get("id")
    if not isinstance(rid, str) or not rid:
        error = item.error("a Patient without an id cannot be joined to its resources", "id")
        yield FhirCase(None, item.source, item.line, at, [error])
        return
    row = (f"Patient/{rid}", item.source, item.line, body)
    try:  # the unique key, not a set in memory: memory stays flat in the number of patients
        db.execute("insert into patient (key, source, line, body) values (?, ?, ?, ?)", row)
    except sqlite3.IntegrityError:  # each of them is an error, where the first would have been a case
        db.execute("insert into duplicate (key, source, line, body) values (?, ?, ?, ?)", row)


def _keep_medication(db, item: Item, body: str) -> None:
    """Keeps a Medication with an id in `db` (the first of that id), for the resources that name it."""
    rid = item.resource.get("id")
    if isinstance(rid, str) and rid:
        db.execute(
            "insert or ignore into medication values (?, ?, ?, ?)", (f"Medication/{rid}", item.source, item.line, body)
        )


def _keep_resource(db, item: Item, body: str, base: Optional[str]) -> Iterator[FhirCase]:
    """Keeps a resource in `db` under the Patient it names, or yields why it belongs to no Patient of the export."""
    element, reference = _subject(item)
    key = local_key(reference)
    if key is None or not key.startswith("Patient/"):
        yield _orphan(item, element, reference)
        return
    if _foreign(reference, base):
        yield _orphan(
            item,
            element,
            reference,
            "an absolute reference to a server this export is not from"
            if base
            else "an absolute reference, and no manifest beside the export says "
            "which server it is from (put the export's manifest .json beside its files)",
        )
        return
    db.execute(
        "insert into resource (patient, source, line, path, body) values (?, ?, ?, ?, ?)",
        (key, item.source, item.line, item.type, body),
    )


def _export_medication(db, base: Optional[str]) -> Callable[[Item, str], Optional[Item]]:
    """Finds the Medication a resource of the export names: contained in it, or kept in `db`."""

    def medication(item: Item, reference: str) -> Optional[Item]:
        if reference.startswith("#"):
            return _contained(item, reference)
        if _foreign(reference, base):
            return None
        key = local_key(reference)
        row = db.execute("select source, line, body from medication where key = ?", (key,)).fetchone()
        return Item(json.loads(row[2]), row[0], row[1], "Medication") if row else None

    return medication


def _patient_cases(db, as_of, base: Optional[str]) -> Iterator[FhirCase]:
    """One case per Patient kept in `db`, in the export's order; Patients sharing an id give an error each."""
    medication = _export_medication(db, base)
    for key, source, number, body, twice in db.execute(
        "select key, source, line, body, exists (select 1 from duplicate where duplicate.key = patient.key) "
        "from patient order by seq"
    ):
        if twice:
            same = [Item(json.loads(body), source, number, "Patient")] + [
                Item(json.loads(b), s, n, "Patient")
                for s, n, b in db.execute("select source, line, body from duplicate where key = ? order by seq", (key,))
            ]
            yield from (_duplicate(patient, same, _line_place) for patient in same)
            continue
        items = [
            Item(json.loads(b), s, n, p)
            for s, n, p, b in db.execute(
                "select source, line, path, body from resource where patient = ? order by seq", (key,)
            )
        ]
        yield _case(Item(json.loads(body), source, number, "Patient"), items, medication, as_of)


def _resources_of_no_patient(db) -> Iterator[FhirCase]:
    """The error of each resource kept in `db` whose Patient is not in the export, in the export's order."""
    for source, number, path, body in db.execute(
        "select source, line, path, body from resource where patient not in (select key from patient) order by seq"
    ):
        item = Item(json.loads(body), source, number, path)
        yield _orphan(item, *_subject(item))
