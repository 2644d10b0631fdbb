"""The standard streams of the command line: closed when ivig started (`ivig ... >&-`, `<&-`,
`2>&-`), or failing when written (`ivig --help >/dev/full`).

Python sets a stream closed at start (sys.stdout, stdin, stderr) to None, and the first
write or read fails with an AttributeError far from its cause, or, through click.echo,
output vanishes without a word and the command "succeeds". `stand_in()` puts a stream in
each empty place instead: standard output and input that raise StreamClosed (an OSError:
one line, exit 74) when they are used, so that a command that does not need them
(`evaluate -o FILE`) still runs; and a standard error that drops what it is given, since
nobody can read it. An open standard output is given a buffer whose failures say that
standard output failed (WriteFailed), wherever the write came from: a command's text, or
click's own --help and --version, which nothing else could tell from another file's.
"""

import io
import os
import sys
from typing import Optional

from .errors import StreamClosed, WriteFailed


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


class _NamedRaw(io.RawIOBase):
    """Standard output's descriptor, whose write failures name it (WriteFailed, errno kept:
    EPIPE stays a closed pipe)."""

    def __init__(self, fd: int):
        super().__init__()
        self._fd = fd

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def isatty(self) -> bool:
        return os.isatty(self._fd)

    def write(self, data) -> int:
        try:
            return os.write(self._fd, data)
        except OSError as exc:
            raise WriteFailed(exc.errno, f"cannot write standard output: {exc.strerror}") from None


def stand_in() -> None:
    """Put a stand-in in place of each standard stream that is closed (None), and give the
    process's own standard output a buffer whose failures say it is standard output (not
    a stream put there by someone else: a test's)."""
    if sys.stdout is None:
        sys.stdout = io.TextIOWrapper(_ClosedRaw("standard output", "w"), encoding="utf-8", write_through=True)
    elif sys.stdout is sys.__stdout__ and isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout = _named(sys.stdout)
    if sys.stdin is None:
        sys.stdin = io.TextIOWrapper(_ClosedRaw("standard input", "r"), encoding="utf-8")
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w", encoding="utf-8")


def _named(stream: io.TextIOWrapper) -> io.TextIOWrapper:
    """`stream` (the process's standard output) written through _NamedRaw, with its encoding
    and buffering; what it holds unwritten is written first."""
    try:
        stream.flush()
        fd = stream.fileno()
    except (OSError, ValueError):
        return stream
    return io.TextIOWrapper(
        io.BufferedWriter(_NamedRaw(fd)),
        encoding=stream.encoding,
        errors=stream.errors,
        line_buffering=stream.line_buffering,
    )


def is_closed(stream) -> bool:
    """Whether `stream` is missing, or a stand-in for a stream closed at start."""
    return stream is None or isinstance(getattr(stream, "buffer", None), _ClosedRaw)


def require_streams(stdin_for: Optional[str], stdout_for: Optional[str]) -> None:
    """StreamClosed, before any work, if standard output or input is needed (a reason given:
    `stdout_for`, `stdin_for`; '' needs it with nothing to add) and was closed at start."""
    if stdout_for is not None:
        require_open(sys.stdout, "standard output", stdout_for)
    if stdin_for is not None:
        require_open(sys.stdin, "standard input", stdin_for)


def require_open(stream, name: str, needed_for: str) -> None:
    """StreamClosed (`name` is closed: `needed_for`) if `stream` was closed at start: said before
    any work is done, rather than at the first write."""
    if is_closed(stream):
        raise StreamClosed(name, needed_for)
