"""How far reading has got, in bytes, for a progress line: the size of the input ahead
(input_size) and the bytes read so far (ReadMeter)."""

import os
import stat
import sys
from typing import Iterable, Optional

from .record import STDIN
from .walk import expand_paths


class ReadMeter:
    """How far the reading of a batch has got, in bytes, for a progress line: the size of each
    file read to its end, and the position in the one being read (a file read twice, a JSON
    `cases` file checked then streamed, goes back; a pipe's position is not known)."""

    def __init__(self):
        self.finished, self.current = 0, None

    def reading(self, handle) -> None:
        """`handle` is being read."""
        self.current = handle

    def reading_stdin(self, stdin) -> None:
        """Standard input is being read: followed when it is a file (a pipe's position is not known)."""
        if _regular(getattr(stdin, "buffer", None)):
            self.reading(stdin.buffer)

    def read(self, handle) -> None:
        """`handle` was read to its end (or given up on)."""
        if handle is self.current:
            self.finished += _size(handle)
            self.current = None

    def bytes(self) -> int:
        """The bytes read so far."""
        try:
            return self.finished + (self.current.tell() if self.current is not None else 0)
        except (OSError, ValueError):  # a pipe, or a file closed meanwhile
            return self.finished


def input_size(paths: Iterable[str], stdin=None) -> Optional[int]:
    """The bytes `read_cases` will read from `paths`, or None when that cannot be known ahead
    (standard input from a pipe); a progress line shows the share read, as pv does."""
    total = 0
    for path in expand_paths(paths):
        if path == STDIN:
            stream = getattr(stdin or sys.stdin, "buffer", None)
            size = _size(stream) if stream is not None and _regular(stream) else None
        else:
            size = _size(path)
        if size is None:
            return None
        total += size
    return total


def _size(file) -> Optional[int]:
    """The size of a file (named, or open), or None when it has none (a pipe)."""
    try:
        return os.fstat(file.fileno()).st_size if hasattr(file, "fileno") else os.path.getsize(file)
    except (OSError, ValueError):
        return None


def _regular(stream) -> bool:
    """Whether an open stream is a regular file (standard input redirected from one, say)."""
    try:
        return stat.S_ISREG(os.fstat(stream.fileno()).st_mode)
    except (OSError, ValueError, AttributeError):
        return False
