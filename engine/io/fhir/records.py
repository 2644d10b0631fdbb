"""FHIR among the case records read: each Bundle (or lone resource) gives a case per Patient, and a
stream of resources (a Bulk Data export's NDJSON files, or standard input that starts with a
resource) is joined into a case per Patient (bundles.py); whatever the FHIR reader raises is one
more error record, never the run's end."""

import itertools
import json
from pathlib import Path
from typing import Iterable, Iterator, Optional

from ...base.errors import SourceError
from ...base.yamlsrc import shown
from ..record import STDIN_NAME, CaseRecord
from ..stream import MAX_CASE_CHARS
from . import bundles


def fhir_records(records: Iterable[CaseRecord], as_of, defer: bool = False) -> Iterator[CaseRecord]:
    """The records of a file or of standard input, with FHIR turned into cases: each Bundle (or
    lone resource) into a case per Patient; standard input whose first record is a resource
    other than a Bundle, as a stream of resources joined per Patient. `defer`: a Patient's case
    comes pending, to be read from its resources where it is evaluated (CaseRecord.resolved)."""
    records = iter(records)
    first = next(records, None)
    if first is None:
        return
    records = itertools.chain([first], records)
    if (
        first.error is None
        and bundles.is_fhir(first.data)
        and first.data["resourceType"] != "Bundle"
        and first.source == STDIN_NAME
    ):
        yield from _joined(records, first.default_id, as_of, None, defer)
        return
    for record in records:
        if record.error is None and bundles.is_bulk_manifest(record.data):
            continue  # the export's table of contents, beside its NDJSON files: no case
        if record.error is None and bundles.is_fhir(record.data):
            yield from _from_fhir(
                bundles.bundle_cases(record.data, record.source, record.line, as_of),
                record.default_id,
                record.source,
                defer,
            )
        else:
            yield record


def export_records(
    records: Iterable[CaseRecord], name: str, as_of, base: Optional[str], defer: bool = False
) -> Iterator[CaseRecord]:
    """The records of a Bulk Data export's NDJSON files, joined into a case per Patient; a case
    without an id of its own is `name:N`. `base`: the server the export came from (manifest_base)."""
    records = iter(records)
    first = next(records, None)
    if first is None:
        return
    yield from _joined(itertools.chain([first], records), name or first.default_id, as_of, base, defer)


def manifest_base(directory: str) -> Optional[str]:
    """The server base of a Bulk export, from the manifest beside its files (its `request`
    URL, up to the resource or Group the export was asked of), or None without one."""
    for path in sorted(Path(directory).glob("*.json")):
        try:
            if path.stat().st_size > MAX_CASE_CHARS:
                continue
            manifest = json.loads(path.read_text(encoding="utf-8-sig"))
        except (OSError, ValueError):
            continue
        if bundles.is_bulk_manifest(manifest) and isinstance(manifest.get("request"), str):
            return bundles.export_base(manifest["request"])
    return None


def _joined(records: Iterable[CaseRecord], name: str, as_of, base: Optional[str], defer: bool) -> Iterator[CaseRecord]:
    """A stream of resources (each record one, or the error of its line) joined into a case per Patient."""
    lines = ((r.source, r.line, r.error if r.error is not None else r.data) for r in records)
    yield from _from_fhir(bundles.bulk_cases(lines, as_of, base), name, defer=defer)


def _from_fhir(cases, name: str, source: Optional[str] = None, defer: bool = False) -> Iterator[CaseRecord]:
    """FhirCases as records; whatever the FHIR reader raises (a shape nothing foresaw) is one
    more error record, never the run's end. `defer`: a Patient's case is read from its
    resources where it is evaluated (CaseRecord.resolved), not here."""
    number = 0
    try:
        for number, case in enumerate(cases, start=1):
            default_id = case.id or f"{name}:{number}"
            if case.pending is not None and defer:
                yield CaseRecord(None, case.source, case.line, default_id, pending=case.pending, id=case.id)
            else:
                yield CaseRecord.of_fhir(case.built(), default_id)
    except Exception as exc:
        yield CaseRecord(
            None,
            source or name,
            None,
            f"{name}:{number + 1}",
            SourceError(f"cannot be read as FHIR: {type(exc).__name__}: {shown(exc, 200)}", source or name),
        )
