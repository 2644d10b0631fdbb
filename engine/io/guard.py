"""What every input's records pass through on their way out: a text holding a lone surrogate made
the record's error, ids numbered ``name:N`` when the input holds several (a scenario's own name
instead), the scenario's keys taken off, an input without a case one error record, and whatever
a reader raises that no reader foresaw one error record, so the next input is read all the same."""

import json
from typing import Iterator

from ..base.errors import SourceError
from ..base.escape import LONE_SURROGATE, lone_surrogate_at
from ..base.yamlsrc import shown
from .record import STDIN_NAME, CaseRecord
from .scenario import scenario_apart

EMPTY_FILE, EMPTY_STDIN = "the file holds no case", "standard input holds no case"


def guarded(read, what, source: str, name: str) -> Iterator[CaseRecord]:
    """The records of ``read(what, name)``: one file's, with ids 'name:N' when it
    holds several (a scenario's own name instead, when it has one); one error
    record when it holds none, or when reading it fails in a way no reader
    below foresaw (the next file is read all the same)."""
    return map(scenario_apart, _numbered(read, what, source, name))


def _numbered(read, what, source: str, name: str) -> Iterator[CaseRecord]:
    """The records of ``read(what, name)``, each checked whole, with their ids numbered (see guarded)."""
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
