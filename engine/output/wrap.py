"""Text wrapped for a terminal: its width, the columns text takes, and a line broken at spaces
to fit.

Text reaches these functions already made safe (escape.for_terminal): the only escape sequences
left are the SGR styles our own `style` adds, which take no columns and are never split. Widths
are display columns: an East Asian wide or fullwidth character takes two, a combining mark none.
"""

import functools
import re
import shutil
import sys
import unicodedata
from typing import Optional

_SGR = re.compile(r"\x1b\[[0-9;]*m")
_PIECE = re.compile(r"\x1b\[[0-9;]*m| +|[^ ]")


def terminal_width(stream=None) -> Optional[int]:
    """The columns to wrap text for `stream` (standard output): its terminal's
    width, or None (no wrapping) when it is not a terminal, so that files and
    pipes get one line per item, as grep wants."""
    stream = stream or sys.stdout
    try:
        if not stream.isatty():
            return None
    except (AttributeError, ValueError):  # a closed or unusual stream
        return None
    return shutil.get_terminal_size().columns


@functools.lru_cache(maxsize=4096)
def char_width(char: str) -> int:
    """The columns one character takes on a terminal."""
    if unicodedata.combining(char):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


_NON_ASCII = re.compile(r"[^\x00-\x7f]")


def display_width(text: str) -> int:
    """The columns text takes on a terminal (styles take none)."""
    if "\x1b" in text:
        text = _SGR.sub("", text)
    if text.isascii():
        return len(text)
    return len(text) + sum(char_width(c) - 1 for c in _NON_ASCII.findall(text))  # few are not ASCII


def wrap(line: str, width: Optional[int], hang: str = "") -> str:
    """One line broken at spaces to fit `width` columns; each further line starts with `hang`.

    The line's own leading spaces are kept. A word is broken only where it
    could not fit on any line; East Asian wide text, which has no spaces, may
    break between its characters (not before closing punctuation). A link is
    never broken: one that does not fit after the hang starts its line at the
    first column, and one wider than the terminal is left whole (a broken link
    cannot be opened or copied). With no width (not a terminal) the line is
    returned as it is.
    """
    if not width or display_width(line) <= width:
        return line
    if display_width(hang) > width // 2:  # a narrow terminal: keep room for the text
        hang = hang[: width // 2]
    indent = line[: len(line) - len(line.lstrip(" "))]
    return _Lines(width, hang, indent).fill(_words(line[len(indent) :]))


# A word and the spaces before it. A short sign ('←', '->', '=', '-') is bound to
# the word after it, so that no line ends with an arrow pointing at nothing.
_SPACED = re.compile(r"( *)((?:[^\w\s\[\]()\x1b]{1,2} +)?[^ ]+)")
_CLOSING = ("Pe", "Pf", "Po")  # punctuation that closes: no line starts with it
_LINK = re.compile(r"https?://")


def _words(text: str):
    """(the spaces before, the word) for each piece a line may break before."""
    for glue, word in _SPACED.findall(text):
        if word.isascii():  # the common case: a word is the run between spaces
            yield glue, word
        else:
            yield from _wide_breaks(glue, word)


def _wide_breaks(glue: str, word: str):
    """A run cut where East Asian wide text may break: before and after a wide
    character, never before closing punctuation, never inside a style."""
    out, current, wide_before = [], "", False
    for piece in _PIECE.findall(word):
        if piece.startswith(("\x1b", " ")):
            current += piece
            wide_before = False
            continue
        wide = char_width(piece) == 2
        breakable = (wide or wide_before) and not unicodedata.category(piece).startswith(_CLOSING)
        if breakable and _SGR.sub("", current).strip():
            out.append((glue, current))
            glue, current = "", ""
        current += piece
        wide_before = wide
    out.append((glue, current))
    return out


class _Lines:
    """The lines of one wrapped line, as they fill. Glue is spaces: its width is its length."""

    def __init__(self, width: int, hang: str, indent: str):
        self.width, self.hang = width, hang
        self.done, self.current, self.used, self.fresh = [], indent, display_width(indent), True

    def fill(self, words) -> str:
        """Lay out (spaces, word) pairs; the wrapped text."""
        width = self.width
        for glue, word in words:
            size = len(word) if word.isascii() and "\x1b" not in word else display_width(word)
            if not self.fresh and self.used + len(glue) + size <= width:  # the common case, kept short
                self.current += glue + word
                self.used += len(glue) + size
            else:
                self.add(word, size)
        return self.text()

    def add(self, word: str, size: int) -> None:
        """A word that starts a line, or does not fit on this one: on the next, or broken when no line
        holds it; a link that does not fit after the hang on a line of its own, whole."""
        if not self.fresh:
            self.newline()
        if self.used + size > self.width and _LINK.match(_SGR.sub("", word)):
            self.current, self.used, self.fresh = word, size, False
            return
        self.place("", word, size)  # a line starts with its indent only

    def place(self, glue: str, word: str, size: int) -> None:
        if self.used + len(glue) + size <= self.width:
            self.current += glue + word
            self.used += len(glue) + size
        else:  # longer than any line: break it, a character at a time (styles kept whole)
            self.current += glue
            self.used += len(glue)
            for piece in _PIECE.findall(word):
                size = display_width(piece)
                if self.used + size > self.width and not self.fresh:
                    self.newline()
                self.current += piece
                self.used += size
                self.fresh = self.fresh and size == 0
        self.fresh = self.fresh and size == 0

    def newline(self) -> None:
        self.done.append(self.current.rstrip(" "))
        self.current, self.used, self.fresh = self.hang, display_width(self.hang), True

    def text(self) -> str:
        return "\n".join(self.done + [self.current.rstrip(" ")])
