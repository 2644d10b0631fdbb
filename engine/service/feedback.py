"""What clinicians did with the cards: an embedded SQLite file a reviewer can read.

`ivig serve` keeps each card it returns (its uuid, service, hook, the rule
and indicator, and the issuer and tenant of the token it answered: never
patient data) and each feedback the EHR posts (accepted or overridden, the
override reason, the suggestions taken), so that `ivig audit overrides` can
show which rules clinicians override and why. Feedback is taken only for
cards the service issued to the same issuer and tenant, so that no caller
can fill the file with cards that never were, or speak for another's; a
suggestion accepted is one of that card's own, and the outcome's time is
neither before the card was issued nor in the future (both within
CLOCK_SKEW). Every feedback is kept, as the spec asks a client to report
each action (a card ignored may be acted on later); the audit counts each
card once, at its latest outcome. The same file keeps the JWT ids already
seen (`jti`), so that a token replayed to any worker process is refused, and
the trail of calls (service/calls.py: who called, what they got, how fast;
never patient data), written with the cards.

Several uvicorn workers write the file at once: it is in WAL mode, every
write is one short transaction, and a writer waits (busy timeout) rather
than fails when another holds the lock. An audit reads it read-only
(`read_only`), beside a running service, and never creates or changes it.
"""

import datetime as dt
import json
import os
import re
import sqlite3
import threading
import time
from pathlib import Path
from typing import List, Optional, Sequence

from ..base.errors import FeedbackInvalid, IvigError, UnknownCard
from ..base.escape import for_terminal

_SCHEMA = """
create table if not exists card (
    uuid text primary key, service text not null, hook text not null, rule text,
    indicator text not null, summary text not null, suggestions text not null, created real not null);
create table if not exists feedback (
    id integer primary key, card text not null, service text not null, outcome text not null,
    reason_system text, reason_code text, reason_display text, comment text,
    accepted text not null, outcome_time text not null, received real not null);
create index if not exists feedback_card on feedback (card);
create table if not exists seen_token (jti text primary key, expires real not null);
create table if not exists call (
    id integer primary key, time real not null, kind text not null, service text not null, hook text,
    hook_instance text, issuer text, tenant text, status integer, latency_ms real, cards integer not null,
    critical integer not null, warning integer not null, info integer not null, partial text, stored integer,
    rules_hash text);
create index if not exists call_time on call (time);
"""
_CALLER_COLUMNS = ("issuer", "tenant")  # of card: added to files written before they were kept
# A row of the call trail as calls.CallNote.row gives it (the `call` table above, but its id)
CALL_COLUMNS = (
    "time",
    "kind",
    "service",
    "hook",
    "hook_instance",
    "issuer",
    "tenant",
    "status",
    "latency_ms",
    "cards",
    "critical",
    "warning",
    "info",
    "partial",
    "stored",
    "rules_hash",
)
_KEEP_CALL = f"insert into call ({', '.join(CALL_COLUMNS)}) values ({', '.join(':' + c for c in CALL_COLUMNS)})"
OUTCOMES = ("accepted", "overridden")
# CDS Hooks 2.0: outcomeTimestamp is a date and time in UTC "as profiled in section 5.6 of RFC 3339":
# seconds required, a fraction allowed; Z or an offset (which names the same instant); T and Z in
# either case (RFC 3339 5.6, note)
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", re.ASCII)
CLOCK_SKEW = (
    300  # seconds an EHR's clock may be off: an outcome dated later than now, or before its card, by more is refused
)
TEXT_MAX = 120  # characters of one reason (or rule) `ivig audit overrides` prints; a longer one is cut, saying so


class FeedbackFileUnreadable(IvigError, ValueError):
    """A file an audit cannot read as the one `ivig serve` keeps; the message names it and says why."""


class FeedbackStore:
    """The SQLite file; one connection per thread, each write its own transaction."""

    def __init__(self, path):
        """Open the file at `path`, made with its folders if missing, its tables added if older;
        FeedbackFileUnreadable naming it when it cannot be (no SQLite file, a folder not writable)."""
        self.path = str(path)
        self._local = threading.local()
        try:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            db = self._db()
            db.execute("pragma journal_mode = wal")  # outside a transaction, where it can change
            db.executescript(_SCHEMA)
            with self._transaction() as db:
                have = {row[1] for row in db.execute("pragma table_info(card)")}
                for column in _CALLER_COLUMNS:
                    if column not in have:
                        db.execute(f"alter table card add column {column} text")
        except sqlite3.OperationalError as exc:
            raise FeedbackFileUnreadable(f"{path}: cannot be opened or written: {exc}") from None
        except sqlite3.DatabaseError as exc:
            raise FeedbackFileUnreadable(
                f"{path}: not an SQLite file the service can keep its cards in: {exc}"
            ) from None
        except FileExistsError:  # a file where a folder of the path should be
            raise FeedbackFileUnreadable(f"{path}: a file on its path is not a folder") from None
        except OSError as exc:
            raise FeedbackFileUnreadable(f"{path}: its folder cannot be made: {exc.strerror}") from None

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            db.execute("pragma busy_timeout = 30000")
            # WAL with NORMAL sync: a commit is not an fsync (that cost a call several ms); the
            # file is never corrupted, and a power cut can lose only the last commits
            db.execute("pragma synchronous = normal")
        return db

    def _transaction(self) -> "_Transaction":
        return _Transaction(self._db())

    def keep_many(self, answers: List[tuple], calls: Sequence[dict] = (), forget_calls_before=None) -> None:
        """Remember the cards of several answers, (service, hook, cards, issuer, tenant) each, so that
        feedback can name their rules, and rows of the call trail (CALL_COLUMNS each), in one
        transaction (CardKeeper's writer thread calls it); and forget the calls made before
        `forget_calls_before` (seconds since the epoch), if given."""
        now = time.time()
        with self._transaction() as db:
            db.executemany(_KEEP_CALL, calls)
            if forget_calls_before is not None:
                db.execute("delete from call where time < ?", (forget_calls_before,))
            db.executemany(
                "insert or ignore into card (uuid, service, hook, rule, indicator, summary, suggestions, "
                "created, issuer, tenant) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        c["uuid"],
                        service,
                        hook,
                        c.get("rule"),
                        c["indicator"],
                        c["summary"],
                        json.dumps(c.get("suggestions", [])),
                        now,
                        issuer,
                        tenant,
                    )
                    for service, hook, cards, issuer, tenant in answers
                    for c in cards
                ],
            )

    def record(self, service: str, body, issuer: Optional[str] = None, tenant: Optional[str] = None) -> int:
        """Store a POSTed feedback body (all of it or none); the number of items stored.
        FeedbackInvalid when it breaks the spec; UnknownCard when an item names a card this
        service did not issue to `issuer` and `tenant` (None, None: the insecure_dev caller)."""
        items = _checked(body)
        now = time.time()
        for i, item in enumerate(items):
            if _instant(item["outcomeTimestamp"]) > now + CLOCK_SKEW:
                raise FeedbackInvalid(
                    f"feedback[{i}].outcomeTimestamp is in the future: an outcome is dated when the clinician acted"
                )
        rows = []
        for item in items:
            reason = (item.get("overrideReason") or {}).get("reason") or {}
            rows.append(
                (
                    item["card"],
                    service,
                    item["outcome"],
                    reason.get("system"),
                    reason.get("code"),
                    reason.get("display"),
                    (item.get("overrideReason") or {}).get("userComment"),
                    json.dumps([s["id"] for s in item.get("acceptedSuggestions", [])]),
                    item["outcomeTimestamp"],
                    now,
                )
            )
        with self._transaction() as db:
            _check_issued(db, items, service, issuer, tenant)
            db.executemany(
                "insert into feedback (card, service, outcome, reason_system, reason_code, reason_display, "
                "comment, accepted, outcome_time, received) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        return len(rows)

    def first_use(self, jti: str, expires: float) -> bool:
        """True the first time a token id is seen (then kept until it expires); False on a replay."""
        now = time.time()
        with self._transaction() as db:
            db.execute("delete from seen_token where expires < ?", (now - 60,))
            try:
                db.execute("insert into seen_token values (?, ?)", (jti, expires))
            except sqlite3.IntegrityError:
                return False
        return True


def store_check(path) -> str:
    """What a start would find at `path`, found without creating or writing anything (`ivig serve
    --check`): the cards in the file `ivig serve` keeps, or that it is to be created where the
    nearest folder that exists can be written; FeedbackFileUnreadable naming the path otherwise."""
    where = Path(path)
    if where.is_file() and where.stat().st_size:
        db = read_only(where, "card", "holds no cards: it is not a file `ivig serve` keeps")
        try:
            (count,) = db.execute("select count(*) from card").fetchone()
        finally:
            db.close()
        return f"{count:,} card{'s' if count != 1 else ''} kept"
    if where.exists() and not where.is_file():
        raise FeedbackFileUnreadable(f"{path}: not a regular file")
    folder = where.parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise FeedbackFileUnreadable(f"{path}: {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise FeedbackFileUnreadable(f"{path}: to be created, but {folder} cannot be written")
    return "to be created at the first start"


def read_only(path, table: str, lacking: str) -> sqlite3.Connection:
    """A read-only connection to the file `ivig serve` keeps at `path`, which holds `table`: never
    created nor written, so that an audit can read it beside a running service (WAL lets both).
    FeedbackFileUnreadable naming the file when it does not exist, is no SQLite file, or holds no
    `table` (`lacking` says what that means)."""
    where = Path(path)
    if not where.is_file():
        raise FeedbackFileUnreadable(f"{path}: no such file (the --feedback-db of `ivig serve`)")
    try:  # a URI, so that SQLite opens the file read-only: an empty file stays empty
        db = sqlite3.connect(where.absolute().as_uri() + "?mode=ro", uri=True, timeout=30, isolation_level=None)
    except sqlite3.Error as exc:
        raise FeedbackFileUnreadable(f"{path}: cannot be opened: {exc}") from None
    try:
        db.execute("pragma busy_timeout = 30000")
        found = db.execute("select 1 from sqlite_master where type = 'table' and name = ?", (table,)).fetchone()
    except sqlite3.OperationalError as exc:  # locked for good, or a WAL file it may not open beside it
        db.close()
        raise FeedbackFileUnreadable(f"{path}: cannot be read: {exc}") from None
    except sqlite3.DatabaseError as exc:
        db.close()
        raise FeedbackFileUnreadable(f"{path} is not the SQLite file `ivig serve` keeps: {exc}") from None
    if found is None:
        db.close()
        raise FeedbackFileUnreadable(f"{path} {lacking}")
    return db


def overrides(path) -> List[dict]:
    """Per rule, from the file `ivig serve` keeps at `path`: cards shown, and of them how many
    were accepted and overridden, with the override reasons given. Each card counts once, at its
    latest outcome (by outcomeTimestamp, then arrival): a card overridden four times is one card
    overridden. FeedbackFileUnreadable for a file that is not one (read_only)."""
    db = read_only(path, "card", "holds no cards: it is not a feedback file `ivig serve` wrote")
    try:
        db.execute("begin")  # one snapshot of both tables, whatever a running service writes
        cards = db.execute("select uuid, rule, indicator from card").fetchall()
        given = db.execute(
            "select card, outcome, coalesce(reason_display, reason_code, '(no reason given)'), "
            "outcome_time, id from feedback"
        ).fetchall()
    finally:
        db.close()
    latest = {}
    for card, outcome, reason, _when, _order in sorted(given, key=lambda f: (_instant(f[3]), f[4])):
        latest[card] = (outcome, reason)
    rows: dict = {}
    for uuid, rule, indicator in cards:
        row = rows.setdefault(
            (rule, indicator),
            {"rule": rule, "indicator": indicator, "cards": 0, "accepted": 0, "overridden": 0, "reasons": {}},
        )
        row["cards"] += 1
        outcome, reason = latest.pop(uuid, (None, None))
        if outcome in OUTCOMES:
            row[outcome] += 1
        if outcome == "overridden":
            row["reasons"][reason] = row["reasons"].get(reason, 0) + 1
    out = sorted(rows.values(), key=lambda r: (-r["overridden"], r["rule"] or "", r["indicator"] or ""))
    for row in out:
        row["reasons"] = [
            {"reason": r, "count": n} for r, n in sorted(row["reasons"].items(), key=lambda rn: (-rn[1], rn[0]))
        ]
    if latest:  # feedback on cards the file does not hold (one written before cards were checked)
        out.append(
            {
                "rule": None,
                "indicator": None,
                "cards": 0,
                "accepted": 0,
                "overridden": 0,
                "reasons": [],
                "unknown_cards": len(latest),
            }
        )
    return out


class CardKeeper:
    """Keeps cards, and the rows of the call trail, from a writer thread of its own, many to a
    transaction.

    A call only queues its cards and its row; one transaction per call (in a thread per call)
    had cost every call's latency, and tripled it at the tail. The queue is written every
    `every` seconds, and whatever is left when the service stops, or when the process ends
    without stopping it (an app embedded, or under a test client). With `keep_calls_days`, the
    calls older than that are forgotten (at most once an hour, in the transaction of a batch)."""

    def __init__(self, store: FeedbackStore, every: float = 0.05, keep_calls_days: Optional[float] = None):
        import atexit
        import queue

        self.store, self.every = store, every
        self.queue: queue.SimpleQueue[object] = queue.SimpleQueue()  # ("card"/"call", item), a flush or a close
        self.keep_calls_days = keep_calls_days
        self.forgot_at = float("-inf")  # when calls were last forgotten (time.monotonic)
        self.thread = threading.Thread(target=self._write, name="ivig-card-keeper", daemon=True)
        self.thread.start()
        atexit.register(self.close)  # before the daemon thread is stopped mid-queue; once closed, a no-op

    def keep(
        self, service: str, hook: str, cards: List[dict], issuer: Optional[str] = None, tenant: Optional[str] = None
    ) -> None:
        """Queue the cards of one answer, issued to `issuer` and `tenant` (None: no token)."""
        if cards:
            self.queue.put(("card", (service, hook, cards, issuer, tenant)))

    def keep_call(self, row: dict) -> None:
        """Queue a row of the call trail (CALL_COLUMNS: calls.CallNote.row)."""
        self.queue.put(("call", row))

    def close(self) -> None:
        """Write what is queued and stop (again: nothing)."""
        if self.thread.is_alive():
            self.queue.put(None)
            self.thread.join(timeout=30)

    def flush(self) -> None:
        """Return once every card and call queued before this call is written (feedback may name them)."""
        done = threading.Event()
        self.queue.put(done)
        done.wait(timeout=30)

    def _write(self) -> None:
        """Gather what arrives within `every` of the item before (500 items at most), write it in
        one transaction; a flush writes at once, and None (close) writes and stops. Items are
        written in the order they were queued."""
        import queue

        item = self.queue.get()
        while True:
            batch: list = []
            while isinstance(item, tuple) and len(batch) < 500:  # an item read past a full batch starts the next
                batch.append(item)
                try:
                    item = self.queue.get(timeout=self.every)
                except queue.Empty:
                    item = False  # nothing more for now
            self._write_batch(batch)
            if item is None:
                return
            if isinstance(item, threading.Event):
                item.set()
            if not isinstance(item, tuple):
                item = self.queue.get()

    def _write_batch(self, batch: list) -> None:
        if batch:
            answers = [item for kind, item in batch if kind == "card"]
            calls = [item for kind, item in batch if kind == "call"]
            try:
                self.store.keep_many(answers, calls, self._forget_before())
            except Exception as exc:  # a full disk, say: the service goes on; the log says so
                import logging

                logging.getLogger("ivig.serve").error("cards and calls not kept: %s", type(exc).__name__)

    def _forget_before(self) -> Optional[float]:
        """The time before which calls are forgotten in this batch: once an hour, with keep_calls_days."""
        if self.keep_calls_days is None or time.monotonic() - self.forgot_at < 3600:
            return None
        self.forgot_at = time.monotonic()
        return time.time() - self.keep_calls_days * 86400


class _Transaction:
    """`with`: one immediate transaction on a connection, committed or rolled back."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("begin immediate")
        return self.db

    def __exit__(self, kind, value, tb) -> None:
        self.db.execute("commit" if kind is None else "rollback")


def _check_issued(db: sqlite3.Connection, items: List[dict], service: str, issuer, tenant) -> None:
    """UnknownCard unless each item's card is one `service` issued to `issuer` and `tenant`, and
    each suggestion it accepts one of that card's; FeedbackInvalid when its outcome is dated
    before the card was issued."""
    for i, item in enumerate(items):
        found = db.execute(
            "select created, suggestions from card where uuid = ? and service = ? and issuer is ? and tenant is ?",
            (item["card"], service, issuer, tenant),
        ).fetchone()
        if found is None:
            raise UnknownCard(f"feedback[{i}].card names no card this service issued to the caller")
        created, suggestions = found
        if _instant(item["outcomeTimestamp"]) < created - CLOCK_SKEW:
            raise FeedbackInvalid(
                f"feedback[{i}].outcomeTimestamp is before the card was issued "
                f"({dt.datetime.fromtimestamp(created, dt.timezone.utc):%Y-%m-%dT%H:%M:%SZ})"
            )
        own = set(json.loads(suggestions))
        for j, accepted in enumerate(item.get("acceptedSuggestions") or ()):
            if accepted["id"] not in own:
                raise UnknownCard(
                    f"feedback[{i}].acceptedSuggestions[{j}] names no suggestion of that card"
                    + ("" if own else " (it has none: its outcome can only be overridden)")
                )


def _instant(text: str) -> float:
    """Seconds since the epoch of an RFC 3339 date and time (-inf for one that is none: a row
    written before times were checked sorts first)."""
    try:
        return dt.datetime.fromisoformat(text.upper().replace("Z", "+00:00")).timestamp()
    except (ValueError, OverflowError, AttributeError):
        return float("-inf")


def _is_timestamp(text: str) -> bool:
    """Whether `text` is an RFC 3339 date and time (seconds, and Z or an offset), a real one."""
    return _TIMESTAMP.fullmatch(text) is not None and _instant(text) != float("-inf")  # not a 13th month


def _checked(body) -> list:
    """The feedback items of a body, each checked against CDS Hooks 2.0 section 6."""
    if not isinstance(body, dict) or not isinstance(body.get("feedback"), list) or not body["feedback"]:
        raise FeedbackInvalid("the body must be an object with a non-empty 'feedback' array")
    for i, item in enumerate(body["feedback"]):
        where = f"feedback[{i}]"
        if not isinstance(item, dict):
            raise FeedbackInvalid(f"{where} must be an object")
        for key in ("card", "outcome", "outcomeTimestamp"):
            if not isinstance(item.get(key), str) or not item[key]:
                raise FeedbackInvalid(f"{where}.{key} is required (a string)")
        if item["outcome"] not in OUTCOMES:
            raise FeedbackInvalid(f"{where}.outcome must be accepted or overridden")
        if not _is_timestamp(item["outcomeTimestamp"]):
            raise FeedbackInvalid(
                f"{where}.outcomeTimestamp must be a date and time in UTC with its seconds "
                "(RFC 3339), such as 2021-12-11T10:05:31Z"
            )
        _check_accepted(item, where)
        reason = item.get("overrideReason")
        if reason is not None:
            if not isinstance(reason, dict) or not (reason.get("reason") or reason.get("userComment")):
                raise FeedbackInvalid(f"{where}.overrideReason needs a reason (a Coding) or a userComment")
            coding = reason.get("reason")
            if coding is not None and (
                not isinstance(coding, dict)
                or not isinstance(coding.get("code"), str)
                or any(coding.get(k) is not None and not isinstance(coding[k], str) for k in ("system", "display"))
            ):
                raise FeedbackInvalid(
                    f"{where}.overrideReason.reason must be a Coding: code, system and display are strings"
                )
            if reason.get("userComment") is not None and not isinstance(reason["userComment"], str):
                raise FeedbackInvalid(f"{where}.overrideReason.userComment must be a string")
    return body["feedback"]


def _check_accepted(item: dict, where: str) -> None:
    """FeedbackInvalid unless acceptedSuggestions is a list of distinct {"id": ...}, given when
    the outcome is accepted and only then (whether each is the card's own is known once the
    card is found)."""
    accepted = item.get("acceptedSuggestions")
    if item["outcome"] == "accepted" and (not isinstance(accepted, list) or not accepted):
        raise FeedbackInvalid(f"{where}.acceptedSuggestions is required when the outcome is accepted")
    if "acceptedSuggestions" not in item:
        return
    if not isinstance(accepted, list) or not all(
        isinstance(s, dict) and isinstance(s.get("id"), str) for s in accepted
    ):
        raise FeedbackInvalid(f'{where}.acceptedSuggestions must be a list of {{"id": ...}}')
    if accepted and item["outcome"] != "accepted":
        raise FeedbackInvalid(
            f"{where}.acceptedSuggestions names suggestions taken, but the outcome is {item['outcome']}"
        )
    if len({s["id"] for s in accepted}) != len(accepted):
        raise FeedbackInvalid(f"{where}.acceptedSuggestions names one suggestion twice")


def overrides_text(rows: List[dict]) -> str:
    """`ivig audit overrides` for a person: per rule, cards shown, accepted, overridden (each card
    at its latest outcome), and why. What feedback said is shown escaped and bounded (said)."""
    if not rows:
        return "No cards kept yet."
    out = [f"{'rule':40} {'indicator':9} {'cards':>6} {'accepted':>9} {'overridden':>11}"]
    for row in rows:
        if row["rule"] is None and row.get("unknown_cards"):
            out.append(f"({row['unknown_cards']} cards given feedback are not in this file)")
            continue
        out.append(
            f"{said(row['rule'] or '(no rule)'):40} {said(row['indicator'] or ''):9} {row['cards']:>6} "
            f"{row['accepted']:>9} {row['overridden']:>11}"
        )
        out += [f"    overridden {r['count']}x: {said(r['reason'])}" for r in row["reasons"]]
    return "\n".join(out)


def said(text) -> str:
    """Text from the feedback file for a terminal: every control character escaped
    (escape.for_terminal, so a display cannot clear the screen or forge a line), and at most
    TEXT_MAX characters, saying how long it was when cut."""
    text = str(text)
    if len(text) <= TEXT_MAX:
        return for_terminal(text)
    return f"{for_terminal(text[:TEXT_MAX])}... (cut: {len(text):,} characters in all)"
