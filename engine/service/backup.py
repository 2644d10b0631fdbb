"""A copy of the service's SQLite file, taken while `ivig serve` writes it (`ivig backup`).

The file keeps the cards issued, the clinicians' feedback, the trail of calls and the token ids
already seen. Copying it with `cp` while the service runs can catch a write half done, and misses
what is still in its `-wal` file; SQLite's online backup copies one consistent state, whatever
the writers do meanwhile. The copy is checked (`pragma integrity_check`) and synced before it is
given its name, and a backup never replaces a file: an older backup is never lost to a newer one.
"""

import datetime as dt
import os
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator
from urllib.parse import quote

from ..base.errors import OutputRefused, StoreUnreadable, WriteFailed


@dataclass(frozen=True)
class Backup:
    """A backup made: where, its size, and the rows of each table in it."""

    path: Path
    size: int
    rows: Dict[str, int]


def backup(source, destination) -> Backup:
    """Copy the SQLite file `source` to `destination`: a new file, or a folder, where the copy is
    named `<name>-<UTC time>.sqlite` (`-2`, `-3`... after it for another copy in the same second).
    StoreUnreadable when `source` is no SQLite file (it is never created); OutputRefused when the
    destination file exists or its folder does not."""
    source, destination = Path(source), Path(destination)
    into_folder = destination.is_dir()
    names = _names_in(destination, source) if into_folder else iter([_new_file(destination)])
    reader = _open_existing(source)
    folder = destination if into_folder else destination.parent
    fd, temporary = tempfile.mkstemp(prefix=".ivig-backup-", suffix=".part", dir=folder)
    os.close(fd)
    try:
        rows = _copy(reader, source, temporary)
        target = _link(temporary, names)
        _sync(folder)
    except sqlite3.Error as exc:
        raise StoreUnreadable(f"{source}: {exc}") from None
    finally:
        reader.close()
        os.unlink(temporary)
    return Backup(target, target.stat().st_size, rows)


def _copy(reader: sqlite3.Connection, source: Path, temporary: str) -> Dict[str, int]:
    """One consistent state of `source` (its WAL included) into `temporary`, checked and synced;
    the rows of each of its tables."""
    copy = sqlite3.connect(temporary)
    try:
        reader.backup(copy)
        problems = copy.execute("pragma integrity_check").fetchall()
        if problems != [("ok",)]:
            raise WriteFailed(0, f"the copy of {source} fails SQLite's integrity check: {problems[0][0]}")
        rows = _rows(copy)
    finally:
        copy.close()
    _sync(temporary)
    return rows


def _link(temporary: str, names: Iterator[Path]) -> Path:
    """The copy under the first of `names` that no file has: a link never replaces a file that
    appeared meanwhile (a rename would)."""
    refused = None
    for target in names:
        try:
            os.link(temporary, target)
            return target
        except FileExistsError:
            refused = target
    raise OutputRefused(f"{refused}: exists; a backup never replaces a file")


def _new_file(destination: Path) -> Path:
    if os.path.lexists(destination):
        raise OutputRefused(f"{destination}: exists; a backup never replaces a file")
    if not destination.parent.is_dir():
        raise OutputRefused(f"{destination}: no such folder: {destination.parent}")
    return destination


def _names_in(folder: Path, source: Path) -> Iterator[Path]:
    """`<name>-<UTC time>.sqlite` in `folder`, then `-2`, `-3`...: names for a copy made now."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    yield folder / f"{source.stem}-{stamp}.sqlite"
    for n in range(2, 1000):
        yield folder / f"{source.stem}-{stamp}-{n}.sqlite"


def _open_existing(source: Path) -> sqlite3.Connection:
    """A connection to `source`, which must be an SQLite file: never one created. Read-write where
    allowed, so that the last connection to close folds in and removes the `-wal` and `-shm` files
    it had to open (a read-only one leaves them); read-only for a user who may only read it."""
    if not source.is_file():
        raise StoreUnreadable(f"{source}: no such file (the service's --feedback-db)")
    path, refused = quote(str(source.resolve())), None
    for mode in ("rw", "ro"):
        try:
            db = sqlite3.connect(f"file:{path}?mode={mode}", uri=True)
            db.execute("select count(*) from sqlite_master").fetchone()  # "file is not a database" is raised here
            return db
        except sqlite3.OperationalError as exc:  # not writable by this user, say: read-only next
            refused = exc
        except sqlite3.Error as exc:
            raise StoreUnreadable(f"{source}: not an SQLite file the service wrote ({exc})") from None
    raise StoreUnreadable(f"{source}: cannot be read ({refused})")


def _rows(db: sqlite3.Connection) -> Dict[str, int]:
    names = [name for (name,) in db.execute("select name from sqlite_master where type = 'table' order by name")]
    return {name: db.execute(f"select count(*) from {_quoted(name)}").fetchone()[0] for name in names}


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'  # an SQL identifier, whatever the file's table is named


def _sync(path) -> None:
    """fsync a file or a folder: the copy, and its name, survive a power cut."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
