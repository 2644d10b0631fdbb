"""Standard streams that were closed when ivig started (`ivig ... >&-`, `<&-`, `2>&-`).

Python then sets sys.stdout (stdin, stderr) to None, and the first write or
read fails with an AttributeError far from its cause, or, through click.echo,
output vanishes without a word and the command "succeeds". `stand_in()` puts
a stream in each empty place instead: standard output and input that raise
StreamClosed (an OSError: one line, exit 74) when they are used, so that a
command that does not need them (`evaluate -o FILE`) still runs; and a
standard error that drops what it is given, since nobody can read it.
"""

import io
import os
import sys

from .errors import StreamClosed


class _ClosedRaw(io.RawIOBase):
    """A stream that was closed at start: using it raises StreamClosed naming it."""

    def __init__(self, name: str, mode: str):
        super().__init__()
        self.name_for_people, self.mode_ = name, mode

    def readable(self) -> bool:
        return self.mode_ == "r"

    def writable(self) -> bool:
        return self.mode_ == "w"

    def readinto(self, buffer):
        raise StreamClosed(self.name_for_people)

    def write(self, data):
        raise StreamClosed(self.name_for_people)


def stand_in() -> None:
    """Put a stand-in in place of each standard stream that is closed (None)."""
    if sys.stdout is None:
        sys.stdout = io.TextIOWrapper(_ClosedRaw("standard output", "w"), encoding="utf-8", write_through=True)
    if sys.stdin is None:
        sys.stdin = io.TextIOWrapper(_ClosedRaw("standard input", "r"), encoding="utf-8")
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w", encoding="utf-8")


def is_closed(stream) -> bool:
    """Whether `stream` is missing, or a stand-in for a stream closed at start."""
    return stream is None or isinstance(getattr(stream, "buffer", None), _ClosedRaw)


def require_open(stream, name: str, needed_for: str) -> None:
    """StreamClosed (`name` is closed: `needed_for`) if `stream` was closed at start: said before
    any work is done, rather than at the first write."""
    if is_closed(stream):
        raise StreamClosed(name, needed_for)
