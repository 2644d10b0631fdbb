"""Reading cases, the entry points: read_cases (every case of files, folders and standard input),
pick_case (the one case a command works on) and read_jsonl_lines (lines held already). The
modules beside this one do the work: plan (what to read), readers (each format), guard (what
every input's records pass through), fhir/records (FHIR cases).

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
import sys
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional

from ..base.errors import CaseChoice, CaseInvalid, SourceError
from .fhir.records import export_records, fhir_records, manifest_base
from .guard import EMPTY_FILE, guarded
from .jsonlines import read_jsonl
from .meter import ReadMeter
from .plan import ReadExport, ReadStdin, Unreadable, plan_reading
from .readers import read_path, read_stdin
from .record import STDIN_NAME, CaseRecord


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
    stdin = stdin or sys.stdin
    work = plan_reading(paths, exclude, notes)
    if meter is not None and any(isinstance(item, ReadStdin) for item in work):
        meter.reading_stdin(stdin)  # before anything is read (a file read later takes the meter over)
    read_file = functools.partial(read_path, meter=meter)
    for item in work:
        if isinstance(item, Unreadable):
            yield CaseRecord(None, item.path, None, item.name, SourceError(item.why, item.path))
        elif isinstance(item, ReadExport):
            records = _export_files(item, read_file)
            yield from export_records(records, item.files[0].name, as_of, manifest_base(item.directory), defer_fhir)
        elif isinstance(item, ReadStdin):
            yield from fhir_records(guarded(read_stdin, stdin, STDIN_NAME, STDIN_NAME), as_of, defer_fhir)
        else:
            yield from fhir_records(guarded(read_file, item.path, item.path, item.name), as_of, defer_fhir)


def _export_files(export: ReadExport, read_file) -> Iterator[CaseRecord]:
    """The records of an export's files, one file after another; a file that holds no resource is
    no error (the export had none of its type)."""
    for file in export.files:
        for record in guarded(read_file, file.path, file.path, file.name):
            if not (record.error is not None and record.error.message == EMPTY_FILE):
                yield record


def read_jsonl_lines(lines: Iterable[str], source: str) -> Iterator[CaseRecord]:
    """The cases of a JSON Lines file given as its lines, as `read_cases` reads them
    (line numbers from 1, ids 'name:N'): for readers that hold the lines already."""
    name = Path(source).name

    def numbered():
        for number, text in enumerate(lines, start=1):
            yield number, (text[1:] if number == 1 and text.startswith("\ufeff") else text)

    return guarded(lambda _lines, _name: read_jsonl(numbered(), source, name), None, source, name)
