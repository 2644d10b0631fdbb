"""What a parsed document gives as case records: one case (a mapping), a list of cases, or
{cases: [...]}; and a value whose parsing fails, as one error record in its place. The JSON,
JSON Lines and YAML readers share these."""

from typing import Iterator

from ..base.errors import SourceError
from ..base.yamlsrc import shown
from .record import CaseRecord


def records_or_error(read, source, line, name) -> Iterator[CaseRecord]:
    """The records `read()` gives, or one error record for whatever it raised."""
    try:
        records = list(read())
    except SourceError as exc:
        records = [CaseRecord(None, source, exc.line or line, name, exc)]
    except Exception as exc:
        records = [
            CaseRecord(
                None,
                source,
                line,
                name,
                SourceError(f"cannot be read: {type(exc).__name__}: {shown(exc, 200)}", source, line),
            )
        ]
    yield from records


def cases_of(document, source, name, line) -> Iterator[CaseRecord]:
    """A document holds one case (a mapping), a `cases:` list, or a list of cases."""
    if isinstance(document, dict) and set(document) == {"cases"}:
        items = document["cases"]
        if not isinstance(items, list):
            yield CaseRecord(None, source, line, name, SourceError("'cases' must be a list", source, line, "cases"))
            return
    elif isinstance(document, list):
        items = document
    else:
        yield CaseRecord(document, source, line, name)
        return
    for i, item in enumerate(items):
        at = getattr(item, "line", None) or (items.line_of(i) if hasattr(items, "line_of") else line)
        yield CaseRecord(item, source, at, name)
