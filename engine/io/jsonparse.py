"""One JSON value parsed strictly, with the line of every key and item: duplicate keys, NaN and
Infinity refused, nesting and the length of numbers and texts bounded (the standard library's
parser does none of these), and every refusal a SourceError naming its line."""

import bisect
import json
import re

from ..base.errors import SourceError
from ..base.yamlsrc import MAX_DEPTH, MAX_NUMBER, MAX_SCALAR, Located, LocatedList, shown

WHITESPACE = re.compile(r"[ \t\n\r]*")
_NUMBER = re.compile(r"(-?(?:0|[1-9][0-9]*))(\.[0-9]+)?([eE][-+]?[0-9]+)?")
_LITERALS = (("true", True), ("false", False), ("null", None))


class _Json:
    """A strict JSON parser for one case's text that keeps the line of every
    key, refuses duplicate keys, NaN and Infinity, and bounds nesting and
    number length (the standard library's parser does none of these)."""

    def __init__(self, text: str, source: str, line: int):
        self.s, self.source, self.line0, self.breaks = text, source, line, None

    def parse(self):
        value, end = self.value(WHITESPACE.match(self.s).end(), 0)
        end = WHITESPACE.match(self.s, end).end()
        if end != len(self.s):
            self.fail("extra text after the value", end)
        return value

    def line_at(self, pos: int) -> int:
        if self.breaks is None:
            self.breaks = [m.start() for m in re.finditer("\n", self.s)]
        return self.line0 + bisect.bisect_left(self.breaks, pos)

    def fail(self, message: str, pos: int):
        raise SourceError(f"not valid JSON: {message}", self.source, self.line_at(pos))

    def value(self, i: int, depth: int):
        s = self.s
        c = s[i : i + 1]
        if c == '"':
            return self.string(i)
        if c == "{":
            return self.mapping(i, depth + 1)
        if c == "[":
            return self.array(i, depth + 1)
        for word, value in _LITERALS:
            if s.startswith(word, i):
                return value, i + len(word)
        number = _NUMBER.match(s, i)
        if number:
            if number.end() - i > MAX_NUMBER:
                self.fail(f"a number of {number.end() - i:,} digits is too long to be meant", i)
            integer, fraction, exponent = number.groups()
            text = number.group()
            return (float(text) if fraction or exponent else int(integer)), number.end()
        for word in ("NaN", "Infinity", "-Infinity"):
            if s.startswith(word, i):
                self.fail(f"{word} is not a number JSON allows", i)
        self.fail("expecting a value" if c else "the text ends where a value should be", i)

    def string(self, i: int):
        try:
            text, end = json.decoder.scanstring(self.s, i + 1, True)
        except json.JSONDecodeError as exc:
            self.fail(exc.msg, exc.pos)
        if len(text) > MAX_SCALAR:
            self.fail(f"a value of {len(text):,} characters (at most {MAX_SCALAR:,})", i)
        return text, end

    def nested(self, i: int, depth: int):
        if depth > MAX_DEPTH:
            self.fail(f"nested more than {MAX_DEPTH} levels deep", i)

    def mapping(self, i: int, depth: int):
        self.nested(i, depth)
        s, result = self.s, Located()
        result.line, result.key_lines = self.line_at(i), {}
        i = WHITESPACE.match(s, i + 1).end()
        if s[i : i + 1] == "}":
            return result, i + 1
        while True:
            if s[i : i + 1] != '"':
                self.fail("expecting a key in double quotes", i)
            line = self.line_at(i)
            key, i = self.string(i)
            if key in result.key_lines:
                raise duplicate_key(key, result.key_lines[key], line, self.source)
            i = WHITESPACE.match(s, i).end()
            if s[i : i + 1] != ":":
                self.fail("expecting ':' after a key", i)
            result[key], i = self.value(WHITESPACE.match(s, i + 1).end(), depth)
            result.key_lines[key] = line
            i = WHITESPACE.match(s, i).end()
            if s[i : i + 1] == ",":
                i = WHITESPACE.match(s, i + 1).end()
            elif s[i : i + 1] == "}":
                return result, i + 1
            else:
                self.fail("expecting ',' or '}'", i)

    def array(self, i: int, depth: int):
        self.nested(i, depth)
        s, result = self.s, LocatedList()
        result.line, result.item_lines = self.line_at(i), []
        i = WHITESPACE.match(s, i + 1).end()
        if s[i : i + 1] == "]":
            return result, i + 1
        while True:
            result.item_lines.append(self.line_at(i))
            item, i = self.value(i, depth)
            result.append(item)
            i = WHITESPACE.match(s, i).end()
            if s[i : i + 1] == ",":
                i = WHITESPACE.match(s, i + 1).end()
            elif s[i : i + 1] == "]":
                return result, i + 1
            else:
                self.fail("expecting ',' or ']'", i)


def parse_json(text: str, source: str, line: int = 1):
    """One JSON value, strictly, with lines (see _Json); raise SourceError.

    A value on one line that cannot be too deep or hold too long a string
    (most JSON Lines cases) is decoded by the standard library's C decoder,
    several times faster, with hooks that refuse what _Json refuses; whatever
    it refuses or fails on is read again by _Json, for the same error message."""
    if "\n" not in text.rstrip("\r\n") and len(text) <= MAX_SCALAR and text.count("[") + text.count("{") <= MAX_DEPTH:
        try:
            return json.loads(
                text,
                object_pairs_hook=lambda pairs: _one_line_mapping(pairs, line),
                parse_int=_bounded(int),
                parse_float=_bounded(float),
                parse_constant=_refuse,
            )
        except Exception:  # _Json says what is wrong, or reads what the shortcut would not
            pass
    return _Json(text, source, line).parse()


def _one_line_mapping(pairs, line: int) -> Located:
    result = Located(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate key")
    result.line, result.key_lines = line, dict.fromkeys(result, line)
    return result


def _bounded(kind):
    def convert(text):
        if len(text) > MAX_NUMBER:
            raise ValueError("number too long")
        return kind(text)

    return convert


def _refuse(text):
    raise ValueError(f"{text} is not a number JSON allows")


def duplicate_key(key: str, first: int, again: int, source: str) -> SourceError:
    """The error of a key given twice, as every reader says it (YAML's is yamlsrc's, in the same words)."""
    return SourceError(f"duplicate key {shown(key)}: first on line {first}, again on line {again}", source, again, key)
