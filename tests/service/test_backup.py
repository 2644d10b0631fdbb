"""`ivig backup` (issue 30, a service a hospital can run): a copy of the service's SQLite file taken
while writers write it, with what is still in its WAL, checked, and never over a file; and
`ivig serve --check`, which checks a start's settings without listening. Through the real CLI."""

import gc
import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import Keys, invoke

from ivig_advisor.cli import main
from ivig_advisor.engine.service.feedback import FeedbackStore


def store_with_cards(path: Path, count: int, name: str = "card") -> FeedbackStore:
    store = FeedbackStore(path)
    cards = [{"uuid": f"{name}-{i}", "indicator": "info", "summary": "s"} for i in range(count)]
    store.keep_many([("ivig-order-select", "order-select", cards, None, None)])
    return store


def cards_in(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return db.execute("select count(*) from card").fetchone()[0]
    finally:
        db.close()


def leftovers(folder: Path) -> list:
    """The temporary files of a backup left in `folder`, SQLite's own beside them (-journal, -wal) too."""
    return [p.name for p in folder.iterdir() if p.name.startswith(".ivig-backup-")]


def ivig(*args, prefix=()):
    """`ivig` in a process of its own: (exit status, stdout, stderr)."""
    done = subprocess.run(
        [*prefix, sys.executable, "-m", "ivig_advisor.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.returncode, done.stdout, done.stderr


def unprivileged() -> list:
    """What runs a command with the folder permissions an ordinary user has: root writes in any
    folder, so as root the capabilities that let it are dropped (setpriv)."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv is not installed: root cannot be kept out of a folder")
    drop = "-dac_override,-dac_read_search"
    return ["setpriv", f"--bounding-set={drop}", f"--inh-caps={drop}", "--"]


def test_the_copy_holds_what_is_still_in_the_wal(tmp_path):
    db = tmp_path / "ivig.sqlite"
    store = store_with_cards(db, 50)  # open: the cards are in the -wal file, not yet in the main file
    assert (tmp_path / "ivig.sqlite-wal").stat().st_size > 0
    shutil.copyfile(db, tmp_path / "cp.sqlite")  # what `cp` of the file alone gives
    out = invoke("backup", db, tmp_path / "copy.sqlite")
    assert out.exit_code == 0, out.output
    assert cards_in(tmp_path / "copy.sqlite") == 50
    cp = sqlite3.connect(tmp_path / "cp.sqlite")
    assert "card" not in {name for (name,) in cp.execute("select name from sqlite_master")}  # not even the table
    assert out.stdout == f"{tmp_path / 'copy.sqlite'}\n"
    assert "card 50" in out.stderr
    del store


def test_a_copy_taken_while_a_writer_writes_is_whole(tmp_path):
    db = tmp_path / "ivig.sqlite"
    store_with_cards(db, 1)
    stop = threading.Event()

    def write():
        writer, n = FeedbackStore(db), 0
        while not stop.is_set():
            n += 1
            cards = [{"uuid": f"w{n}-{i}", "indicator": "info", "summary": "s"} for i in range(20)]
            writer.keep_many([("ivig-order-select", "order-select", cards, None, None)])

    thread = threading.Thread(target=write)
    thread.start()
    try:
        copies = [tmp_path / f"copy{i}.sqlite" for i in range(5)]
        for copy in copies:
            out = invoke("backup", db, copy)
            assert out.exit_code == 0, out.output
    finally:
        stop.set()
        thread.join()
    counts = [cards_in(copy) for copy in copies]
    assert all((count - 1) % 20 == 0 for count in counts), counts  # whole transactions: never part of one
    assert counts == sorted(counts) and counts[-1] <= cards_in(db)
    for copy in copies:
        assert sqlite3.connect(copy).execute("pragma integrity_check").fetchall() == [("ok",)]


def test_a_backup_never_replaces_a_file(tmp_path):
    db = tmp_path / "ivig.sqlite"
    store_with_cards(db, 3)
    old = tmp_path / "old-backup.sqlite"
    old.write_bytes(b"an older backup")
    out = invoke("backup", db, old)
    assert out.exit_code == 2
    assert "exists; a backup never replaces a file" in out.stderr
    assert old.read_bytes() == b"an older backup" and not leftovers(tmp_path)


def test_copies_into_a_folder_in_the_same_second_each_get_a_name(tmp_path):
    db = tmp_path / "ivig.sqlite"
    store_with_cards(db, 3)
    folder = tmp_path / "backups"
    folder.mkdir()
    made = []
    for _ in range(3):
        out = invoke("backup", db, folder)
        assert out.exit_code == 0, out.output
        made.append(Path(out.stdout.strip()))
    assert len(set(made)) == 3 and sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in made)
    assert all(cards_in(p) == 3 for p in made) and not leftovers(folder)


def test_a_missing_source_is_an_error_and_is_not_created(tmp_path):
    out = invoke("backup", tmp_path / "nowhere.sqlite", tmp_path / "copy.sqlite")
    assert out.exit_code == 2
    assert "nowhere.sqlite: no such file" in out.stderr
    assert sorted(os.listdir(tmp_path)) == []


def test_a_source_that_is_no_sqlite_file_is_an_error(tmp_path):
    junk = tmp_path / "notes.txt"
    junk.write_text("not a database " * 100)
    out = invoke("backup", junk, tmp_path / "copy.sqlite")
    assert out.exit_code == 2
    assert "notes.txt" in out.stderr and "copy.sqlite" not in os.listdir(tmp_path)
    assert junk.read_text() == "not a database " * 100 and not leftovers(tmp_path)


def test_a_path_with_control_characters_is_escaped_on_the_terminal(tmp_path):
    db = tmp_path / "ivig.sqlite"
    store_with_cards(db, 1)
    hostile = tmp_path / "copy\x1b[2J\nFAKE.sqlite"
    out = invoke("backup", db, hostile)
    assert out.exit_code == 0, out.output
    assert "\x1b" not in out.stdout and hostile.is_file()
    assert out.stdout.count("\n") == 1 and "\\nFAKE" in out.stdout  # one line: the newline shown, not printed


def test_a_table_name_is_escaped_on_the_terminal(tmp_path):
    db = tmp_path / "ivig.sqlite"
    store_with_cards(db, 1)
    hostile = sqlite3.connect(db)
    hostile.execute('create table "x\x1b[2J\nFAKE" (a)')
    hostile.close()
    out = invoke("backup", db, tmp_path / "copy.sqlite")
    assert out.exit_code == 0, out.output
    assert out.stderr.count("\n") == 1 and "\x1b" not in out.stderr and "x\\e[2J\\nFAKE 0" in out.stderr


def test_the_copy_is_readable_by_its_owner_alone(tmp_path):
    db = tmp_path / "ivig.sqlite"
    store_with_cards(db, 1)
    db.chmod(0o644)
    assert invoke("backup", db, tmp_path / "copy.sqlite").exit_code == 0
    assert stat.S_IMODE((tmp_path / "copy.sqlite").stat().st_mode) == 0o600  # clinical logs: not the source's 0644


def test_a_folder_that_cannot_be_written_is_refused_naming_it(tmp_path):
    db = tmp_path / "ivig.sqlite"
    store_with_cards(db, 2)
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o555)
    for destination in (closed, closed / "copy.sqlite"):
        status, stdout, stderr = ivig("backup", db, destination, prefix=unprivileged())
        assert status == 2, stderr
        assert stderr == f"error: {destination}: cannot write in the folder {closed}: Permission denied\n"
    assert list(closed.iterdir()) == []


def test_a_trailing_slash_names_a_folder_that_must_exist(tmp_path):
    db = tmp_path / "ivig.sqlite"
    store_with_cards(db, 1)
    out = invoke("backup", db, f"{tmp_path / 'backups'}/")  # the folder was not made (or not mounted)
    assert out.exit_code == 2
    assert f"{tmp_path / 'backups'}/: no such folder" in out.stderr
    assert not (tmp_path / "backups").exists()  # not a file named like the folder, which every later backup refuses


def test_a_name_with_a_wal_file_beside_it_is_refused(tmp_path):
    # a restore after a crash: the current file was put aside, but its -wal stayed, which SQLite
    # would read into the copy given that name as the last writes of "its" file
    db = tmp_path / "ivig.sqlite"
    store_with_cards(db, 2)
    old_backup = tmp_path / "old-backup.sqlite"
    assert invoke("backup", db, old_backup).exit_code == 0
    crashed = store_with_cards(db, 5, name="later")  # open: its writes are in ivig.sqlite-wal
    db.rename(tmp_path / "ivig.sqlite.replaced")
    assert (tmp_path / "ivig.sqlite-wal").stat().st_size > 0
    out = invoke("backup", old_backup, db)
    assert out.exit_code == 2
    assert f"{db}-wal exists" in out.stderr and not db.exists()
    del crashed


def test_a_source_that_is_no_file_is_refused_as_such(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for source in (fifo, Path("/dev/zero")):
        out = invoke("backup", source, tmp_path / "copy.sqlite")  # a pipe must not hang it
        assert out.exit_code == 2
        assert f"error: {source}: not a regular file" in out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo"]


def test_an_sqlite_file_that_is_not_the_services_is_refused(tmp_path):
    # a backup of the wrong file would be found useless only when it is restored
    other = tmp_path / "other.sqlite"
    db = sqlite3.connect(other)
    db.execute("create table patient (name text)")
    db.commit()
    db.close()
    empty = tmp_path / "empty.sqlite"
    empty.touch()  # SQLite takes an empty file for an empty database
    for source in (other, empty):
        before = source.read_bytes()
        out = invoke("backup", source, tmp_path / "copy.sqlite")
        assert out.exit_code == 2
        assert f"error: {source}: holds no cards: it is not the file `ivig serve` keeps" in out.stderr
        assert source.read_bytes() == before and not (tmp_path / "copy.sqlite").exists() and not leftovers(tmp_path)


def test_a_file_an_older_service_wrote_is_copied(tmp_path):
    older = tmp_path / "ivig.sqlite"  # cards only: before the feedback, the token ids and the trail were kept
    db = sqlite3.connect(older)
    db.execute("create table card (uuid text primary key)")
    db.execute("insert into card values ('c1')")
    db.commit()
    db.close()
    out = invoke("backup", older, tmp_path / "copy.sqlite")
    assert out.exit_code == 0, out.output
    assert cards_in(tmp_path / "copy.sqlite") == 1


LOCKER = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("pragma locking_mode = exclusive")  # readers too are kept out, WAL or not
db.execute("begin exclusive")
db.execute("delete from card")
print("locked", flush=True)
time.sleep(600)
"""


def test_a_file_a_writer_keeps_locked_is_refused_after_a_bounded_wait(tmp_path):
    db = tmp_path / "ivig.sqlite"
    store_with_cards(db, 3)
    gc.collect()  # the store's connection, held in a reference cycle, is closed: the locker's alone is left
    locker = subprocess.Popen([sys.executable, "-c", LOCKER, str(db)], stdout=subprocess.PIPE, text=True)
    try:
        assert locker.stdout.readline() == "locked\n"
        status, stdout, stderr = ivig("backup", db, tmp_path / "copy.sqlite")
    finally:
        locker.kill()
        locker.wait()
    assert status == 2, stderr
    assert stderr.startswith(f"error: {db}: locked by another program") and "nothing was copied" in stderr
    assert not (tmp_path / "copy.sqlite").exists() and not leftovers(tmp_path)
    assert cards_in(db) == 3


def test_a_full_disk_is_said_and_leaves_no_temporary_file(tmp_path):
    db = tmp_path / "ivig.sqlite"
    store = FeedbackStore(db)
    cards = [{"uuid": f"c{i}", "indicator": "info", "summary": "s" * 1000} for i in range(2000)]
    store.keep_many([("ivig-order-select", "order-select", cards, None, None)])
    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"a small file system cannot be mounted here: {mounted.stderr.decode().strip()}")
    try:
        status, stdout, stderr = ivig("backup", db, small)
        left = sorted(p.name for p in small.iterdir())
    finally:
        subprocess.run(["umount", str(small)], check=True)
    assert status == 74, stderr
    assert stderr.startswith(f"error: cannot write the copy in {small}: the disk is full"), stderr
    assert left == [] and stdout == ""


def test_the_source_is_read_and_left_as_it_was(tmp_path):
    db = tmp_path / "ivig.sqlite"
    store_with_cards(db, 4)
    before = sorted(os.listdir(tmp_path))
    invoke("backup", db, tmp_path / "copy.sqlite")
    assert sorted(os.listdir(tmp_path)) == sorted(before + ["copy.sqlite"])


# -- ivig serve --check ------------------------------------------------------------


def check(*args):
    return CliRunner().invoke(main, ["serve", "--check", *map(str, args)])


def test_serve_check_says_what_would_be_served_and_starts_nothing(tmp_path):
    keys = Keys(tmp_path)
    out = check("--trust", keys.trust, "--feedback-db", tmp_path / "db" / "ivig.sqlite", "--workers", "2")
    assert out.exit_code == 0, out.output
    assert out.stdout.splitlines()[0] == "ivig serve --check: the settings are sound; nothing was started"
    assert "127.0.0.1:8080 (http), 2 workers" in out.stdout
    assert "issuers      https://ehr.example.org/" in out.stdout
    assert "rules        ivig-advisor rules" in out.stdout and "sha256:" in out.stdout


def test_serve_check_refuses_what_a_start_would_refuse(tmp_path):
    keys = Keys(tmp_path)
    beyond = check("--host", "0.0.0.0", "--trust", keys.trust, "--feedback-db", tmp_path / "f.sqlite")
    assert beyond.exit_code == 2 and "plain http" in beyond.output
    broken = tmp_path / "broken.yaml"
    broken.write_text("issuers:\n  - iss: https://ehr.example.org/\n    jwks: missing.json\n")
    bad_trust = check("--trust", broken, "--feedback-db", tmp_path / "f.sqlite")
    assert bad_trust.exit_code == 2 and "missing.json" in bad_trust.output


def test_serve_check_exits_without_listening(tmp_path):
    keys = Keys(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "ivig_advisor.cli", "serve", "--check", "--trust", str(keys.trust)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "nothing was started" in done.stdout and "discovery at" not in done.stderr


def test_serve_check_shows_what_it_read_escaped(tmp_path):
    # a URL or a path can hold a newline that would print a line of its own (an issuer that holds
    # one is refused at start: test_app_attack.py)
    keys = Keys(tmp_path)
    database = tmp_path / "db\x1b[2J\nFORGED" / "ivig.sqlite"
    out = check("--trust", keys.trust, "--public-url", "https://x\n  issuers      FORGED", "--feedback-db", database)
    assert out.exit_code == 0, out.output
    lines = out.stdout.splitlines()
    assert [line.split()[0] for line in lines[1:]] == ["listen", "public", "issuers", "database", "rules"], lines
    assert "\x1b" not in out.stdout and "https://x\\n  issuers      FORGED" in out.stdout


def test_serve_check_creates_no_database_nor_folder(tmp_path):
    # run by hand as root before an upgrade, or with a typo, a check must leave the disk as it was
    keys = Keys(tmp_path)
    out = check("--trust", keys.trust, "--feedback-db", tmp_path / "var" / "lib" / "ivig.sqlite")
    assert out.exit_code == 0, out.output
    assert not (tmp_path / "var").exists()


def test_serve_check_writes_nothing_into_an_existing_file(tmp_path):
    # a new version's check, beside the old service, must not add its columns to the live file
    keys = Keys(tmp_path)
    other = tmp_path / "other.sqlite"
    db = sqlite3.connect(other)
    db.execute("create table card (uuid text primary key)")  # as an older version wrote it
    db.commit()
    db.close()
    before = other.read_bytes()
    out = check("--trust", keys.trust, "--feedback-db", other)
    assert out.exit_code == 0, out.output
    assert other.read_bytes() == before


def test_serve_check_says_which_database_it_cannot_use(tmp_path):
    keys = Keys(tmp_path)
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database" * 500)
    for database, why in ((junk, "not the SQLite file"), (junk / "ivig.sqlite", "not a folder")):
        out = check("--trust", keys.trust, "--feedback-db", database)
        assert out.exit_code == 2 and f"{database}" in out.stderr and why in out.stderr, out.output


def test_serve_says_which_database_it_cannot_use_before_it_listens(tmp_path):
    keys = Keys(tmp_path)
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database" * 500)
    for database, why in ((junk, "not an SQLite file"), (junk / "ivig.sqlite", "not a folder")):
        out = CliRunner().invoke(main, ["serve", "--trust", str(keys.trust), "--feedback-db", str(database)])
        assert out.exit_code == 2 and f"{database}" in out.stderr and why in out.stderr, out.output  # not 70, a bug


def test_a_backup_on_a_read_only_medium_can_be_restored(tmp_path):
    # the copies kept on a share mounted read-only, or by a user who may only read them: SQLite
    # cannot read a WAL-mode file where it may not make its -shm file
    db = tmp_path / "ivig.sqlite"
    store_with_cards(db, 4)
    kept = tmp_path / "kept"
    kept.mkdir()
    assert invoke("backup", db, kept / "copy.sqlite").exit_code == 0
    kept.chmod(0o555)
    restored = tmp_path / "restored.sqlite"
    status, stdout, stderr = ivig("backup", kept / "copy.sqlite", restored, prefix=unprivileged())
    assert status == 0, stderr
    assert cards_in(restored) == 4 and sorted(p.name for p in kept.iterdir()) == ["copy.sqlite"]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_mid_copy_leaves_no_temporary_file(tmp_path, signum):
    db = tmp_path / "ivig.sqlite"
    store = FeedbackStore(db)
    for batch in range(6):  # about 30 MB: the copy takes a while
        cards = [{"uuid": f"c{batch}-{i}", "indicator": "info", "summary": "s" * 1000} for i in range(5000)]
        store.keep_many([("ivig-order-select", "order-select", cards, None, None)])
    folder = tmp_path / "backups"
    folder.mkdir()
    running = subprocess.Popen(
        [sys.executable, "-m", "ivig_advisor.cli", "backup", str(db), str(folder)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as at a terminal, even if ignored here
    )
    while not any(folder.iterdir()) and running.poll() is None:
        pass  # until the copy has begun
    running.send_signal(signum)
    stdout, stderr = running.communicate(timeout=120)
    left = sorted(p.name for p in folder.iterdir())
    if running.returncode == 0:  # it had finished: the copy is whole
        assert len(left) == 1 and cards_in(folder / left[0]) == 30000, (left, stderr)
    else:
        assert running.returncode == 128 + signum, stderr
        assert not leftovers(folder), left


def test_a_name_sqlite_takes_for_a_files_journal_is_refused(tmp_path):
    # SQLite deletes a copy named ivig.sqlite-wal the next time ivig.sqlite is opened, as a WAL of no use
    db = tmp_path / "ivig.sqlite"
    store_with_cards(db, 2)
    served = tmp_path / "srv"
    served.mkdir()
    shutil.copyfile(db, served / "ivig.sqlite")  # the service's file, the service stopped
    for end in ("-wal", "-shm", "-journal"):
        out = invoke("backup", db, f"{served / 'ivig.sqlite'}{end}")
        assert out.exit_code == 2, out.output
        assert (
            f"error: {served / 'ivig.sqlite'}{end}: SQLite takes it for a file of {served / 'ivig.sqlite'}"
            in out.stderr
        )
    assert sorted(p.name for p in served.iterdir()) == ["ivig.sqlite"]
