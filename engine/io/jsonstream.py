"""A JSON file read element by element: one case, a list of cases, or {"cases": [...]}.

Values are cut out of the text by matching brackets outside strings and parsed one at a time
(jsonparse), so a file of any length takes little memory and a broken element costs itself."""

import json
import re
from typing import Iterator, Optional, Tuple

from ..base.errors import SourceError
from .documents import cases_of, records_or_error
from .jsonparse import WHITESPACE, duplicate_key, parse_json
from .record import CaseRecord
from .stream import BLOCK, MAX_CASE_CHARS, Utf8Text

MAX_DOCUMENT_CHARS = 32_000_000  # a JSON file that is one value: a FHIR Bundle holds a whole record
_TOKEN = re.compile(r'["\[\]{}]')
_STRING_PART = re.compile(r'[^"\\]*(?:\\.[^"\\]*)*', re.S)  # up to a closing quote or a lone backslash
_SCALAR_END = re.compile(r"[ \t\n\r,\]}]")
_CASES_HEAD = re.compile(r'\{[ \t\n\r]*("cases")[ \t\n\r]*:[ \t\n\r]*(?=\[)')  # up to its list's '['


class _Buffer:
    """Decoded text read a block at a time, with the line of the reading position.

    Values are cut out by matching brackets outside strings, so each one is
    parsed alone and only one (at most MAX_CASE_CHARS) is ever held."""

    def __init__(self, text: Utf8Text):
        self.reader, self.text, self.pos, self.line, self.eof = text, "", 0, 1, False

    def more(self) -> bool:
        """Read another block onto the end; False at the end of the input."""
        if self.eof:
            return False
        # as much again as is held: a value of n characters costs n, not n squared, in copies
        block = self.reader.read(max(BLOCK, len(self.text) - self.pos))
        if not block:
            self.eof = True
            return False
        self.text += block
        return True

    def compact(self) -> None:
        """Drop the text already read, now and then: never the cost of a copy per case."""
        if self.pos > BLOCK:
            self.text, self.pos = self.text[self.pos :], 0

    def advance(self, end: int) -> None:
        self.line += self.text.count("\n", self.pos, end)
        self.pos = end

    def peek(self) -> str:
        """The next character that is not white space ('' at the end), not consumed."""
        while True:
            self.advance(WHITESPACE.match(self.text, self.pos).end())
            if self.pos < len(self.text):
                return self.text[self.pos]
            self.compact()
            if not self.more():
                return ""

    def starts(self, pattern) -> Optional[int]:
        """Whether the text here matches `pattern` (consumed if so): the line of the match's
        first group, or None; reads enough to tell."""
        while len(self.text) - self.pos < 256 and self.more():
            pass
        match = pattern.match(self.text, self.pos)
        if not match:
            return None
        line = self.line + self.text.count("\n", self.pos, match.start(1))
        self.advance(match.end())
        return line

    def take(self, limit: int = MAX_CASE_CHARS) -> Tuple[Optional[str], int, Optional[SourceError]]:
        """The next value's text and line, or an error for it (it is skipped whole)."""
        self.peek()
        self.compact()
        line = self.line
        end = self._end(limit)
        if end is None:
            self.advance(len(self.text))
            return (
                None,
                line,
                SourceError(f"the input ends inside the value that starts on line {line}", self.reader.source, line),
            )
        if end < 0:
            too_large = (
                "too large to be a case"
                if limit == MAX_CASE_CHARS
                else "too large to read (a FHIR record this large: export it as Bulk Data NDJSON)"
            )
            return (
                None,
                line,
                SourceError(f"a value of more than {limit:,} characters: {too_large}", self.reader.source, line),
            )
        text = self.text[self.pos : end]
        self.advance(end)
        return text, line, None

    def _end(self, limit: int = MAX_CASE_CHARS) -> Optional[int]:
        """Where the value at `pos` ends: scanned once, brackets counted outside
        strings. None if the input ends first; -1 (having skipped it, holding
        none of it) if it is larger than a case can be."""
        i, depth, in_string, skipped = self.pos, 0, False, False
        scalar = self.text[self.pos : self.pos + 1] not in ("[", "{", '"')  # a number, a literal or junk
        while True:
            if len(self.text) - self.pos > limit:
                self.advance(i)
                self.text, self.pos, i, skipped = self.text[i:], 0, 0, True
            if scalar:
                found = _SCALAR_END.search(self.text, i)
                if found:
                    return self._ended(found.start(), skipped)
                i = len(self.text)
            elif in_string:
                i = _STRING_PART.match(self.text, i).end()
                if self.text[i : i + 1] == '"':
                    in_string, i = False, i + 1
                    if depth == 0:
                        return self._ended(i, skipped)
                    continue
            else:
                token = _TOKEN.search(self.text, i)
                if token:
                    i = token.end()
                    if token.group() == '"':
                        in_string = True
                        continue
                    depth += 1 if token.group() in "[{" else -1
                    if depth <= 0:
                        return self._ended(i, skipped)
                    continue
                i = len(self.text)
            if not self.more():
                return len(self.text) if scalar and not skipped else None

    def _ended(self, end: int, skipped: bool) -> int:
        if skipped:
            self.advance(end)
            return -1
        return end


def read_json(text: Utf8Text, source: str, name: str, rewind=None) -> Iterator[CaseRecord]:
    """A JSON file: one case, a list of cases, or {"cases": [...]}; lists are
    read element by element, so a file of any length takes little memory.

    `rewind()` gives the text again from its start: {"cases": [...]} is read
    through once without its cases, so that a document giving another key
    (`cases` twice, say) is refused whole before any case of it is evaluated.
    Without it (a pipe), such a document is read whole, as one value."""
    buffer = _Buffer(text)
    try:
        if buffer.peek() == "":
            return
        if buffer.peek() == "[":
            buffer.advance(buffer.pos + 1)
            yield from _json_elements(buffer, source, name)
        elif rewind is not None and (line := buffer.starts(_CASES_HEAD)):
            problem = _beside_cases(buffer, source, line)
            if problem:
                yield CaseRecord(None, source, problem.line, name, problem)
                return
            buffer = _Buffer(rewind())
            buffer.peek()
            buffer.starts(_CASES_HEAD)
            buffer.advance(buffer.pos + 1)  # its '['
            yield from _json_elements(buffer, source, name)
            if buffer.peek() != "}":  # refused before, unless the file changed since
                raise SourceError(_ONLY_CASES, source, buffer.line, "cases")
            buffer.advance(buffer.pos + 1)
        else:  # one value: a case, or a FHIR Bundle, which may be larger
            value, line, error = buffer.take(MAX_DOCUMENT_CHARS)
            if error:
                yield CaseRecord(None, source, line, name, error)
                return
            yield from records_or_error(
                lambda: cases_of(parse_json(value, source, line), source, name, line), source, line, name
            )
        if buffer.peek() != "":
            raise SourceError("extra text after the JSON value", source, buffer.line)
    except SourceError as exc:  # the rest of the file cannot be trusted: one error, then stop
        yield CaseRecord(None, source, exc.line, name, exc)


_ONLY_CASES = "'cases' must be the only key of a file that holds a list of cases"


def _beside_cases(buffer: _Buffer, source: str, line: int) -> Optional[SourceError]:
    """Why the {"cases": [...]} whose list starts here (its key on `line`) is refused whole
    (the error of a key after the list, `cases` again or another), or None. Values are passed
    over, never held (_Buffer.take skips one larger than a case); a list that never ends is
    left to the reading, which says where."""
    seen, other = {"cases": line}, None
    buffer.take()
    if buffer.peek() == "":
        return None
    while buffer.peek() == ",":
        buffer.advance(buffer.pos + 1)
        buffer.peek()
        line = buffer.line
        key = _json_key(buffer.take()[0])
        if key in seen:
            return duplicate_key(key, seen[key], line, source)
        other = other or line
        if key is None or buffer.peek() != ":":
            break
        seen[key] = line
        buffer.advance(buffer.pos + 1)
        buffer.take()
    if other is None and buffer.peek() == "}":
        return None
    return SourceError(_ONLY_CASES, source, other or buffer.line, "cases")


def _json_key(text: Optional[str]) -> Optional[str]:
    """The key a JSON string's text gives, or None when it is not one."""
    try:
        key = json.loads(text) if text and text.startswith('"') else None
    except ValueError:
        return None
    return key if isinstance(key, str) else None


def _json_elements(buffer: _Buffer, source: str, name: str) -> Iterator[CaseRecord]:
    """The elements of a JSON list whose '[' was just read, each its own record."""
    if buffer.peek() == "]":
        buffer.advance(buffer.pos + 1)
        return
    while True:
        value, line, error = buffer.take()
        if error:
            yield CaseRecord(None, source, line, name, error)
        else:
            yield from records_or_error(
                lambda value=value, line=line: [CaseRecord(parse_json(value, source, line), source, line, name)],
                source,
                line,
                name,
            )
        after = buffer.peek()
        if after == "]":
            buffer.advance(buffer.pos + 1)
            return
        if after != ",":
            raise SourceError(
                f"not valid JSON: expecting ',' or ']' after the case on line {line}", source, buffer.line
            )
        buffer.advance(buffer.pos + 1)
