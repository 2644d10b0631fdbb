"""What a run reads, in order (plan_reading), as one small typed piece of work each: standard input,
a file, an entry that is its own error, and the NDJSON files of a FHIR Bulk Data export gathered
into one piece of work per folder. Each file's cases get their default id here, unique in the run."""

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, List, Optional, Union

from .record import STDIN
from .sniffing import CASE_SUFFIXES, is_fhir_export_file
from .walk import case_files, name_below


@dataclass(frozen=True)
class ReadStdin:
    """Read standard input."""


@dataclass(frozen=True)
class ReadFile:
    """Read the file at `path`; `name` is its cases' default id (``name``, or ``name:N`` for several)."""

    path: str
    name: str


@dataclass(frozen=True)
class ReadExport:
    """Read the NDJSON files of the FHIR Bulk Data export in `directory` together, as one export."""

    directory: str
    files: List[ReadFile] = field(default_factory=list)


@dataclass(frozen=True)
class Unreadable:
    """An entry that is one error record: a folder without case files, or what a folder's walk cannot read."""

    path: str
    name: str
    why: str


Work = Union[ReadStdin, ReadFile, ReadExport, Unreadable]


def plan_reading(
    paths: Iterable[str], exclude: Optional[str] = None, notes: Optional[Callable[[str], None]] = None
) -> List[Work]:
    """The work of reading `paths`, in order. A folder is read as its walk says (walk.case_files:
    `exclude` never read, what it leaves out said to `notes`).

    A case's default id is its file's name: the path below the folder given (``a/p.yaml``), or
    a file's own name; when that name was already used in this run, the path as given."""
    planner = _Planner()
    for path in paths:
        if path == STDIN:
            planner.work.append(ReadStdin())
        elif Path(path).is_dir():
            planner.add_folder(Path(path), path, exclude, notes)
        else:
            planner.add_file(path, planner.unique(Path(path).name, path))
    return planner.work


class _Planner:
    """The work planned so far, the exports met (by folder) and the names used."""

    def __init__(self):
        self.work, self.exports, self.used = [], {}, set()

    def unique(self, name: str, path: str) -> str:
        """`name`, or `path` when `name` was already used in this run."""
        name = path if name in self.used else name
        self.used.add(name)
        return name

    def add_folder(self, root: Path, path: str, exclude: Optional[str], notes) -> None:
        """What the walk of the folder `root` (named `path`) reads, in the walk's order."""
        entries = [
            (str(e.path), self.unique(name_below(root, e.path), str(e.path)), e.why)
            for e in case_files(root, exclude, notes)
        ]
        if not entries:
            why = f"no case files ({', '.join(CASE_SUFFIXES)}) in this directory"
            self.work.append(Unreadable(path, self.unique(root.name, path), why))
        for file, name, why in entries:
            if why:  # it could not be walked
                self.work.append(Unreadable(file, name, why))
            else:
                self.add_file(file, name)

    def add_file(self, path: str, name: str) -> None:
        """A file to read: alone, or with the export it is part of."""
        if not is_fhir_export_file(path):
            self.work.append(ReadFile(path, name))
            return
        directory = os.path.abspath(os.path.dirname(path))  # as listed: a link joins the export it is in
        if directory not in self.exports:
            self.exports[directory] = ReadExport(directory)
            self.work.append(self.exports[directory])
        self.exports[directory].files.append(ReadFile(path, name))
