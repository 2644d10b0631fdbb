"""The physical lines of a CSV file as csv.reader takes them, with the bounds on a row kept.

A row is held up to MAX_CASE_CHARS bytes; a row past that is followed to its end without being
held (a small state machine of csv.reader's own states), and a row that cannot be read gives
back its lines after the first, to be read again as rows of their own: a quote never closed
swallows no row after it."""

import csv
import io
import re
import tempfile

from ..base.yamlsrc import shown
from .stream import BLOCK, MAX_CASE_CHARS, PeekedBytes, undecodable

# csv's own words for what is wrong, and what a person who made the file needs to hear.
_NEVER_CLOSED = "a quoted cell of this row is never closed: the file ends inside it"
_STRAY_QUOTE = (
    'a quote (") inside a cell that is not quoted as a whole, or not doubled: '
    'quote the cell and write a quote inside it as ""'
)
_LONE_CR = "a line break (\\r) inside a cell that is not quoted: save the file with \\n or \\r\\n line endings"
_CSV_PROBLEMS = (
    ("unexpected end of data", _NEVER_CLOSED),
    ("expected after", _STRAY_QUOTE),
    ("new-line character seen in unquoted field", _LONE_CR),
)

# csv.reader's own bound on a cell (131,072 characters) would stop a quoted cell in mid-row,
# and the rest of the cell would be read as rows: the bound is on a row here (CsvLines), and
# csv's is set above it. It is the process's setting, so it is only ever raised.
csv.field_size_limit(max(csv.field_size_limit(), MAX_CASE_CHARS + 1))

# Where csv.reader (strict, default dialect) stands between two characters, as far as where a
# row ends goes: a row past the bound on its size is followed with these, without being held.
_CELL, _BARE, _QUOTED, _QUOTE_SEEN, _LINE_END, _BAD_QUOTE, _BAD_CR = range(7)
_BROKEN = (_BAD_QUOTE, _BAD_CR)
_QUOTE, _COMMA, _CR, _LF = b'",\r\n'
_STEP = {  # state: (the next state after these bytes, the next state after any other)
    _CELL: ({_QUOTE: _QUOTED, _COMMA: _CELL, _CR: _LINE_END, _LF: _LINE_END}, _BARE),
    _QUOTE_SEEN: ({_QUOTE: _QUOTED, _COMMA: _CELL, _CR: _LINE_END, _LF: _LINE_END}, _BAD_QUOTE),
    _LINE_END: ({_CR: _LINE_END, _LF: _LINE_END}, _BAD_CR),
}
_BARE_END = re.compile(rb"[,\r\n]")


def _csv_scan(data: bytes, state: int) -> int:
    """The state csv.reader is in after `data`, from `state`. Bytes will do: a quote, a comma,
    CR and LF are never part of a UTF-8 character. At the end of a line, _QUOTED means the
    row goes on, _BAD_* that it cannot be read, anything else that it ends there."""
    i, end = 0, len(data)
    while i < end and state not in _BROKEN:
        if state == _QUOTED:  # a quoted cell: up to its next quote
            i = data.find(b'"', i)
            if i < 0:
                return state
            state = _QUOTE_SEEN
        elif state == _BARE:  # a cell not quoted: up to its end
            found = _BARE_END.search(data, i)
            if not found:
                return state
            i = found.start()
            state = _CELL if data[i] == _COMMA else _LINE_END
        else:
            named, other = _STEP[state]
            state = named.get(data[i], other)
        i += 1
    return state


class RowBroken(Exception):
    """A row that is its own error before it is read: see CsvLines.__next__."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class RowTooLarge(Exception):
    """The row being read has passed the bound on its size: CsvLines.too_large reads on."""


class CsvLines:
    """The physical lines of a CSV stream, as csv.reader takes them: numbered, each
    decoded on its own (an undecodable byte is its row's `problem`).

    The lines of the row being read are kept, up to MAX_CASE_CHARS bytes: a row that
    cannot be read gives back the lines after its first, to be read again as rows of
    their own (`broken`), so that a quote never closed swallows no row after it. A row
    past the bound is followed on without being held (`too_large`), to where it ends."""

    def __init__(self, raw: PeekedBytes):
        self.raw = raw
        self.sources = [raw]  # read in turn: lines given back go in front of the input
        self.number = 0  # the last line read
        self.start = 1  # the line the row being read starts on
        self.kept, self.size = [], 0  # that row's lines, as read, and their bytes
        self.problem = None  # that row's first undecodable byte, said
        self.gave_back = False  # whether that row's error gave lines back
        # Rows that start on a line up to `alone_until` are one line each: they are lines given
        # back, and a quote one of them leaves open runs on through the same lines as the quote
        # of the row that gave them back, into the same end; `alone_why` says which.
        self.alone_until, self.alone_why = 0, ""

    def begin_row(self) -> int:
        """Start a row: the line it starts on."""
        self.start, self.kept, self.size, self.problem, self.gave_back = self.number + 1, [], 0, None, False
        return self.start

    def __iter__(self):
        return self

    def __next__(self) -> str:
        if self.kept and self.start <= self.alone_until:
            raise RowBroken(self.alone_why)  # its second line is not read: it is a row of its own
        line = self._read(MAX_CASE_CHARS + 1)
        if not line:
            raise StopIteration
        self.number += 1
        self.kept.append(line)
        self.size += len(line)
        if self.size > MAX_CASE_CHARS:
            raise RowTooLarge()
        try:
            return line.decode("utf-8")
        except UnicodeDecodeError as exc:
            if self.problem is None:
                self.problem = undecodable(line, exc, "" if self.number == self.start else f" of line {self.number}")
            return line.decode("utf-8", "replace")  # the row's cells still end where they end

    def _read(self, limit: int) -> bytes:
        """Up to `limit` bytes of the input, to the end of a line at most; b'' at its end."""
        piece = b""
        while self.sources and len(piece) < limit and not piece.endswith(b"\n"):
            more = self.sources[0].readline(limit - len(piece))
            if more:
                piece += more
                continue
            done = self.sources.pop(0)
            if done is not self.raw:  # lines given back, read again (the input is its opener's to close)
                done.close()
        return piece

    def broken(self, said: str) -> str:
        """The error of a row csv.reader refused (`said` is csv's message) on the line read last."""
        why = next((ours for theirs, ours in _CSV_PROBLEMS if theirs in said), f"not valid CSV: {shown(said, 200)}")
        return self._failed(self._where(why))

    def too_large(self) -> str:
        """The error of a row past the bound on its size, followed on (held only in a spool file)
        to the end of the line where it ends, and read on from there; a row that ends at the end of
        the input inside a quote, or at a quote that breaks it, fails as in `broken`."""
        alone = self.start <= self.alone_until
        piece, state, spool = self.kept[-1], (_CELL if len(self.kept) == 1 else _QUOTED), None
        while True:
            state = _csv_scan(piece, state)
            ended = piece.endswith(b"\n")
            if ended and (state != _QUOTED or alone):
                break
            piece = self._read(BLOCK)
            if not piece:
                break
            if ended:
                self.number += 1
            if self.number > self.start:  # the lines after the first, should they be given back
                spool = spool or tempfile.SpooledTemporaryFile(MAX_CASE_CHARS)
                spool.write(piece)
        if state in _BROKEN:
            return self._failed(self._where(_STRAY_QUOTE if state == _BAD_QUOTE else _LONE_CR), spool)
        if state == _QUOTED and not alone:
            return self._failed(_NEVER_CLOSED, spool)
        if spool is not None:
            spool.close()
        if state == _QUOTED:
            return self.alone_why
        size = f"more than {MAX_CASE_CHARS:,} characters"
        if self.number == self.start:
            return f"a line of {size}: too large to be a case"
        return f"a row of {size} (lines {self.start} to {self.number}): too large to be a case"

    def _where(self, why: str) -> str:
        return why if self.number == self.start else f"{why} (on line {self.number})"

    def _failed(self, why: str, spool=None) -> str:
        """`why`, for a row that cannot be read: the lines after its first go back in front
        of the input, those before the line it failed on to be read as rows of one line."""
        if self.number > self.start:
            if spool is not None:
                spool.seek(0)
                self.sources.insert(0, spool)
            self.sources.insert(0, io.BytesIO(b"".join(self.kept[1:])))
            self.alone_until, self.alone_why = self.number - 1, why
            self.number, self.gave_back = self.start, True
        elif spool is not None:
            spool.close()
        return why
