"""Reading case files: YAML (one or many documents), JSON, JSONL, directories, stdin.

Everything streams: cases are yielded one at a time, in file order, so a
100,000-line JSONL export is never held in memory. Each yielded record is
either a case mapping with where it came from, or an error that says where;
a broken line or document never hides the cases around it.
"""

import itertools
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Optional

from .yamlsrc import SourceError, load_all, load_one

CASE_SUFFIXES = {".yaml": "yaml", ".yml": "yaml", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl"}
STDIN = "-"


@dataclass
class CaseRecord:
    """One case as read: its data, or the error that kept it from being read."""
    data: object
    source: str
    line: Optional[int]
    default_id: str
    error: Optional[SourceError] = None


def expand_paths(paths: Iterable[str]) -> Iterator[str]:
    """Files named, and the case files below directories named (sorted, recursive)."""
    for path in paths:
        if path == STDIN:
            yield path
            continue
        p = Path(path)
        if p.is_dir():
            for child in sorted(p.rglob("*")):
                if child.is_file() and child.suffix.lower() in CASE_SUFFIXES:
                    yield str(child)
        else:
            yield path


def read_cases(paths: Iterable[str], stdin=None) -> Iterator[CaseRecord]:
    """Every case of every path, in order."""
    for path in expand_paths(paths):
        yield from _numbered(_read_path(path, stdin))


def read_jsonl_lines(lines: Iterable[str], source: str) -> Iterator[CaseRecord]:
    """The cases of a JSON Lines file given as its lines, as `read_cases` reads them
    (line numbers from 1, ids 'name:N'): for readers that hold the lines already."""
    return _numbered(_read_jsonl(lines, source, Path(source).name))


def _numbered(records: Iterator[CaseRecord]) -> Iterator[CaseRecord]:
    """Give ids 'name:N' when a file holds several cases, plain 'name' when one."""
    first = next(records, None)
    if first is None:
        return
    second = next(records, None)
    if second is None:
        yield first
        return
    for n, record in enumerate(itertools.chain([first, second], records), start=1):
        record.default_id = f"{record.default_id}:{n}"
        yield record


def _read_path(path: str, stdin) -> Iterator[CaseRecord]:
    name = "<stdin>" if path == STDIN else Path(path).name
    source = "<stdin>" if path == STDIN else path
    if path == STDIN:
        yield from _read_stdin(stdin or sys.stdin, source, name)
        return
    kind = CASE_SUFFIXES.get(Path(path).suffix.lower())
    if kind is None:
        yield CaseRecord(None, source, None, name, SourceError(
            "not a case file: use .yaml, .yml, .json or .jsonl", source))
        return
    try:
        handle = open(path, encoding="utf-8")
    except OSError as exc:
        yield CaseRecord(None, source, None, name, SourceError(f"cannot read: {exc.strerror}", source))
        return
    with handle:
        try:
            if kind == "jsonl":
                yield from _read_jsonl(handle, source, name)
            elif kind == "json":
                yield from _read_json(handle.read(), source, name)
            else:
                yield from _read_yaml(handle, source, name)
        except UnicodeDecodeError:
            yield CaseRecord(None, source, None, name, SourceError("not UTF-8 text", source))


def _read_stdin(stream, source, name) -> Iterator[CaseRecord]:
    first = stream.readline()
    while first and not first.strip():
        first = stream.readline()
    if first.lstrip().startswith("{"):
        try:
            json.loads(first)
        except ValueError:
            pass
        else:  # a whole object on the first line: JSON Lines
            yield from _read_jsonl(itertools.chain([first], stream), source, name)
            return
    yield from _read_yaml(first + stream.read(), source, name)


def _read_jsonl(lines, source, name) -> Iterator[CaseRecord]:
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            data = json.loads(text)
        except ValueError as exc:
            yield CaseRecord(None, source, number, name,
                             SourceError(f"not valid JSON: {getattr(exc, 'msg', exc)}", source, number))
            continue
        yield CaseRecord(data, source, number, name)


def _read_json(text, source, name) -> Iterator[CaseRecord]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        yield CaseRecord(None, source, getattr(exc, "lineno", None), name, SourceError(
            f"not valid JSON: {getattr(exc, 'msg', exc)}", source, getattr(exc, "lineno", None)))
        return
    try:  # valid JSON is read again through the line-keeping loader, for error lines
        data = load_one(text, source)
    except SourceError:
        pass  # JSON that YAML cannot read: keep the plain data, without lines
    yield from _cases_of(data, source, name, getattr(data, "line", 1))


def _read_yaml(stream, source, name) -> Iterator[CaseRecord]:
    """`stream` is text or an open file; documents are parsed one at a time."""
    try:
        for document in load_all(stream, source):
            if document is None:
                continue
            yield from _cases_of(document, source, name, getattr(document, "line", None))
    except SourceError as exc:
        yield CaseRecord(None, source, exc.line, name, exc)


def _cases_of(document, source, name, line) -> Iterator[CaseRecord]:
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
