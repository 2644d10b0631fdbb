"""`ivig audit review`: the reviewers' report served on a loopback address, with a verdict on each card.

Each rule's card (and each later-evidence entry's) gets a form: approve, or needs-change with a
comment. A verdict is written by `signoff.sign`, the function `ivig audit sign` calls, so it
goes to the same review log under the same lock, with the reviewer's name from the command line
(never from the form) and the git identity of this machine. The page shows each card's
lifecycle as verdicts are given: a verdict sent from the page (fetch) updates its card, and the
page asks for every lifecycle every few seconds, so that a verdict given elsewhere shows too.
Without script, the forms post as plain HTML and the page comes back at the card.

A verdict is a signature in the reviewer's name, so the page is the reviewer's only:
- it listens on a loopback address only (refused before listening otherwise);
- every request must name this server in its Host header, so that another site's page whose
  name was made to point at 127.0.0.1 (DNS rebinding) gets nothing;
- the browser must hold this run's key: the address the command prints carries it, and the
  first visit trades it for a cookie (SameSite=Strict), so that another user of this machine,
  who reaches the loopback address too, gets no page and cannot post;
- a verdict carries the page's token (a hidden field, compared in constant time) and is refused
  from another Origin (cross-site request forgery); the page may not be framed, and runs no
  script but its own (Content-Security-Policy);
- a verdict names the hash of the rule as the page showed it: a rule edited on disk since is
  not signed from the old page (the reviewer reloads and sees the edit first).

The page is the report (audit/report.py) with its Additions: everything from the rule base and
the log in it is escaped as in the report, and the page's script sets text, never HTML.
"""

import hmac
import html
import ipaddress
import secrets
import socket
import threading
import urllib.parse
import webbrowser
from dataclasses import dataclass, field
from typing import Callable, Dict, Optional

from ..base.errors import (
    HookRefused,
    InvalidSource,
    IvigError,
    LogLocked,
    LogUnusable,
    NoLogHere,
    SignOffInvalid,
)
from ..core.rulebase import RuleBase
from .report import Additions, _e, build_report
from .signoff import (
    ReviewLog,
    Signable,
    SignOff,
    current_hash,
    git_identity,
    new_entries,
    sign,
    signables,
    writable_log_path,
)

MAX_FORM_BYTES = 16 * 1024  # a verdict's form: ids, a token, a hash and a comment
POLL_SECONDS = 4  # how often the page asks for every lifecycle (verdicts given elsewhere)
PAGE_LOCK_TIMEOUT = 5.0  # seconds a verdict from the page waits for another sign to let go of the log
LOCALHOST = "127.0.0.1"  # what `--host localhost` listens on: the name is never resolved
# signoff's refusals, as the page shows them: what was sent is wrong; the log cannot take it
# now (damaged, or not writable); another sign holds its lock
SIGN_REFUSALS = ((SignOffInvalid, 400), (LogUnusable, 409), (NoLogHere, 409), (LogLocked, 423))


# -- where it listens ------------------------------------------------------------------------


def loopback_address(host: str) -> str:
    """The address to listen on for `--host`: a loopback address as given (127.0.0.0/8, ::1), or
    127.0.0.1 for localhost; anything else is refused (SignOffInvalid about --host: a usage error)."""
    if host.lower() == "localhost":
        return LOCALHOST
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        address = None
    if address is None or not address.is_loopback:
        raise SignOffInvalid(
            f"'{host}' is not a loopback address: the review page listens on 127.0.0.1 (or another "
            "127.x.x.x), ::1 or localhost only, so that no other machine can give verdicts in the reviewer's name",
            "--host",
        )
    return str(address)


def _host_names(address: str, port: int) -> set:
    """The Host headers that name this server: its address, or localhost, with its port."""
    shown = f"[{address}]" if ":" in address else address
    names = {f"{shown}:{port}", f"localhost:{port}"}
    return names | ({shown, "localhost"} if port == 80 else set())


# -- one run ---------------------------------------------------------------------------------


def _silent(text: str) -> None:
    """Say nothing (a run that has no terminal, as in tests)."""


@dataclass
class ReviewRun:
    """One run of `ivig audit review`: whose verdicts, on which rules, and the run's secrets."""

    rules_dir: Optional[str]
    reviewer: str
    identity: Optional[str]  # git's "name <email>" on this machine, recorded beside the reviewer's name
    say: Callable[[str], None] = _silent  # the command's way to say a line on the terminal
    key: str = field(default_factory=lambda: secrets.token_urlsafe(32))  # in the printed address; then a cookie
    token: str = field(default_factory=lambda: secrets.token_urlsafe(32))  # in each form (CSRF)
    building: threading.Lock = field(default_factory=threading.Lock)  # one page built at a time

    @classmethod
    def open(cls, rules_dir: Optional[str], reviewer: str, say: Callable[[str], None] = _silent) -> "ReviewRun":
        """Check what a verdict will need before anything listens: the rule base loads, the
        reviewer's name is one, and the log has a place beside the rules (NoLogHere otherwise)."""
        rulebase = RuleBase.load(rules_dir)
        new_entries(rulebase, [], "approved", reviewer)  # no entry: only the reviewer's name is checked
        log_dir = writable_log_path(rulebase).parent
        return cls(rules_dir, " ".join(reviewer.split()), git_identity(log_dir), say)

    def rulebase(self) -> RuleBase:
        """The rules as they are on disk now: a page and a verdict are about what the reviewer reads."""
        return RuleBase.load(self.rules_dir)


# -- the page ----------------------------------------------------------------------------------

STYLE = """<style>
form.verdict{border-top:1px dashed #ccd;margin-top:8px;padding-top:6px}
form.verdict textarea{width:100%;box-sizing:border-box;font:inherit;margin:2px 0 4px}
form.verdict button{font:inherit;margin-right:6px}
.said{margin:4px 0 0;font-size:.9em;color:#176d2c}.said.error{color:#a11;font-weight:600}
.reviewing{background:#eef6ee;border:1px solid #9c9;border-radius:6px;padding:6px 12px;margin:8px 0}
</style>"""

SCRIPT = """
(() => {
  const show = (id, stage, text) => {
    const badge = document.getElementById("stage-" + id), words = document.getElementById("lifecycle-" + id);
    if (badge && badge.textContent !== stage) { badge.textContent = stage; badge.className = "badge " + stage; }
    if (words && words.textContent !== text) words.textContent = text;
  };
  const say = (id, text, error) => {
    const said = document.getElementById("said-" + id);
    said.textContent = text;
    said.className = error ? "said error" : "said";
  };
  for (const form of document.querySelectorAll("form.verdict")) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const id = form.dataset.id, buttons = form.querySelectorAll("button");
      const body = new URLSearchParams(new FormData(form));
      if (event.submitter) body.set(event.submitter.name, event.submitter.value);
      buttons.forEach((b) => { b.disabled = true; });
      try {
        const reply = await fetch(form.action, {method: "POST", body, headers: {Accept: "application/json"}});
        const data = await reply.json();
        if (reply.ok) {
          show(id, data.stage, data.lifecycle);
          say(id, "Recorded in " + data.log, false);
          form.elements.comment.value = "";
        } else {
          say(id, data.error, true);
        }
      } catch (error) {
        say(id, "No answer from ivig audit review: is it still running?", true);
      } finally {
        buttons.forEach((b) => { b.disabled = false; });
      }
    });
  }
  setInterval(async () => {
    try {
      const reply = await fetch("/lifecycle", {headers: {Accept: "application/json"}});
      if (!reply.ok) return;
      for (const [id, state] of Object.entries((await reply.json()).lifecycle)) show(id, state.stage, state.text);
    } catch (error) { /* the server stopped: the page keeps what it showed */ }
  }, POLL_MS);
})();
"""


@dataclass
class CardNote:
    """What a card shows after a verdict sent as a plain form was refused: why, and the comment typed."""

    item_id: str
    error: str
    comment: str = ""


def _verdict_form(run: ReviewRun, rulebase: RuleBase, item: Signable, note: Optional[CardNote]) -> str:
    """A card's form: approve, or needs-change with a comment; the hash of the item as shown."""
    said = note if note is not None and note.item_id == item.id else None
    hidden = {"token": run.token, "id": item.id, "hash": current_hash(rulebase, item)}
    # the comment goes back into the reviewer's own textarea as typed (HTML-escaped, newlines kept)
    comment = html.escape(said.comment) if said else ""
    # a plain form's answer keeps the action's fragment: a refusal opens the page at the card
    action = f"/verdict#{card_anchor(rulebase, item.id)}"
    return "\n".join(
        [
            f'<form class="verdict" method="post" action="{_e(action)}" data-id="{_e(item.id)}">',
            *(f'<input type="hidden" name="{name}" value="{_e(value)}">' for name, value in hidden.items()),
            f'<label>Comment (needed for needs-change)<textarea name="comment" rows="2">{comment}</textarea></label>',
            '<button type="submit" name="verdict" value="approved">Approve</button>',
            '<button type="submit" name="verdict" value="needs-change">Needs change</button>',
            f'<p class="said{" error" if said else ""}" id="said-{_e(item.id)}" role="status">'
            f"{_e(said.error) if said else ''}</p></form>",
        ]
    )


def _banner(run: ReviewRun, rulebase: RuleBase, note: Optional[CardNote]) -> str:
    """Who the verdicts are recorded as, and where; a refusal about no card of the page (an unknown id)."""
    who = run.reviewer + (f" ({run.identity})" if run.identity else "")
    stray = note is not None and note.item_id not in signables(rulebase)
    return (
        f'<div class="reviewing">Reviewing as <strong>{_e(who)}</strong>: each verdict is recorded in '
        f"{_e(str(writable_log_path(rulebase)))}, as <code>ivig audit sign</code> records it."
        + (f'<p class="said error" role="alert">{_e(note.error)}</p>' if stray else "")
        + "</div>"
    )


def page(run: ReviewRun, nonce: str, note: Optional[CardNote] = None) -> str:
    """The report with a verdict form on each card (and `note` on the card it is about)."""
    rulebase = run.rulebase()
    additions = Additions(
        card=lambda item, signoff: _verdict_form(run, rulebase, item, note),
        head=STYLE,
        top=_banner(run, rulebase, note),
        tail=f'<script nonce="{nonce}">{SCRIPT.replace("POLL_MS", str(POLL_SECONDS * 1000))}</script>',
    )
    with run.building:  # one rule engine at a time (the report's coverage runs one)
        return build_report(rulebase, additions=additions)


def lifecycles(run: ReviewRun) -> Dict[str, dict]:
    """Every rule's and later-evidence entry's lifecycle now: its stage and its words."""
    rulebase = run.rulebase()
    log = ReviewLog.load(rulebase)
    return {item_id: _state(log.state(item)) for item_id, item in signables(rulebase).items()}


def _state(signoff: SignOff) -> dict:
    return {"stage": signoff.stage, "text": signoff.describe()}


# -- a verdict -----------------------------------------------------------------------------------


@dataclass
class Verdict:
    """A verdict as the page sent it (the reviewer's name is the run's, never the form's)."""

    item_id: str
    verdict: str
    comment: str
    shown_hash: str  # the hash of the item as the page showed it

    @classmethod
    def of(cls, form: Dict[str, str]) -> "Verdict":
        return cls(form.get("id", ""), form.get("verdict", ""), form.get("comment", ""), form.get("hash", ""))


def give(run: ReviewRun, verdict: Verdict) -> dict:
    """Record a verdict with `signoff.sign`, as `ivig audit sign` does; return the item's lifecycle
    now and where the log is. HookRefused (with its HTTP status) says why nothing was written."""
    try:
        rulebase = run.rulebase()
    except InvalidSource as exc:
        raise _unloadable(exc, "; nothing was recorded") from None
    item = signables(rulebase).get(verdict.item_id)
    if item is not None and verdict.shown_hash != current_hash(rulebase, item):  # a hash is no secret
        raise HookRefused(
            409,
            f"{verdict.item_id} changed since this page was shown, or what decides its outcome did: "
            "reload the page to read it as it is now; nothing was recorded",
        )
    try:
        path, _ = sign(
            rulebase,
            [verdict.item_id],
            verdict.verdict,
            run.reviewer,
            verdict.comment or None,
            identity=run.identity,
            lock_timeout=PAGE_LOCK_TIMEOUT,
        )
    except tuple(k for k, _ in SIGN_REFUSALS) as exc:
        status = next(status for k, status in SIGN_REFUSALS if isinstance(exc, k))
        raise HookRefused(status, _refusal_text(exc)) from None
    state = ReviewLog.load(rulebase).state(signables(rulebase)[verdict.item_id])
    given = {"id": verdict.item_id, "stage": state.stage, "lifecycle": state.describe(), "log": str(path)}
    run.say(f"{verdict.item_id}: {given['lifecycle']} (recorded in {path})")  # as `ivig audit sign` says it
    return {**given, "card": card_anchor(rulebase, verdict.item_id)}


def _unloadable(exc: InvalidSource, then: str = "") -> HookRefused:
    """The rules on disk do not load (an edit half done): each error at its file:line."""
    return HookRefused(409, "the rules do not load" + then + ": " + "; ".join(map(str, exc.errors)))


def _refusal_text(exc: Exception) -> str:
    """signoff's own words for a refusal; a damaged log with each problem at its file:line."""
    if isinstance(exc, LogUnusable):
        problems = "; ".join(str(e) for e in exc.errors)
        return f"the review log is damaged; nothing was recorded (mend the log, then sign again): {problems}"
    return str(exc)


def card_anchor(rulebase: RuleBase, item_id: str) -> str:
    """The id of an item's card in the page: rule-ID, or evidence-ID for a later-evidence entry."""
    return ("rule-" if item_id in rulebase.by_id else "evidence-") + item_id


# -- over HTTP (starlette) ---------------------------------------------------------------------------


def review_app(run: ReviewRun, address: str, port: int):
    """The page's ASGI app (starlette), for a server listening on `address`:`port`."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.routing import Route

    hosts = _host_names(address, port)
    origins = {f"http://{name}" for name in hosts}
    cookie = f"ivig-review-{port}"  # a cookie is per host, not per port: two runs keep their own
    return Starlette(
        routes=[
            Route("/", _endpoint(_show_page, run), methods=["GET"]),
            Route("/lifecycle", _endpoint(_show_lifecycles, run), methods=["GET"]),
            Route("/verdict", _endpoint(_take_verdict, run, origins), methods=["POST"]),
        ],
        middleware=[Middleware(_Guard, run=run, hosts=hosts, cookie=cookie)],
    )


def _endpoint(handler: Callable, *args):
    async def endpoint(request):
        return await handler(request, *args)

    return endpoint


class _Guard:
    """Before any route: the Host header must name this server (DNS rebinding), and the browser
    must hold the run's key, which the printed address gives once (`/?key=...`) for a cookie."""

    def __init__(self, app, run: ReviewRun, hosts: set, cookie: str):
        self.app, self.run, self.hosts, self.cookie = app, run, hosts, cookie

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        from starlette.requests import Request

        request = Request(scope)
        refused = self._refusal(request)
        if refused is None and "key" in request.query_params and request.url.path == "/":
            refused = self._enter(request)
        if refused is not None:
            return await refused(scope, receive, send)
        await self.app(scope, receive, send)

    def _refusal(self, request):
        from starlette.responses import PlainTextResponse

        if request.headers.get("host") not in self.hosts:
            return PlainTextResponse("This server answers only to its own address.", 400, headers=HEADERS)
        if "key" in request.query_params and request.url.path == "/":
            return None  # the key is checked by _enter
        if not hmac.compare_digest(request.cookies.get(self.cookie, "").encode(), self.run.key.encode()):
            return PlainTextResponse(
                "Open the address `ivig audit review` printed: it carries this run's key.", 403, headers=HEADERS
            )
        return None

    def _enter(self, request):
        """The printed address: its key becomes a cookie, and the address loses it (history, screen)."""
        from starlette.responses import PlainTextResponse, RedirectResponse

        if not hmac.compare_digest(request.query_params["key"].encode(), self.run.key.encode()):
            return PlainTextResponse(
                "This is not the key of this run of `ivig audit review`: open the address it printed.",
                403,
                headers=HEADERS,
            )
        answer = RedirectResponse("/", 303, headers=HEADERS)
        answer.set_cookie(self.cookie, self.run.key, httponly=True, samesite="strict", path="/")
        return answer


HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",  # a verdict is a click: no other page may frame this one
    "X-Content-Type-Options": "nosniff",
    # none to another site; not no-referrer, with which a browser sends a form's POST as from
    # Origin: null, which the Origin check must refuse
    "Referrer-Policy": "same-origin",
}


def _page_headers(nonce: str) -> dict:
    policy = (
        f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'unsafe-inline'; connect-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )
    return {**HEADERS, "Content-Security-Policy": policy}


async def _show_page(request, run: ReviewRun, note: Optional[CardNote] = None, status: int = 200):
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import HTMLResponse

    nonce = secrets.token_urlsafe(16)
    try:
        text = await run_in_threadpool(page, run, nonce, note)
    except InvalidSource as exc:  # the rules were edited into a state that does not load
        return _refused(_unloadable(exc), False)
    return HTMLResponse(text, status, headers=_page_headers(nonce))


async def _show_lifecycles(request, run: ReviewRun):
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import JSONResponse

    try:
        return JSONResponse({"lifecycle": await run_in_threadpool(lifecycles, run)}, headers=HEADERS)
    except InvalidSource as exc:
        return _refused(_unloadable(exc), True)


async def _take_verdict(request, run: ReviewRun, origins: set):
    """POST /verdict: checked (origin, form, token), then written by `give`; answered as JSON
    to the page's script, else as a plain form: back to the card, or the page with the error on it."""
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import JSONResponse, RedirectResponse

    wants_json = "application/json" in request.headers.get("accept", "")
    try:
        form = await _form(request, run, origins)
    except HookRefused as exc:  # not this run's page's form: no page back
        return _refused(exc, wants_json)
    try:
        given = await run_in_threadpool(give, run, Verdict.of(form))
    except HookRefused as exc:
        if wants_json:
            return _refused(exc, True)
        note = CardNote(form.get("id", ""), str(exc), form.get("comment", ""))
        return await _show_page(request, run, note, exc.status)
    if wants_json:
        return JSONResponse(given, headers=HEADERS)
    return RedirectResponse(f"/#{given['card']}", 303, headers=HEADERS)


async def _form(request, run: ReviewRun, origins: set) -> Dict[str, str]:
    """The verdict's form, once the request is known to come from this run's page."""
    origin = request.headers.get("origin")
    if origin is not None and origin not in origins:  # a browser says where a POST comes from
        raise HookRefused(403, "a verdict is given on the review page itself, not from another site")
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        raise HookRefused(415, "a verdict is sent as the page's form (application/x-www-form-urlencoded)")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise HookRefused(413, f"a verdict's form is at most {MAX_FORM_BYTES // 1024} KiB")
    try:
        fields = urllib.parse.parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        raise HookRefused(400, "a verdict's form is UTF-8 text") from None
    form = {name: values[-1] for name, values in fields.items()}
    if not hmac.compare_digest(form.get("token", "").encode(), run.token.encode()):
        raise HookRefused(403, "this form is not from this run's page: reload the page, then give the verdict again")
    return form


def _refused(exc: HookRefused, as_json: bool):
    from starlette.responses import JSONResponse, PlainTextResponse

    if as_json:
        return JSONResponse({"error": str(exc)}, exc.status, headers=HEADERS)
    return PlainTextResponse(str(exc), exc.status, headers=HEADERS)


# -- serving ---------------------------------------------------------------------------------------


def serve_review(
    rules_dir: Optional[str],
    reviewer: str,
    host: str = "127.0.0.1",
    port: int = 0,
    open_browser: bool = True,
    say: Callable = print,
) -> None:
    """Serve the report with a verdict form on each card on `host` (loopback only) and `port`
    (0: a free one) until Ctrl-C; print its address (with the run's key) and open it in a browser.

    Refused before listening: a host that is not loopback (SignOffInvalid about --host), a
    reviewer's name that is none, a rule base with no place for its log (NoLogHere), and a
    missing serve extra (IvigError)."""
    address = loopback_address(host)
    uvicorn = _serve_extra()
    run = ReviewRun.open(rules_dir, reviewer, say)
    with _listening(address, port) as sock:
        bound = sock.getsockname()[1]
        shown = f"[{address}]" if ":" in address else address
        url = f"http://{shown}:{bound}/?key={run.key}"

        def started():
            say(f"ivig audit review: the report with a verdict on each card at {url}")
            say(f"verdicts are recorded as {run.reviewer}" + (f" ({run.identity})" if run.identity else ""))
            say("Ctrl-C stops it.")
            if open_browser:  # in a thread: a browser may take its time to start
                threading.Thread(target=_open_browser, args=(url, say), daemon=True).start()

        config = uvicorn.Config(review_app(run, address, bound), log_level="warning", lifespan="off")
        _announcing(uvicorn, started)(config).run(sockets=[sock])


def _open_browser(url: str, say: Callable[[str], None]) -> None:
    if not webbrowser.open(url):
        say("no browser could be opened here: open the address above in one")


def _serve_extra():
    """uvicorn (and starlette beside it), or the command to install them."""
    try:
        import starlette  # noqa: F401
        import uvicorn
    except ImportError as exc:
        raise IvigError(f'ivig audit review needs the serve extra (pip install -e ".[serve]"): {exc}') from None
    return uvicorn


class _listening:
    """A socket bound to `address`:`port` (0: a free port), closed at the end."""

    def __init__(self, address: str, port: int):
        self.sock = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.address, self.port = address, port

    def __enter__(self) -> socket.socket:
        try:
            self.sock.bind((self.address, self.port))
        except OSError:
            self.sock.close()
            raise
        return self.sock

    def __exit__(self, *exc):
        self.sock.close()


def _announcing(uvicorn, started: Callable):
    """uvicorn's Server, calling `started` once it listens (so the address printed answers)."""

    class Announcing(uvicorn.Server):
        async def startup(self, sockets=None):
            await super().startup(sockets=sockets)
            if not self.should_exit:
                started()

    return Announcing
