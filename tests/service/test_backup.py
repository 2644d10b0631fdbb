"""`ivig backup` (issue 30, a service a hospital can run): a copy of the service's SQLite file taken
while writers write it, with what is still in its WAL, checked, and never over a file; and
`ivig serve --check`, which checks a start's settings without listening. Through the real CLI."""

import os
import shutil
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

from click.testing import CliRunner
from helpers import Keys, invoke

from ivig_advisor.cli import main
from ivig_advisor.engine.service.feedback import FeedbackStore


def store_with_cards(path: Path, count: int) -> FeedbackStore:
    store = FeedbackStore(path)
    cards = [{"uuid": f"card-{i}", "indicator": "info", "summary": "s"} for i in range(count)]
    store.keep_many([("ivig-order-select", "order-select", cards, None, None)])
    return store


def cards_in(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return db.execute("select count(*) from card").fetchone()[0]
    finally:
        db.close()


def leftovers(folder: Path) -> list:
    return [p.name for p in folder.iterdir() if p.name.endswith(".part")]


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
    hostile = tmp_path / "copy\x1b[2J.sqlite"
    out = invoke("backup", db, hostile)
    assert out.exit_code == 0, out.output
    assert "\x1b" not in out.stdout and hostile.is_file()


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
