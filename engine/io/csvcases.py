"""CSV case files: a header row of field names, then a case per row.

An empty cell is unknown; cells are text, which the schema reads as it reads an interview's
answers (schema.read_value). A row that cannot be read is its own error (csvlines); a header
that cannot be read, names a field twice or is a file of results ends the file."""

import csv
from typing import Iterator, Optional, Tuple

from ..base.errors import SourceError
from ..base.yamlsrc import MAX_SCALAR, Located, shown
from .csvlines import CsvLines, RowBroken, RowTooLarge
from .record import CaseRecord
from .stream import PeekedBytes

_READ_AGAIN = "; the lines after its first are read again, as rows of their own"


def read_csv(raw: PeekedBytes, source: str, name: str) -> Iterator[CaseRecord]:
    """A CSV file: the first row names the fields, each further row is a case.

    An empty cell is unknown; cells are text, read by the schema (a list
    field's items separated by ';'). Each row's line is the physical line it
    starts on, whatever quoted line breaks come before it. A row that cannot
    be read is its own error, and every line after its first is read again as
    a row (CsvLines); a header that cannot be read or names a field twice
    ends the file."""
    lines = CsvLines(raw)
    rows = csv.reader(lines, strict=True)
    header = None
    while True:
        start = lines.begin_row()
        row = _next_row(rows, lines)
        if row is None:
            return
        cells, problem = row
        if problem is not None:
            said = _said(problem, header is None, lines.gave_back)
            yield CaseRecord(None, source, start, name, SourceError(said, source, start))
            if header is None:
                return
            continue
        if not any(cell.strip() for cell in cells):
            continue  # a blank line, or a row of empty cells: no case
        if header is None:
            header, error = _csv_header(cells, source, start)
            if error:
                yield CaseRecord(None, source, start, name, error)
                return
            continue
        yield _csv_row(header, cells, source, start, name)


def _next_row(rows, lines: CsvLines) -> Optional[Tuple[Optional[list], Optional[str]]]:
    """The next row's cells and what keeps it from being read (None when it was read), or None
    at the end of the file. The row's bounds and broken quotes are told by `lines` (CsvLines)."""
    try:
        return next(rows), lines.problem
    except StopIteration:
        return None
    except csv.Error as exc:
        return None, lines.broken(str(exc))
    except RowTooLarge:
        return None, lines.too_large()
    except RowBroken as exc:
        return None, exc.message


def _said(problem: str, in_header: bool, gave_back: bool) -> str:
    """The error of a row that cannot be read: in the header it ends the file, elsewhere the
    lines it gave back are read again."""
    if in_header:
        return problem + "; the header row names the fields, so nothing in this file was read"
    return problem + (_READ_AGAIN if gave_back else "")


def _csv_header(cells, source: str, line: int):
    """(the field name of each column, '' for a column without one), or the error that ends the file."""
    names = [cell.strip() for cell in cells]
    seen = {}
    for column, field in enumerate(names, start=1):
        if field and field in seen:
            return None, SourceError(
                f"the header names {shown(field)} twice (columns {seen[field]} and {column}): "
                "nothing in this file was read",
                source,
                line,
                field,
            )
        seen.setdefault(field, column)
    named = [n for n in names if n]
    if len(named) == 1 and ";" in named[0]:
        return None, SourceError(
            f"the header {shown(named[0], 60)} is one column: separate the columns with "
            "commas (';' separates the items of a list in one cell)",
            source,
            line,
        )
    if {"status", "stance"} <= set(named):
        return None, SourceError("this is a file of results (ivig evaluate --format csv), not of cases", source, line)
    return names, None


def _csv_row(header, cells, source: str, line: int, name: str) -> CaseRecord:
    """One row as a case mapping: the fields of its cells that are not empty, all on the row's line."""
    data = Located()
    data.line, data.key_lines, data.texts = line, {}, {}
    for column, cell in enumerate(cells, start=1):
        text = cell.strip()
        if not text:
            continue
        field = header[column - 1] if column <= len(header) else ""
        problem = None
        if not field:
            problem = f"a value in column {column}, which the header does not name"
        elif "\x00" in text:
            problem = "a NUL byte in the cell: the file is damaged, or not text"
        elif len(text) > MAX_SCALAR:
            problem = f"a value of {len(text):,} characters (at most {MAX_SCALAR:,})"
        if problem:
            return CaseRecord(None, source, line, name, SourceError(problem, source, line, field or None))
        data[field] = text
        data.key_lines[field] = line
    return CaseRecord(data, source, line, name)
