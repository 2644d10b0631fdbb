"""Walking a folder of cases: which files reading it reads, in which order, and what it leaves out.

Depth first, each folder's entries sorted by name, links followed; a folder met again, and an
earlier run's results, are left out with a note; what cannot be walked is an error."""

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional

from ..base.atomic import same_file
from ..core.contract import is_results_file
from .record import STDIN
from .sniffing import CASE_SUFFIXES

RESULTS_SUFFIXES = (".json", ".jsonl", ".ndjson", ".csv")  # what the results of ivig evaluate are written as
RESULTS_LEFT_OUT = "left out: it holds results of ivig, not cases (name it to read it)"


def expand_paths(paths: Iterable[str]) -> Iterator[str]:
    """Files named, and what the walk of each directory named reads: its case files, and the
    entries it gives an error (sorted, recursive; see `walk`)."""
    for path in paths:
        if path != STDIN and Path(path).is_dir():
            yield from (str(w.path) for w in case_files(Path(path)))
        else:
            yield path


@dataclass
class Walked:
    """One entry that walking a folder met: a case file to read (`file`), a folder entered
    (`folder`), an entry that could not be walked (`error`, an error result: `why`), or one left
    out (`left`, a note: `why`)."""

    path: Path
    kind: str
    why: str = ""


def walk(root: Path) -> list:
    """Everything below the folder `root` that reading it meets, in the order read: depth first,
    each folder's entries sorted by name.

    Links to folders are followed, so a folder linked in is read; a folder met again (a link
    back to a folder above it, or a second link to one) is left out with a note, so that a loop
    ends and nothing is read twice. A folder that cannot be listed, and an entry with a case
    file's name that is not a file (a pipe would never end), is an error; a broken link with
    such a name is read, so its reading says it is broken. A file that is recognisably results
    of this program (contract.is_results_file) is left out with a note: an earlier run's output
    in the folder is no case. Without recursion, so a deep tree is no crash."""
    found, seen, pending = [], {}, [root]
    while pending:
        path = pending.pop()
        if path.is_dir():
            real = os.path.realpath(path)
            if real in seen:
                found.append(Walked(path, "left", f"is the folder {seen[real]} again (a link): not read twice"))
                continue
            seen[real] = path
            try:
                names = sorted(entry.name for entry in os.scandir(path))
            except OSError as exc:
                found.append(Walked(path, "error", f"cannot read this folder: {exc.strerror}"))
                continue
            found.append(Walked(path, "folder"))
            pending.extend(path / name for name in reversed(names))
        elif path.suffix.lower() in CASE_SUFFIXES:
            found.append(_walked_file(path))
    return found


def name_below(root: Path, path: Path) -> str:
    """A walked entry's name: its path below the folder given (the folder's own name for itself)."""
    return path.relative_to(root).as_posix() if path != root else root.name


def _walked_file(path: Path) -> Walked:
    """A walked entry with a case file's name: read, left out, or an error."""
    if path.exists() and not path.is_file():
        return Walked(path, "error", "not a regular file: a folder's walk reads files only (name it to read it)")
    if path.suffix.lower() in RESULTS_SUFFIXES:
        if is_results_file(path):
            return Walked(path, "left", RESULTS_LEFT_OUT)
    return Walked(path, "file")


def case_files(root: Path, exclude: Optional[str] = None, notes: Optional[Callable[[str], None]] = None) -> list:
    """What reading the folder `root` reads (`walk`): its case files and the entries that are
    errors, in order, but `exclude`; what it leaves out is said to `notes`."""
    read = []
    for entry in walk(root):
        if exclude is not None and entry.kind != "folder" and same_file(entry.path, exclude):
            continue  # the run's own output: neither read nor worth a note
        if entry.kind == "left" and notes is not None:
            notes(f"note: {entry.path} {entry.why}")
        elif entry.kind in ("file", "error"):
            read.append(entry)
    return read
