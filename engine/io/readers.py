"""One input handed to the reader of its format: a file by its name's suffix, standard input by
its first line (sniffing), YAML a document at a time, and the meter told what is being read."""

from pathlib import Path
from typing import Iterator, Optional

from ..base.errors import SourceError
from ..base.yamlsrc import read_documents
from .csvcases import read_csv
from .documents import cases_of
from .jsonlines import read_jsonl, stream_lines
from .jsonstream import read_json
from .meter import ReadMeter
from .record import STDIN_NAME, CaseRecord
from .sniffing import CASE_SUFFIXES, sniff_stdin
from .stream import EncodedText, Utf8Text, utf8_stream


def read_path(path: str, name: str, meter: Optional[ReadMeter] = None) -> Iterator[CaseRecord]:
    """The records of the file at `path`, read as its name's suffix says; `meter` follows its bytes."""
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


def read_stdin(stdin, name: str) -> Iterator[CaseRecord]:
    """Standard input, read as it arrives, in the format its first line says (sniffing.sniff_stdin)."""
    raw = getattr(stdin, "buffer", None) or EncodedText(stdin)
    stream, error = utf8_stream(raw, STDIN_NAME)
    if error:
        yield CaseRecord(None, STDIN_NAME, 1, STDIN_NAME, error)
        return
    kind, stream = sniff_stdin(stream)
    yield from _read_stream(stream, kind, STDIN_NAME, STDIN_NAME)


def _read_stream(raw, kind: str, source: str, name: str) -> Iterator[CaseRecord]:
    """The records of a binary stream in the format `kind` (a value of CASE_SUFFIXES)."""
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


def _read_yaml(text, source, name) -> Iterator[CaseRecord]:
    """`text` is a string or a `Utf8Text`; documents are parsed one at a time, and a
    document that cannot be built is one error, the others still read."""
    for document, line, error in read_documents(text, source):
        if error is not None:
            yield CaseRecord(None, source, error.line or line, name, error)
        elif document is not None:
            yield from cases_of(document, source, name, line)
