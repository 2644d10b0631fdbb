"""A copy of the service's SQLite file, taken while `ivig serve` writes it (`ivig backup`).

The file keeps the cards issued, the clinicians' feedback, the trail of calls and the token ids
already seen. Copying it with `cp` while the service runs can catch a write half done, and misses
what is still in its `-wal` file; SQLite's online backup copies one consistent state, whatever
the writers do meanwhile. The copy is checked (`pragma integrity_check`) and synced before it is
given its name, and a backup never replaces a file: an older backup is never lost to a newer one.
Only that file is copied (one with its cards): a nightly backup of the wrong file would be found
useless only when it is restored. The copy is readable by its owner alone (0600), as clinical logs.
"""

import datetime as dt
import errno
import os
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator
from urllib.parse import quote

from ..base.errors import OutputRefused, StoreUnreadable, WriteFailed

LOCK_WAIT = 5.0  # seconds a backup waits for a lock that keeps readers out (the service's own never do: WAL)


@dataclass(frozen=True)
class Backup:
    """A backup made: where, its size, and the rows of each table in it."""

    path: Path
    size: int
    rows: Dict[str, int]


def backup(source, destination) -> Backup:
    """Copy the SQLite file `source` to `destination`: a new file, or a folder, where the copy is
    named `<name>-<UTC time>.sqlite` (`-2`, `-3`... after it for another copy in the same second).
    StoreUnreadable when `source` is not the file `ivig serve` keeps (it is never created), or is
    locked too long; OutputRefused when the destination file exists, is one SQLite would mix with
    another file's (_refuse_sqlite_neighbours), or its folder does not exist or cannot be written;
    WriteFailed when the disk fills. Nothing is left behind but the copy."""
    folder_named = str(destination).endswith(("/", os.sep))  # Path() forgets the slash that says "a folder"
    source, destination = Path(source), Path(destination)
    into_folder = destination.is_dir()
    if folder_named and not into_folder:
        raise OutputRefused(f"{destination}{os.sep}: no such folder")
    names = _names_in(destination, source) if into_folder else iter([_new_file(destination)])
    folder = destination if into_folder else destination.parent
    reader = _open_existing(source)
    try:
        temporary = _temporary_in(folder, destination)
        try:
            rows = _copy(reader, source, temporary, folder)
            target = _link(temporary, names)
            _sync(folder)
        finally:
            os.unlink(temporary)
    finally:
        reader.close()
    return Backup(target, target.stat().st_size, rows)


def _temporary_in(folder: Path, destination: Path) -> str:
    """A new empty file in `folder`, for the copy until it is whole; OutputRefused naming
    `destination` when the folder cannot be written."""
    try:
        fd, temporary = tempfile.mkstemp(prefix=".ivig-backup-", suffix=".part", dir=folder)
    except OSError as exc:
        raise OutputRefused(f"{destination}: cannot write in the folder {folder}: {exc.strerror}") from None
    os.close(fd)
    return temporary


def _copy(reader: sqlite3.Connection, source: Path, temporary: str, folder: Path) -> Dict[str, int]:
    """The state of `source` that `reader` holds (its WAL included) into `temporary`, checked and
    synced; the rows of each of its tables."""
    copy = sqlite3.connect(temporary, isolation_level=None)
    try:
        copy.execute("pragma journal_mode = off")  # a failed copy is thrown away whole: no -journal to leave
        reader.backup(copy)
        # one file, not WAL as its source: readable where no -shm can be made beside it (a share
        # mounted read-only), and `ivig serve` turns WAL on again when it opens a restored copy
        copy.execute("pragma journal_mode = delete")
        problems = copy.execute("pragma integrity_check").fetchall()
        if problems != [("ok",)]:
            raise WriteFailed(0, f"the copy of {source} fails SQLite's integrity check: {problems[0][0]}")
        rows = _rows(copy)
    except sqlite3.Error as exc:
        raise _fault(exc, source, folder) from None
    finally:
        copy.close()
    _sync(temporary)
    return rows


def _fault(exc: sqlite3.Error, source: Path, folder: Path) -> Exception:
    """What SQLite's backup failed at: writing the copy into `folder` (WriteFailed: a full disk,
    an I/O error), or else reading `source` (StoreUnreadable)."""
    name = getattr(exc, "sqlite_errorname", "")  # Python 3.11 on; before it, the message alone
    if name == "SQLITE_FULL" or "disk is full" in str(exc):
        return WriteFailed(errno.ENOSPC, f"cannot write the copy in {folder}: the disk is full")
    if name in ("SQLITE_IOERR_WRITE", "SQLITE_IOERR_FSYNC"):
        return WriteFailed(errno.EIO, f"cannot write the copy in {folder}: {exc}")
    return StoreUnreadable(f"{source}: {exc}")


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
    """`destination`, a name for the copy that no file has, in a folder that exists; else OutputRefused."""
    if os.path.lexists(destination):
        raise OutputRefused(f"{destination}: exists; a backup never replaces a file")
    if not destination.parent.is_dir():
        raise OutputRefused(f"{destination}: no such folder: {destination.parent}")
    _refuse_sqlite_neighbours(destination)
    return destination


def _refuse_sqlite_neighbours(destination: Path) -> None:
    """OutputRefused where SQLite would mix the copy with another file: a -wal or -journal beside
    its name (read into the copy as its last writes), or a name that is another file's -wal, -shm
    or -journal (deleted when that file is next opened)."""
    for end in ("-wal", "-shm", "-journal"):
        beside, owner = Path(f"{destination}{end}"), str(destination)[: -len(end)]
        if end != "-shm" and os.path.lexists(beside):  # left by a writer that crashed, or by a file moved alone
            raise OutputRefused(
                f"{beside} exists: SQLite would read it into the copy as the last writes of its file; "
                "move it aside with the file it belongs to"
            )
        if str(destination).endswith(end) and os.path.lexists(owner):
            raise OutputRefused(
                f"{destination}: SQLite takes it for a file of {owner}, and would delete it: give the copy another name"
            )


def _names_in(folder: Path, source: Path) -> Iterator[Path]:
    """`<name>-<UTC time>.sqlite` in `folder`, then `-2`, `-3`...: names for a copy made now."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    yield folder / f"{source.stem}-{stamp}.sqlite"
    for n in range(2, 1000):
        yield folder / f"{source.stem}-{stamp}-{n}.sqlite"


def _open_existing(source: Path) -> sqlite3.Connection:
    """A connection to `source`, which must be the file `ivig serve` keeps (one with its cards):
    never one created. Read-write where allowed, so that the last connection to close folds in and
    removes the `-wal` and `-shm` files it had to open (a read-only one leaves them); read-only
    for a user who may only read it."""
    if not os.path.exists(source):
        raise StoreUnreadable(f"{source}: no such file (the service's --feedback-db)")
    if not source.is_file():  # a pipe, a device: SQLite would wait on it, or read it for ever
        raise StoreUnreadable(f"{source}: not a regular file (the service's --feedback-db is one)")
    refused = None
    for mode in ("rw", "ro"):
        try:
            return _holding_cards(_reading(source, mode), source)
        except sqlite3.OperationalError as exc:  # locked, or not writable by this user: read-only next
            if "locked" in str(exc):
                raise StoreUnreadable(
                    f"{source}: locked by another program for {LOCK_WAIT:g} s; nothing was copied: "
                    "try again once it lets go"
                ) from None
            refused = exc
        except sqlite3.Error as exc:  # "file is not a database"
            raise StoreUnreadable(f"{source}: not an SQLite file the service wrote ({exc})") from None
    raise StoreUnreadable(f"{source}: cannot be read ({refused})")


def _reading(source: Path, mode: str) -> sqlite3.Connection:
    """A connection to `source` in `mode` (rw, ro) that holds a read transaction: the copy is of the
    state checked, and no lock a writer takes meanwhile can stall the copy (SQLite's backup would
    wait on it for ever, deaf to signals)."""
    db = sqlite3.connect(f"file:{quote(str(source.resolve()))}?mode={mode}", uri=True, timeout=LOCK_WAIT)
    try:
        db.isolation_level = None  # the transaction is begun here, and held until the connection closes
        db.execute("begin")
        db.execute("select count(*) from sqlite_master").fetchone()  # the read begins; "file is not a database"
    except BaseException:
        db.close()
        raise
    return db


def _holding_cards(db: sqlite3.Connection, source: Path) -> sqlite3.Connection:
    """`db`, if it keeps cards: another program's file, or an empty one, would restore nothing."""
    if db.execute("select 1 from sqlite_master where type = 'table' and name = 'card'").fetchone() is None:
        db.close()
        raise StoreUnreadable(f"{source}: holds no cards: it is not the file `ivig serve` keeps (--feedback-db)")
    return db


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
