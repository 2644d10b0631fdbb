"""The trail of CDS Hooks calls: who called which service, what they were answered and how fast,
never what a call said of a patient (issue 30, accountability).

`ivig serve` notes every POST to a service or to its feedback in `CallTrail`, an ASGI middleware
around the whole app, so that a call refused anywhere (a token, a body, a service, an internal
error, insecure-dev's loopback guard) is noted with the status its caller got and the time from
its arrival to the end of its answer. The card keeper writes each row in the transactions that
keep the cards (feedback.CardKeeper): a call never waits on SQLite. `ivig audit calls` reads the
rows (`report`), read-only, beside a running service.

A row holds the time, the kind (a hook call or feedback), the service id, the hook, the
hookInstance, the verified token's issuer and tenant, the status, the latency, the cards by
indicator, the prefetch keys read in part, the outcomes a feedback stored and the rule base's
hash. What comes from a request is kept only once checked: the hook when it is one the service
answers (UNKNOWN_HOOK otherwise), the hookInstance when it is a UUID (MALFORMED otherwise), a
prefetch key when the services file names it; the service id of the path and the tenant are cut
to a bound. Nothing else of a request is kept: no patient, record, code, prefetch, token or text.
Whatever a row holds is escaped where it is shown (a terminal, a spreadsheet, JSON).
"""

import csv
import datetime as dt
import io
import json
import math
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Collection, Dict, List, MutableMapping, Optional, Tuple

from ..base.escape import for_spreadsheet
from .feedback import CALL_COLUMNS, read_only, said
from .paging import next_link

NOTE = "ivig.call"  # the key of a call's CallNote in its ASGI scope, where its handler adds to it
INDICATORS = ("critical", "warning", "info")  # a CDS Hooks 2.0 card's indicator
MALFORMED = "malformed"  # a hookInstance that is no UUID: kept as this word, never as its text
UNKNOWN_HOOK = "(unknown)"  # a hook no service here answers
OTHER_KEY = "(other)"  # a prefetch key read in part that the services file does not name
SERVICE_MAX, ISSUER_MAX, TENANT_MAX = 64, 200, 100  # characters kept of what a caller names
_ROUTE = re.compile(r"/cds-services/([^/]+)(/feedback)?")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.ASCII | re.IGNORECASE)
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
PERCENTILES = (50, 95, 99)
CSV_COLUMNS = CALL_COLUMNS
NO_TRAIL = "holds no trail of calls: no `ivig serve` that keeps one has opened it yet (it adds the trail as it starts)"


@dataclass
class CallNote:
    """What the trail keeps of one call, filled as it is answered: by CallTrail (the service, the
    status, the latency) and by the call's handler (the caller, the hook, the cards)."""

    kind: str  # "hook" or "feedback"
    service: str
    rules_hash: Optional[str] = None
    time: float = field(default_factory=time.time)
    status: Optional[int] = None  # None: no answer was sent (the call was cut off)
    latency_ms: Optional[float] = None
    issuer: Optional[str] = None
    tenant: Optional[str] = None
    hook: Optional[str] = None
    hook_instance: Optional[str] = None
    by_indicator: Dict[str, int] = field(default_factory=lambda: dict.fromkeys(INDICATORS, 0))
    partial: List[str] = field(default_factory=list)
    stored: Optional[int] = None

    def caller(self, issuer: Optional[str], tenant: Optional[str]) -> None:
        """The issuer and tenant of the call's verified token (None, None: insecure-dev)."""
        self.issuer, self.tenant = _cut(issuer, ISSUER_MAX), _cut(tenant, TENANT_MAX)

    def heard(self, body, hooks: Collection[str]) -> None:
        """The hook (one of `hooks`, else UNKNOWN_HOOK) and hookInstance (a UUID, else MALFORMED)
        of a hook call's parsed body: never any other text of it."""
        if not isinstance(body, dict):
            return
        hook, instance = body.get("hook"), body.get("hookInstance")
        if hook is not None:
            self.hook = hook if isinstance(hook, str) and hook in hooks else UNKNOWN_HOOK
        if instance is not None:
            self.hook_instance = (
                instance.lower() if isinstance(instance, str) and _UUID.fullmatch(instance) else MALFORMED
            )

    def answered(self, cards: List[dict], prefetch, keys: Collection[str]) -> None:
        """The cards a call was answered with, counted by indicator, and the keys of its prefetch
        read in part (a searchset still holding a `next` link), each one of `keys` or OTHER_KEY."""
        for card in cards:
            if card.get("indicator") in self.by_indicator:
                self.by_indicator[card["indicator"]] += 1
        if isinstance(prefetch, dict):
            self.partial = sorted({key if key in keys else OTHER_KEY for key, v in prefetch.items() if next_link(v)})

    def row(self) -> dict:
        """The row of the `call` table (feedback.CALL_COLUMNS)."""
        return {
            "time": self.time,
            "kind": self.kind,
            "service": self.service,
            "hook": self.hook,
            "hook_instance": self.hook_instance,
            "issuer": self.issuer,
            "tenant": self.tenant,
            "status": self.status,
            "latency_ms": self.latency_ms,
            "cards": sum(self.by_indicator.values()),
            **self.by_indicator,
            "partial": json.dumps(self.partial) if self.partial else None,
            "stored": self.stored,
            "rules_hash": self.rules_hash,
        }


def note_of(scope: MutableMapping[str, Any]) -> CallNote:
    """The CallNote of a request's ASGI scope (one that goes nowhere when CallTrail is not around the app)."""
    return scope.get(NOTE) or CallNote("hook", "")


class CallTrail:
    """ASGI middleware: each POST to /cds-services/{id} or /cds-services/{id}/feedback becomes a
    row of the trail, given to `keep` once the answer is sent (or the app failed: 500, which
    Starlette's outermost middleware answers). Outermost of the app's own middleware, so that
    every answer passes through it; the latency runs from the request's arrival here to the end
    of its answer."""

    def __init__(self, app, keep: Callable[[dict], None], rules_hash: Optional[str] = None):
        self.app, self.keep, self.rules_hash = app, keep, rules_hash

    async def __call__(self, scope, receive, send):
        found = _ROUTE.fullmatch(scope.get("path", "")) if scope["type"] == "http" else None
        if found is None or scope.get("method") != "POST":
            return await self.app(scope, receive, send)
        kind = "feedback" if found.group(2) else "hook"
        note = scope[NOTE] = CallNote(kind, _cut(found.group(1), SERVICE_MAX) or "", self.rules_hash)
        arrived = time.perf_counter()

        async def answer(message):
            if message["type"] == "http.response.start":
                note.status = message["status"]
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                note.latency_ms = (time.perf_counter() - arrived) * 1000

        try:
            await self.app(scope, receive, answer)
        except Exception:
            note.status = note.status or 500  # answered outside, by Starlette's ServerErrorMiddleware
            raise
        finally:
            if note.latency_ms is None:
                note.latency_ms = (time.perf_counter() - arrived) * 1000
            self.keep(note.row())


def _cut(text: Optional[str], limit: int) -> Optional[str]:
    """`text` cut to `limit` characters (a caller's text is kept bounded)."""
    return text if text is None or len(text) <= limit else text[:limit]


# -- reading the trail -------------------------------------------------------------------------------


@dataclass
class CallQuery:
    """Which calls a report is about: since and until (seconds since the epoch; until excluded),
    of an issuer, answered with a status."""

    since: Optional[float] = None
    until: Optional[float] = None
    issuer: Optional[str] = None
    status: Optional[int] = None

    def where(self, *more: str) -> Tuple[str, list]:
        """The SQL `where` clause of the query (with `more` conditions) and its parameters."""
        conditions, args = list(more), []
        for condition, value in (
            ("time >= ?", self.since),
            ("time < ?", self.until),
            ("issuer = ?", self.issuer),
            ("status = ?", self.status),
        ):
            if value is not None:
                conditions.append(condition)
                args.append(value)
        return ("where " + " and ".join(conditions) if conditions else ""), args


def instant(text: str, end_of_day: bool = False) -> float:
    """Seconds since the epoch of an ISO date and time (UTC unless it gives its offset) or of a date
    (its first instant; with `end_of_day`, the first of the day after). ValueError saying what is
    expected for anything else."""
    try:
        if _DAY.fullmatch(text):
            day = dt.datetime.combine(dt.date.fromisoformat(text), dt.time(), dt.timezone.utc)
            return (day + dt.timedelta(days=1 if end_of_day else 0)).timestamp()
        moment = dt.datetime.fromisoformat(re.sub("[Zz]$", "+00:00", text.strip()))
    except ValueError:
        raise ValueError(
            f"{text!r} is no date (2026-11-25) nor date and time (2026-11-25T10:05:31Z, UTC unless it says)"
        ) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)).timestamp()


def until_instant(text: str) -> float:
    """The end of a report's period given as --until: after the whole day of a date, after the
    millisecond of a date and time (the time a report shows a call at takes that call in)."""
    return instant(text, end_of_day=True) if _DAY.fullmatch(text) else instant(text) + 0.001


def report(path, query: Optional[CallQuery] = None, limit: Optional[int] = None) -> dict:
    """The calls of the file `ivig serve` keeps at `path` that `query` chooses: {"summary": what
    they were, "calls": the latest `limit` of them (None: all), oldest first, as `shown`}. Read in
    one snapshot, read-only; FeedbackFileUnreadable for a file that holds no trail."""
    query = query or CallQuery()
    db = read_only(path, "call", NO_TRAIL)
    try:
        db.execute("begin")  # one snapshot, whatever a running service writes meanwhile
        return {"summary": _summary(db, query), "calls": _latest(db, query, limit)}
    finally:
        db.close()


def _summary(db, query: CallQuery) -> dict:
    """What the chosen calls were: how many, when, by status, by service and hook, latency
    percentiles, cards by indicator, reads in part, feedback, and the rule bases that answered."""
    where, args = query.where()
    calls, first, last = db.execute(f"select count(*), min(time), max(time) from call {where}", args).fetchone()
    by_status = db.execute(f"select status, count(*) from call {where} group by status order by status", args)
    by_service = db.execute(
        f"select kind, service, hook, count(*) from call {where} group by kind, service, hook "
        "order by count(*) desc, kind, service, hook",
        args,
    )
    cards = db.execute(
        f"select coalesce(sum(cards), 0), {', '.join(f'coalesce(sum({i}), 0)' for i in INDICATORS)} from call {where}",
        args,
    ).fetchone()
    rules = db.execute(f"select rules_hash, count(*) from call {where} group by rules_hash order by min(time)", args)
    feedback_where, feedback_args = query.where("kind = 'feedback'")
    posts, stored = db.execute(
        f"select count(*), coalesce(sum(stored), 0) from call {feedback_where}", feedback_args
    ).fetchone()
    return {
        "calls": calls,
        "first": _shown_time(first),
        "last": _shown_time(last),
        "by_status": [{"status": status, "calls": n} for status, n in by_status],
        "by_service": [{"kind": k, "service": s, "hook": h, "calls": n} for k, s, h, n in by_service],
        "latency_ms": _latency(db, query),
        "cards": dict(zip(("total", *INDICATORS), cards)),
        "read_in_part": _read_in_part(db, query),
        "feedback": {"posts": posts, "stored": stored},
        "rules": [{"rules_hash": h, "calls": n} for h, n in rules],
    }


def _latency(db, query: CallQuery) -> dict:
    """The latency percentiles (nearest rank) and maximum of the chosen calls, in ms (None: no
    call); from one sorted read, however many percentiles (a sort each took seconds on 500,000 calls)."""
    where, args = query.where("latency_ms is not null")
    (timed,) = db.execute(f"select count(*) from call {where}", args).fetchone()
    ranks = {f"p{p}": max(math.ceil(p / 100 * timed) - 1, 0) for p in PERCENTILES}
    ranks["max"] = timed - 1
    at_rank: Dict[int, float] = {}
    if timed:
        ordered = db.execute(f"select latency_ms from call {where} order by latency_ms", args)
        for rank, (latency,) in enumerate(ordered):
            if rank in ranks.values():
                at_rank[rank] = latency
    return {name: _ms(at_rank.get(rank)) for name, rank in ranks.items()}


def _read_in_part(db, query: CallQuery) -> dict:
    """How many of the chosen calls read the record in part, and how often each prefetch key was."""
    where, args = query.where("partial is not null")
    keys: Dict[str, int] = {}
    calls = 0
    for (partial,) in db.execute(f"select partial from call {where}", args):
        calls += 1
        for key in json.loads(partial):
            keys[key] = keys.get(key, 0) + 1
    return {"calls": calls, "keys": keys}


def _latest(db, query: CallQuery, limit: Optional[int]) -> List[dict]:
    """The latest `limit` chosen calls (None: all), oldest first, as `shown`."""
    where, args = query.where()
    rows = db.execute(
        f"select {', '.join(CALL_COLUMNS)} from call {where} order by time desc, id desc limit ?",
        [*args, -1 if limit is None else limit],
    ).fetchall()
    return [shown(dict(zip(CALL_COLUMNS, row))) for row in reversed(rows)]


def shown(row: dict) -> dict:
    """A row as a report gives it: its time in ISO 8601 UTC (to the millisecond, cut rather than
    rounded), its latency to 0.1 ms, its keys read in part as a list."""
    return dict(
        row,
        time=_shown_time(row["time"]),
        latency_ms=_ms(row["latency_ms"]),
        partial=json.loads(row["partial"]) if row["partial"] else [],
    )


def _shown_time(seconds: Optional[float]) -> Optional[str]:
    if seconds is None:
        return None
    moment = dt.datetime.fromtimestamp(math.floor(seconds * 1000) / 1000, dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _ms(value: Optional[float]) -> Optional[float]:
    return None if value is None else round(value, 1)


# -- showing it ------------------------------------------------------------------------------------------


def calls_text(got: dict) -> str:
    """`ivig audit calls` for a person: the summary, then the latest calls a line each. What a
    caller named (service, issuer, tenant) is shown escaped and bounded (feedback.said)."""
    summary = got["summary"]
    n = summary["calls"]
    if not n:
        return "0 calls."
    out = [f"{n} call{_s(n)}, {summary['first']} to {summary['last']}", "", f"{'status':>6}  {'calls':>7}"]
    out += [f"{_status(s['status']):>6}  {s['calls']:>7}" for s in summary["by_status"]]
    out += ["", f"{'service':28} {'hook':20} {'calls':>7}"]
    out += [f"{said(s['service']):28} {_hook(s):20} {s['calls']:>7}" for s in summary["by_service"]]
    out += ["", _latency_line(summary["latency_ms"]), _cards_line(summary["cards"])]
    part = summary["read_in_part"]
    keys = ", ".join(f"{said(k)}: {v}" for k, v in sorted(part["keys"].items()))
    out.append(f"read in part: {part['calls']} call{_s(part['calls'])}" + (f" ({keys})" if keys else ""))
    feedback = summary["feedback"]
    posts, stored = feedback["posts"], feedback["stored"]
    out.append(f"feedback: {posts} post{_s(posts)}, {stored} outcome{_s(stored)} stored")
    out += [
        f"rule base {said(r['rules_hash'] or '(none)')}: {r['calls']} call{_s(r['calls'])}" for r in summary["rules"]
    ]
    calls = got["calls"]
    out += ["", f"the last {len(calls)} of {n} calls, oldest first:", _HEADER]
    out += [_call_line(row) for row in calls]
    return "\n".join(out)


_HEADER = (
    f"{'time (UTC)':24}  {'status':>6}  {'ms':>8}  {'service':24} {'hook':14} {'cards':>5} {'c/w/i':9} "
    f"{'read in part':14} {'issuer':28} {'tenant':12} hookInstance"
)


def _hook(row: dict) -> str:
    """The hook of a row or a summary's line, as the text shows it."""
    return "(feedback)" if row["kind"] == "feedback" else said(row["hook"] or "-")


def _call_line(row: dict) -> str:
    hook = _hook(row)
    cards = f"{row['critical']}/{row['warning']}/{row['info']}"
    latency = "-" if row["latency_ms"] is None else f"{row['latency_ms']:.1f}"
    return (
        f"{row['time']:24}  {_status(row['status']):>6}  {latency:>8}  {said(row['service']):24} {hook:14} "
        f"{row['cards']:>5} {cards:9} {said(','.join(row['partial']) or '-'):14} {said(row['issuer'] or '-'):28} "
        f"{said(row['tenant'] or '-'):12} {said(row['hook_instance'] or '-')}"
    )


def _latency_line(latency: dict) -> str:
    parts = [f"{name} {'-' if value is None else f'{value:.1f}'}" for name, value in latency.items()]
    return "latency (ms): " + "  ".join(parts)


def _cards_line(cards: dict) -> str:
    return f"cards: {cards['total']} (" + ", ".join(f"{i} {cards[i]}" for i in INDICATORS) + ")"


def _status(status: Optional[int]) -> str:
    return "-" if status is None else str(status)  # no answer: the call was cut off


def _s(n: int) -> str:
    return "" if n == 1 else "s"


def calls_csv(rows: List[dict]) -> str:
    """The calls as CSV, a header then a row a call (CSV_COLUMNS), every cell safe for a
    spreadsheet (escape.for_spreadsheet: no formula, no control character)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        cells = dict(row, partial=";".join(row["partial"]))
        writer.writerow([for_spreadsheet("" if cells[c] is None else cells[c]) for c in CSV_COLUMNS])
    return out.getvalue()
