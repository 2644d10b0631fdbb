"""What clinicians did with the cards: an embedded SQLite file a reviewer can read.

`ivig serve` keeps each card it returns (its uuid, service, hook, the rule
and indicator, and the issuer and tenant of the token it answered: never
patient data) and each feedback the EHR posts (accepted or overridden, the
override reason, the suggestions taken), so that `ivig audit overrides` can
show which rules clinicians override and why. Feedback is taken only for
cards the service issued to the same issuer and tenant, so that no caller
can fill the file with cards that never were, or speak for another's. The
same file keeps the JWT ids already seen (`jti`), so that a token replayed
to any worker process is refused.

Several uvicorn workers write the file at once: it is in WAL mode, every
write is one short transaction, and a writer waits (busy timeout) rather
than fails when another holds the lock.
"""

import datetime as dt
import json
import re
import sqlite3
import threading
import time
from pathlib import Path
from typing import List, Optional

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
"""
_CALLER_COLUMNS = ("issuer", "tenant")  # of card: added to files written before they were kept
OUTCOMES = ("accepted", "overridden")
# CDS Hooks 2.0: outcomeTimestamp is an ISO 8601 date and time in UTC (an offset is read too)
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})", re.ASCII)


class FeedbackInvalid(ValueError):
    """A feedback body that breaks the CDS Hooks 2.0 contract; the message says where."""


class CardUnknown(LookupError):
    """Feedback that names a card this service did not issue to the caller; the message says which."""


class FeedbackStore:
    """The SQLite file; one connection per thread, each write its own transaction."""

    def __init__(self, path):
        self.path = str(path)
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        db = self._db()
        db.execute("pragma journal_mode = wal")  # outside a transaction, where it can change
        db.executescript(_SCHEMA)
        with self._transaction() as db:
            have = {row[1] for row in db.execute("pragma table_info(card)")}
            for column in _CALLER_COLUMNS:
                if column not in have:
                    db.execute(f"alter table card add column {column} text")

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

    def keep_many(self, answers: List[tuple]) -> None:
        """Remember the cards of several answers, (service, hook, cards, issuer, tenant) each, in one
        transaction, so that feedback can name their rules (CardKeeper's writer thread calls it)."""
        now = time.time()
        with self._transaction() as db:
            db.executemany("insert or ignore into card (uuid, service, hook, rule, indicator, summary, suggestions, "
                           "created, issuer, tenant) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           [(c["uuid"], service, hook, c.get("rule"), c["indicator"], c["summary"],
                             json.dumps(c.get("suggestions", [])), now, issuer, tenant)
                            for service, hook, cards, issuer, tenant in answers for c in cards])

    def record(self, service: str, body, issuer: Optional[str] = None, tenant: Optional[str] = None) -> int:
        """Store a POSTed feedback body (all of it or none); the number of items stored.
        FeedbackInvalid when it breaks the spec; CardUnknown when an item names a card this
        service did not issue to `issuer` and `tenant` (None, None: the insecure_dev caller)."""
        items = _checked(body)
        now = time.time()
        rows = []
        for item in items:
            reason = (item.get("overrideReason") or {}).get("reason") or {}
            rows.append((item["card"], service, item["outcome"], reason.get("system"), reason.get("code"),
                         reason.get("display"), (item.get("overrideReason") or {}).get("userComment"),
                         json.dumps([s["id"] for s in item.get("acceptedSuggestions", [])]),
                         item["outcomeTimestamp"], now))
        with self._transaction() as db:
            _check_issued(db, [item["card"] for item in items], service, issuer, tenant)
            db.executemany("insert into feedback (card, service, outcome, reason_system, reason_code, reason_display, "
                           "comment, accepted, outcome_time, received) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
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

    def overrides(self) -> List[dict]:
        """Per rule: cards shown, feedback accepted and overridden, and the override reasons given."""
        db = sqlite3.connect(self.path, timeout=30)
        try:
            rows = db.execute(
                "select c.rule, c.indicator, count(distinct c.uuid), "
                "sum(f.outcome = 'accepted'), sum(f.outcome = 'overridden') "
                "from card c left join feedback f on f.card = c.uuid group by c.rule, c.indicator "
                "order by sum(f.outcome = 'overridden') desc, c.rule").fetchall()
            reasons = db.execute(
                "select c.rule, coalesce(f.reason_display, f.reason_code, '(no reason given)'), count(*) "
                "from feedback f join card c on c.uuid = f.card where f.outcome = 'overridden' "
                "group by 1, 2 order by 3 desc").fetchall()
            unknown = db.execute("select count(*) from feedback where card not in (select uuid from card)").fetchone()[0]
        finally:
            db.close()
        out = [{"rule": rule, "indicator": indicator, "cards": cards, "accepted": accepted or 0,
                "overridden": overridden or 0,
                "reasons": [{"reason": r, "count": n} for rr, r, n in reasons if rr == rule]}
               for rule, indicator, cards, accepted, overridden in rows]
        if unknown:
            out.append({"rule": None, "indicator": None, "cards": 0, "accepted": 0, "overridden": 0, "reasons": [],
                        "unknown_cards": unknown})
        return out


class CardKeeper:
    """Keeps cards from a writer thread of its own, many to a transaction.

    A call only queues its cards; one transaction per call (in a thread per call) had
    cost every call's latency, and tripled it at the tail. The queue is written every
    `every` seconds, and whatever is left when the service stops."""

    def __init__(self, store: FeedbackStore, every: float = 0.05):
        import queue
        self.store, self.every, self.queue = store, every, queue.SimpleQueue()
        self.thread = threading.Thread(target=self._write, name="ivig-card-keeper", daemon=True)
        self.thread.start()

    def keep(self, service: str, hook: str, cards: List[dict], issuer: Optional[str] = None,
             tenant: Optional[str] = None) -> None:
        """Queue the cards of one answer, issued to `issuer` and `tenant` (None: no token)."""
        if cards:
            self.queue.put((service, hook, cards, issuer, tenant))

    def close(self) -> None:
        """Write what is queued and stop."""
        self.queue.put(None)
        self.thread.join(timeout=30)

    def flush(self) -> None:
        """Return once every card queued before this call is written (feedback may name them)."""
        done = threading.Event()
        self.queue.put(done)
        done.wait(timeout=30)

    def _write(self) -> None:
        """Gather what arrives within `every` of the item before (500 answers at most), write it in
        one transaction; a flush writes at once, and None (close) writes and stops. Items are
        written in the order they were queued."""
        import queue
        item = self.queue.get()
        while True:
            batch = []
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
            try:
                self.store.keep_many(batch)
            except Exception as exc:  # a full disk, say: the service goes on; the log says so
                import logging
                logging.getLogger("ivig.serve").error("cards not kept: %s", type(exc).__name__)


class _Transaction:
    """`with`: one immediate transaction on a connection, committed or rolled back."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("begin immediate")
        return self.db

    def __exit__(self, kind, value, tb) -> None:
        self.db.execute("commit" if kind is None else "rollback")


def _check_issued(db: sqlite3.Connection, cards: List[str], service: str, issuer, tenant) -> None:
    """CardUnknown unless each card is one `service` issued to `issuer` and `tenant`."""
    for i, card in enumerate(cards):
        found = db.execute("select 1 from card where uuid = ? and service = ? and issuer is ? and tenant is ?",
                           (card, service, issuer, tenant)).fetchone()
        if found is None:
            raise CardUnknown(f"feedback[{i}].card names no card this service issued to the caller")


def _is_timestamp(text: str) -> bool:
    """Whether `text` is an ISO 8601 date and time with its offset from UTC, a real one."""
    if not _TIMESTAMP.fullmatch(text):
        return False
    try:
        dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:  # a 13th month, a 31st of June
        return False
    return True


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
            raise FeedbackInvalid(f"{where}.outcomeTimestamp must be a date and time in UTC, such as "
                                  "2021-12-11T10:05:31Z")
        accepted = item.get("acceptedSuggestions")
        if item["outcome"] == "accepted" and (not isinstance(accepted, list) or not accepted):
            raise FeedbackInvalid(f"{where}.acceptedSuggestions is required when the outcome is accepted")
        if "acceptedSuggestions" in item and (not isinstance(accepted, list)
                                     or not all(isinstance(s, dict) and isinstance(s.get("id"), str) for s in accepted)):
            raise FeedbackInvalid(f"{where}.acceptedSuggestions must be a list of {{\"id\": ...}}")
        reason = item.get("overrideReason")
        if reason is not None:
            if not isinstance(reason, dict) or not (reason.get("reason") or reason.get("userComment")):
                raise FeedbackInvalid(f"{where}.overrideReason needs a reason (a Coding) or a userComment")
            coding = reason.get("reason")
            if coding is not None and (not isinstance(coding, dict) or not isinstance(coding.get("code"), str)
                                       or any(coding.get(k) is not None and not isinstance(coding[k], str)
                                              for k in ("system", "display"))):
                raise FeedbackInvalid(f"{where}.overrideReason.reason must be a Coding: code, system and display "
                                      "are strings")
            if reason.get("userComment") is not None and not isinstance(reason["userComment"], str):
                raise FeedbackInvalid(f"{where}.overrideReason.userComment must be a string")
    return body["feedback"]


def overrides_text(rows: List[dict]) -> str:
    """`ivig audit overrides` for a person: per rule, cards shown, accepted, overridden, and why."""
    if not rows:
        return "No cards kept yet."
    out = [f"{'rule':40} {'indicator':9} {'cards':>6} {'accepted':>9} {'overridden':>11}"]
    for row in rows:
        if row["rule"] is None and row.get("unknown_cards"):
            out.append(f"({row['unknown_cards']} feedback items name cards this file does not hold)")
            continue
        out.append(f"{row['rule'] or '(no rule)':40} {row['indicator'] or '':9} {row['cards']:>6} "
                   f"{row['accepted']:>9} {row['overridden']:>11}")
        out += [f"    overridden {r['count']}x: {r['reason']}" for r in row["reasons"]]
    return "\n".join(out)
