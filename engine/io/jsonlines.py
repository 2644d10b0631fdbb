"""JSON Lines (and NDJSON): a case per line, read a line at a time. A line too long to be a case
is skipped without being held, and an undecodable byte or a broken value costs its own line only."""

from typing import Iterable, Iterator, Tuple

from ..base.errors import SourceError
from .documents import records_or_error
from .jsonparse import parse_json
from .record import CaseRecord
from .stream import BLOCK, MAX_CASE_CHARS, PeekedBytes, undecodable


def _binary_lines(raw: PeekedBytes) -> Iterator[Tuple[int, object]]:
    """(number, bytes) per line; a line longer than MAX_CASE_CHARS is skipped
    whole and given as a SourceError instead, so it never fills memory."""
    number = 0
    while True:
        line = raw.readline(MAX_CASE_CHARS + 1)
        if not line:
            return
        number += 1
        if len(line) > MAX_CASE_CHARS and not line.endswith(b"\n"):
            while line and not line.endswith(b"\n"):
                line = raw.readline(BLOCK)
            yield (
                number,
                SourceError(f"a line of more than {MAX_CASE_CHARS:,} characters: too large to be a case", None, number),
            )
            continue
        yield number, line


def _decoded(lines: Iterable[Tuple[int, object]]) -> Iterator[Tuple[int, object]]:
    """Each line decoded on its own: one undecodable byte costs one line, not the file."""
    for number, line in lines:
        if isinstance(line, bytes):
            try:
                line = line.decode("utf-8")
            except UnicodeDecodeError as exc:
                line = SourceError(undecodable(line, exc), None, number)
        yield number, line


def read_jsonl(lines: Iterable[Tuple[int, object]], source: str, name: str) -> Iterator[CaseRecord]:
    """One case per line; blank lines are skipped, and each line's error is its own."""
    for number, text in lines:
        if isinstance(text, SourceError):
            text.source = source
            yield CaseRecord(None, source, number, name, text)
            continue
        if not text.strip(" \t\r\n"):
            continue
        text = text.rstrip("\r\n")  # the line's end is not part of its value: an error there is on this line
        yield from records_or_error(
            lambda text=text, number=number: [CaseRecord(parse_json(text, source, number), source, number, name)],
            source,
            number,
            name,
        )


def stream_lines(raw: PeekedBytes) -> Iterator[Tuple[int, object]]:
    """(number, text) per line of a binary stream, or (number, SourceError) for a line that is too long or not UTF-8."""
    return _decoded(_binary_lines(raw))
