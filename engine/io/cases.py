"""Reading case files: YAML (one or many documents), JSON, JSONL, CSV, directories, stdin.

Everything streams: cases are yielded one at a time, in file order, and no
file or standard input is ever held whole (a JSON array is read element by
element, YAML a block at a time, JSON Lines a line at a time). Each yielded
record is either a case mapping with where it came from, or an error that
says where; whatever one line, element, document or file raises becomes that
record's error, so a broken case never hides the cases around it.

Input is UTF-8 (a byte-order mark is accepted); UTF-16 and UTF-32 are named,
not misread. JSON is read strictly: duplicate keys, NaN and Infinity are
refused, with the line of every key kept for error messages. CSV is a
header row of field names and a case per row; its cells are text, which the
schema reads as it reads an interview's answers (schema.read_value).
"""

import datetime
import functools
import json
import os
import sys
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional

from ..base.errors import CaseChoice
from ..base.escape import LONE_SURROGATE, lone_surrogate_at
from ..base.yamlsrc import SourceError, read_documents, shown
from ..core.schema import CaseInvalid
from .csvcases import read_csv
from .documents import cases_of
from .fhir.records import export_records, fhir_records, manifest_base
from .jsonlines import read_jsonl, stream_lines
from .jsonstream import read_json
from .meter import ReadMeter
from .record import STDIN, STDIN_NAME, CaseRecord
from .scenario import scenario_apart
from .sniffing import CASE_SUFFIXES, is_fhir_export_file, sniff_stdin
from .stream import EncodedText, Utf8Text, utf8_stream
from .walk import case_files, name_below

EMPTY_FILE, EMPTY_STDIN = "the file holds no case", "standard input holds no case"


def pick_case(records: Iterable[CaseRecord], wanted: Optional[str], source, schema) -> CaseRecord:
    """The one record a command that takes one case works on: the only one in the
    file, or the one whose id (`CaseRecord.case_id`) is `wanted`; else CaseChoice.

    A file with several cases is refused rather than silently cut to its
    first: the clinician would go on with another patient's answers. When the
    cases to choose among all have errors, their errors are the reason, not the
    choice (CaseInvalid): two Patients of one record with one id are two error
    records, and `--id` cannot tell them apart.
    """
    records = list(records)
    ids = [r.case_id(schema) for r in records]
    listed = ", ".join(ids[:10]) + (", ..." if len(ids) > 10 else "")
    if not records:
        raise CaseChoice(f"{source}: no case in the file")
    among = records if wanted is None else [r for r, i in zip(records, ids) if i == wanted]
    if len(among) > 1 and all(r.error is not None for r in among):
        raise CaseInvalid([error for r in among for error in (r.error, *r.others)])
    if wanted is None:
        if len(records) > 1:
            raise CaseChoice(f"{source} holds {len(records)} cases ({listed}); choose one with --id")
        return records[0]
    chosen = [r for r, i in zip(records, ids) if i == wanted]
    if len(chosen) != 1:
        raise CaseChoice(
            f"{source}: {'no case' if not chosen else f'{len(chosen)} cases'} with the id {wanted!r} (cases: {listed})"
        )
    return chosen[0]


def read_cases(
    paths: Iterable[str],
    stdin=None,
    exclude: Optional[str] = None,
    as_of: Optional[datetime.date] = None,
    defer_fhir: bool = False,
    meter: Optional[ReadMeter] = None,
    notes: Optional[Callable[[str], None]] = None,
) -> Iterator[CaseRecord]:
    """Every case of every path, in order; `exclude` names a file never read
    from a directory (the output of the run, so that it never reads its own
    results back). A directory is read as `walk` says: what it cannot read is an
    error record naming it, and what it leaves out (a folder met again, an earlier
    run's results) is said to `notes`, one line each, if given.

    A case's default id is its file's name: the path below the directory
    given (``a/p.yaml``), or a file's own name; when that name was already
    used in this run, the path as given. Several cases in one file are
    ``name:N``.

    FHIR is recognised by content (io/fhir/bundles.py): a Bundle gives a case
    per Patient, and the NDJSON files of a Bulk Data export in one directory
    are read together as one export. `as_of` is the date ages are computed
    at from a Patient's birthDate (default: today). `defer_fhir`: FHIR cases come
    pending, to be read from their resources where they are evaluated (batch workers).
    `meter`, if given, follows how many bytes have been read (a progress line's share).
    """
    used = set()
    read_path = functools.partial(_read_path, meter=meter)

    def unique(name, path):
        name = path if name in used else name
        used.add(name)
        return name

    units = []  # in order: ("records", the records of a file or stdin, None) or ("export", [(file, name)], directory)
    exports = {}  # directory -> [(file, name)]: its FHIR NDJSON files, read as one export
    for path in paths:
        if path == STDIN:
            if meter is not None:
                meter.reading_stdin(stdin or sys.stdin)
            units.append(("records", _guarded(_read_stdin, stdin or sys.stdin, STDIN_NAME, STDIN_NAME), None))
            continue
        root = Path(path)
        if not root.is_dir():
            files = [(path, unique(root.name, path), None)]
        else:  # (file, name, why it could not be walked) in the walk's order
            files = [
                (str(e.path), unique(name_below(root, e.path), str(e.path)), e.why or None)
                for e in case_files(root, exclude, notes)
            ]
            if not files:
                units.append(
                    (
                        "records",
                        [
                            CaseRecord(
                                None,
                                path,
                                None,
                                unique(root.name, path),
                                SourceError(f"no case files ({', '.join(CASE_SUFFIXES)}) in this directory", path),
                            )
                        ],
                        None,
                    )
                )
        for file, name, unwalked in files:
            if unwalked is not None:
                units.append(("records", [CaseRecord(None, file, None, name, SourceError(unwalked, file))], None))
            elif is_fhir_export_file(file):
                group = os.path.abspath(os.path.dirname(file))  # as listed: a link joins the export it is in
                if group not in exports:
                    exports[group] = []
                    units.append(("export", exports[group], group))
                exports[group].append((file, name))
            else:
                units.append(("records", _guarded(read_path, file, file, name), None))
    for kind, unit, directory in units:
        if kind == "export":
            records = (
                r
                for f, n in unit
                for r in _guarded(read_path, f, f, n)
                if not (r.error is not None and r.error.message == EMPTY_FILE)
            )  # no resource of a type: fine
            yield from export_records(records, unit[0][1], as_of, manifest_base(directory), defer_fhir)
        else:
            yield from fhir_records(unit, as_of, defer_fhir)


def read_jsonl_lines(lines: Iterable[str], source: str) -> Iterator[CaseRecord]:
    """The cases of a JSON Lines file given as its lines, as `read_cases` reads them
    (line numbers from 1, ids 'name:N'): for readers that hold the lines already."""
    name = Path(source).name

    def numbered():
        for number, text in enumerate(lines, start=1):
            yield number, (text[1:] if number == 1 and text.startswith("\ufeff") else text)

    return _guarded(lambda _lines, _name: read_jsonl(numbered(), source, name), None, source, name)


def _whole_text(record: CaseRecord) -> CaseRecord:
    """The record, or its error when a text in it holds a lone surrogate
    (JSON's "\\udfff", YAML's "\\uDFFF"): not a character, it cannot be
    shown or written, and would stop the whole run at the output."""
    if record.data is None or not LONE_SURROGATE.search(_all_text(record.data)):
        return record  # most records: one pass in C, not a walk in Python (a FHIR resource is deep)
    steps = lone_surrogate_at(record.data)
    if steps is None:
        return record
    field = str(steps[0]) if steps and isinstance(record.data, dict) else None  # the case field it is in
    at = getattr(record.data, "line_of", lambda _: None)(field) or record.line
    field = LONE_SURROGATE.sub("?", field) if field else None
    return CaseRecord(
        None,
        record.source,
        at,
        record.default_id,
        SourceError(
            "a lone surrogate escape (such as \\udfff) is not a character: the text is damaged",
            record.source,
            at,
            field,
        ),
    )


def _all_text(data) -> str:
    """Every text of a parsed document, keys too, in one string (json.dumps keeps a lone surrogate as it is)."""
    try:
        return json.dumps(data, ensure_ascii=False, default=str)
    except (TypeError, ValueError, RecursionError):  # pragma: no cover - parsed documents serialise
        return "\ud800"  # let the walk decide


def _guarded(read, what, source: str, name: str) -> Iterator[CaseRecord]:
    """The records of ``read(what, name)``: one file's, with ids 'name:N' when it
    holds several (a scenario's own name instead, when it has one); one error
    record when it holds none, or when reading it fails in a way no reader
    below foresaw (the next file is read all the same)."""
    return map(scenario_apart, _numbered(read, what, source, name))


def _numbered(read, what, source: str, name: str) -> Iterator[CaseRecord]:
    count, first = 0, None
    try:
        for record in read(what, name):
            record = _whole_text(record)
            count += 1
            if count == 1:
                first = record  # held back: 'name' or 'name:1' is known at the second
                continue
            if count == 2:
                first.default_id = f"{first.default_id}:1"
                yield first
            record.default_id = f"{record.default_id}:{count}"
            yield record
    except Exception as exc:  # the last resort: this file's error, never the run's
        if count == 1:
            first.default_id = f"{first.default_id}:1"
            yield first
        count += 1
        yield CaseRecord(
            None,
            source,
            None,
            f"{name}:{count}" if count > 1 else name,
            SourceError(f"cannot be read: {type(exc).__name__}: {shown(exc, 200)}", source),
        )
        return
    if count == 1:
        yield first
    elif count == 0:
        yield CaseRecord(
            None, source, None, name, SourceError(EMPTY_STDIN if source == STDIN_NAME else EMPTY_FILE, source)
        )


# -- YAML ---------------------------------------------------------------------------


def _read_yaml(text, source, name) -> Iterator[CaseRecord]:
    """`text` is a string or a `Utf8Text`; documents are parsed one at a time, and a
    document that cannot be built is one error, the others still read."""
    for document, line, error in read_documents(text, source):
        if error is not None:
            yield CaseRecord(None, source, error.line or line, name, error)
        elif document is not None:
            yield from cases_of(document, source, name, line)


# -- files and standard input ---------------------------------------------------------


def _read_path(path: str, name: str, meter: Optional[ReadMeter] = None) -> Iterator[CaseRecord]:
    kind = CASE_SUFFIXES.get(Path(path).suffix.lower())
    if kind is None:
        yield CaseRecord(None, path, None, name, SourceError(f"not a case file: use {', '.join(CASE_SUFFIXES)}", path))
        return
    try:
        handle = open(path, "rb")
    except OSError as exc:
        yield CaseRecord(None, path, None, name, SourceError(f"cannot read: {exc.strerror}", path))
        return
    if meter is not None:
        meter.reading(handle)
    with handle:
        try:
            yield from _read_stream(handle, kind, path, name)
        finally:
            if meter is not None:
                meter.read(handle)


def _read_stream(raw, kind: str, source: str, name: str) -> Iterator[CaseRecord]:
    stream, error = utf8_stream(raw, source)
    if error:
        yield CaseRecord(None, source, 1, name, error)
    elif kind == "jsonl":
        yield from read_jsonl(stream_lines(stream), source, name)
    elif kind == "json":
        yield from read_json(Utf8Text(stream, source), source, name, _rewinder(raw, source))
    elif kind == "csv":
        yield from read_csv(stream, source, name)
    else:
        yield from _read_yaml(Utf8Text(stream, source), source, name)


def _rewinder(raw, source: str):
    """A function giving the text of a seekable input again from its start, or None (a pipe)."""
    if not getattr(raw, "seekable", lambda: False)():
        return None

    def rewind() -> Utf8Text:
        raw.seek(0)
        return Utf8Text(utf8_stream(raw, source)[0], source)  # its encoding was found fine the first time

    return rewind


def _read_stdin(stdin, name: str) -> Iterator[CaseRecord]:
    """Standard input, read as it arrives, in the format its first line says (sniffing.sniff_stdin)."""
    raw = getattr(stdin, "buffer", None) or EncodedText(stdin)
    stream, error = utf8_stream(raw, STDIN_NAME)
    if error:
        yield CaseRecord(None, STDIN_NAME, 1, STDIN_NAME, error)
        return
    kind, stream = sniff_stdin(stream)
    yield from _read_stream(stream, kind, STDIN_NAME, STDIN_NAME)
