"""The CDS Hooks 2.0 service over HTTP (Starlette; `ivig serve` runs it under uvicorn).

Routes: `GET /cds-services` (discovery), `POST /cds-services/{id}` (a hook
call: service/cdshooks.py does the work), `POST /cds-services/{id}/feedback`
(service/feedback.py keeps it), and for a load balancer `GET /healthz` (the
process answers) and `GET /readyz` (its engines are warm). Every route but
CORS preflight and health needs a trusted JWT (service/jwtauth.py) unless the
service runs in `insecure_dev` mode, where the app itself answers a loopback
caller on a loopback address alone (403 otherwise), however it is run.

Each worker warms its engines when it starts (its lifespan), in a thread, while
it already answers: /readyz is 503 until they are warm, and a hook call that
arrives meanwhile waits for them (the engine is never used by two at once).

experta engines are not thread-safe: one Advisor per process, run on the
event loop itself, so that calls run it one at a time, in arrival order; only
the slow parts that touch no engine go to threads (fetching from the EHR's
FHIR server; the cards, and the rows of the trail of calls, are kept by a writer
thread of their own). Worker processes (uvicorn --workers) each have their own.

Every POST to a service or to its feedback, answered or refused, leaves a row in the
trail of calls (calls.py, CallTrail around the whole app): the caller, the service and
hook, the status, the latency, the cards by indicator; never patient data.

Nothing from a request is logged: not the token, not the record, not the
cards (a path is, with its control characters escaped). A call that cannot be
answered gets its status (400, 401, 404, 408, 412, 413, 415) and an
OperationOutcome saying why (401: no body, as the spec's best practice asks);
an unexpected failure is a 500 that says only that.

No client holds a connection for ever: its request's headers must arrive
within `header_timeout` (BoundedH11Protocol: uvicorn has no such bound), its
body within `body_timeout` (408), and a worker serves `max_connections` open
connections at a time (uvicorn's limit_concurrency: 503 beyond).
"""

import asyncio
import contextlib
import functools
import gc
import ipaddress
import json
import logging
import os
import re
import ssl
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Callable, List, Optional
from urllib.parse import urlsplit

import h11
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from uvicorn.protocols.http.h11_impl import H11Protocol

from ..base.errors import FeedbackInvalid, HookRefused, IvigError, Unauthorized, UnknownCard
from ..base.escape import for_terminal, lone_surrogate_at
from ..core.compiler import DEFAULT_MATCHER
from .calls import CallTrail, note_of
from .cdshooks import Hooks
from .feedback import CardKeeper, FeedbackStore, store_check
from .jwtauth import Trust, caller_of, fhir_server_refused
from .paging import next_link, read_pages

ENV = "IVIG_SERVE_SETTINGS"  # how `ivig serve` hands settings to each uvicorn worker
MAX_BODY = 8_000_000  # bytes of one request: a record with its draft orders
MAX_DEPTH = 100  # nesting of a request: a FHIR resource in a Bundle in a request is ~20
# What a UTF-8 body must hold to give a lone surrogate (escape.LONE_SURROGATE): its escape.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
NOT_KEPT = {"Cache-Control": "no-store"}  # health is now, never a cached answer
log = logging.getLogger("ivig.serve")


@dataclass
class Settings:
    """How the service runs; `ivig serve` fills it from its options."""

    public_url: str = "http://127.0.0.1:8080"  # the base URL clients call: the JWT's aud is built on it
    trust: Optional[str] = None  # the trust file (service/jwtauth.py)
    insecure_dev: bool = False  # no JWT at all (loopback only; `ivig serve` checks)
    feedback_db: str = "ivig-feedback.sqlite"
    keep_calls_days: Optional[float] = None  # the trail of calls forgets those older (None: keeps them all)
    cors_origins: List[str] = field(default_factory=lambda: ["https://sandbox.cds-hooks.org"])
    rules: Optional[str] = None
    fhir_timeout: float = 5.0
    header_timeout: float = 5.0  # seconds a client has to send a request's headers
    body_timeout: float = 15.0  # seconds, from the headers, to send the whole body (8 MB)
    max_connections: int = 100  # open connections one worker serves; 503 beyond
    ssl_certfile: Optional[str] = None  # https with this certificate (PEM; the key too, without ssl_keyfile)
    ssl_keyfile: Optional[str] = None
    behind_proxy: bool = False  # a reverse proxy terminates TLS: its X-Forwarded-For/Proto are taken
    forwarded_allow_ips: str = "127.0.0.1"  # the proxy's addresses (comma-separated), whose headers alone count
    matcher: str = DEFAULT_MATCHER  # how the engines match facts to rules (core/compiler.py MATCHERS): the same cards

    @property
    def tls(self) -> bool:
        return bool(self.ssl_certfile)

    def to_env(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> "Settings":
        return cls(**json.loads(os.environ[ENV]))


def app_from_environment() -> Starlette:
    """The app of one uvicorn worker, from the settings `ivig serve` put in the environment."""
    return create_app(Settings.from_env())


def uvicorn_options(settings: Settings) -> dict:
    """What uvicorn.run needs beyond the app and the address for `settings` to hold: the HTTP
    protocol that bounds the time to send headers, the bound on open connections, the certificate,
    and whose X-Forwarded-* headers to take (a reverse proxy's alone; none without one)."""
    # uvicorn answers 503 once the open connections, the caller's own among them, reach
    # limit_concurrency: one more than the connections served
    options = {"http": f"{__name__}:BoundedH11Protocol", "limit_concurrency": settings.max_connections + 1}
    # uvicorn takes X-Forwarded-* from 127.0.0.1 by default: without a proxy, any local process could
    # name another caller (and an insecure_dev app would believe it)
    options["proxy_headers"] = settings.behind_proxy
    if settings.behind_proxy:
        options["forwarded_allow_ips"] = settings.forwarded_allow_ips
    if settings.tls:
        options.update(ssl_certfile=settings.ssl_certfile, ssl_keyfile=settings.ssl_keyfile)
    return options


def is_loopback(host: str) -> bool:
    """Whether `host` (an address, or the name localhost) is this machine's loopback: 127.0.0.0/8
    or ::1, IPv4 ones written as IPv6 too (::ffff:127.0.0.1, how a dual-stack socket sees them)."""
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False  # another name: whatever it resolves to, it is not known to be loopback
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


class TlsInvalid(IvigError, ValueError):
    """A certificate or key `ivig serve` cannot serve https with; the message names the file."""


def check_tls(settings: Settings) -> None:
    """TlsInvalid unless the certificate and key of `settings` (if any) give a TLS server: said
    before any worker listens, naming the file at fault, never by a traceback in a worker."""
    if not settings.tls:
        if settings.ssl_keyfile:
            raise TlsInvalid(f"a key ({settings.ssl_keyfile}) without its certificate: give the certificate too")
        return
    certfile, keyfile = settings.ssl_certfile, settings.ssl_keyfile
    try:  # the certificate alone first, so that a fault is laid at the right file
        ssl.create_default_context(cafile=certfile)
    except (ssl.SSLError, OSError) as exc:
        raise TlsInvalid(f"the certificate {certfile} cannot be read as a PEM certificate: {_why(exc)}") from None
    key = keyfile or certfile
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(certfile, keyfile, password=_encrypted(key))
    except (ssl.SSLError, OSError) as exc:
        raise TlsInvalid(f"the key {key} cannot serve the certificate {certfile}: {_why(exc)}") from None


def _encrypted(keyfile: str):
    """The password callback for `keyfile`: TlsInvalid, since uvicorn would ask for its password at a
    terminal a service has not."""

    def refuse():
        raise TlsInvalid(f"the key {keyfile} is encrypted: give it unencrypted, readable by the service alone")

    return refuse


def _why(exc: Exception) -> str:
    """What OpenSSL or the system says of a file, in a few words."""
    return getattr(exc, "reason", None) or getattr(exc, "strerror", None) or type(exc).__name__


@functools.lru_cache(maxsize=1)
def _process_settings() -> Settings:
    """The settings of this worker process (the defaults when `ivig serve` did not start it)."""
    return Settings.from_env() if ENV in os.environ else Settings()


class BoundedH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, with a bound on the time a client takes to send a request's
    headers: uvicorn has none, and a client that opens a connection and sends half a request line
    holds it for ever. The clock starts when the connection opens, or with the first byte of the
    next request on a kept-alive one (until then uvicorn's keep-alive timeout closes it); when it
    runs out, the connection is closed: there is no request to answer."""

    header_clock: Optional[asyncio.TimerHandle] = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._watch_headers()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch_headers()

    def connection_lost(self, exc) -> None:
        self._stop_header_clock()
        super().connection_lost(exc)

    def _watch_headers(self) -> None:
        """Start the clock while a request's headers are awaited; stop it once they are read."""
        awaited = self.conn.their_state is h11.IDLE and not self.transport.is_closing()
        if not awaited:
            self._stop_header_clock()
        elif self.header_clock is None:
            self.header_clock = self.loop.call_later(_process_settings().header_timeout, self._headers_too_slow)

    def _stop_header_clock(self) -> None:
        if self.header_clock is not None:
            self.header_clock.cancel()
            self.header_clock = None

    def _headers_too_slow(self) -> None:
        self.header_clock = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


def prepared(settings: Settings, store: bool = True) -> tuple:
    """(trust, feedback store, rule base) of `settings`, each loaded and checked: what `ivig serve`
    checks before it starts a worker, so that a bad trust file, feedback path or rule base is
    said at once (and what each worker's app is built from); TlsInvalid for a certificate or key
    that cannot serve https. `store=False` (`ivig serve --check`): the feedback file is looked at
    (feedback.store_check), never created nor written, and the store is None."""
    from ..core.rulebase import RuleBase

    if not settings.insecure_dev and not settings.trust:
        raise ValueError("a trust file is needed unless the service runs in insecure_dev mode")
    check_tls(settings)
    trust = Trust.load(settings.trust) if settings.trust else None
    kept = FeedbackStore(settings.feedback_db) if store else store_check(settings.feedback_db)
    return trust, kept if store else None, RuleBase.load(settings.rules) if settings.rules else None


def create_app(settings: Settings) -> Starlette:
    """The Starlette app for `settings`."""
    service = _Service(settings)
    # the trail outermost, so that it notes every answer, the guard's refusals too; the guard before CORS
    trail = [Middleware(CallTrail, keep=service.keeper.keep_call, rules_hash=service.rules_hash)]
    guard = [Middleware(_LoopbackOnly)] if settings.insecure_dev else []
    return Starlette(
        routes=service.routes(),
        middleware=trail + guard + _cors(settings),
        lifespan=service.lifespan,
        exception_handlers={Unauthorized: _refused, HookRefused: _failed, ClientDisconnect: _gone, Exception: _broken},
    )


class _Service:
    """What one worker's routes share: its settings, trust, feedback store, card keeper and hooks."""

    def __init__(self, settings: Settings):
        from ..core.advisor import Advisor

        self.settings = settings
        self.trust, self.store, rulebase = prepared(settings)
        self.keeper = CardKeeper(self.store, keep_calls_days=settings.keep_calls_days)
        self.hooks = Hooks(Advisor(rulebase, matcher=self.settings.matcher))
        self.rules_hash = self.hooks.advisor.rulebase.stamp["hash"]
        self.known_hooks = {hook for service in self.hooks.services.services for hook in service.hooks}
        self.warming: Optional[asyncio.Future] = None  # the warm-up, once started (lifespan, or a first call)
        self.base = settings.public_url.rstrip("/")

    def routes(self) -> list:
        """Discovery, a hook call, feedback on a call's cards, and health for a load balancer."""
        return [
            Route("/cds-services", self.discovery, methods=["GET"]),
            Route("/cds-services/{service}", self.call, methods=["POST"]),
            Route("/cds-services/{service}/feedback", self.feedback, methods=["POST"]),
            Route("/healthz", self.health, methods=["GET"]),
            Route("/readyz", self.readiness, methods=["GET"]),
        ]

    def warm(self) -> None:
        """Build every diagnosis's engine and answer one call of each hook, so that no call pays
        for a first time (half a second in a cold worker); then keep what start-up built out of
        the garbage collector's sight."""
        self.hooks.advisor.warm()
        for service_id, request in _warm_up_calls(self.hooks.services):
            try:
                self.hooks.call(service_id, request)  # its cards are kept nowhere
            except HookRefused as exc:  # a call less warmed, no worse: said, for whoever changes the calls
                log.warning("the warm-up call of %s was refused: %s", service_id, exc)
        _freeze_what_startup_built()

    def start_warming(self) -> asyncio.Future:
        """The warm-up, in a thread (the event loop meanwhile answers health and discovery); started once."""
        if self.warming is None:
            self.warming = asyncio.ensure_future(run_in_threadpool(self.warm))
        return self.warming

    def ready(self) -> bool:
        """Whether the engines are warm: the warm-up ran, and did not fail."""
        return self.warming is not None and self.warming.done() and self.warming.exception() is None

    async def health(self, request: Request):
        """GET /healthz: the process answers (no token: a load balancer asks)."""
        return JSONResponse({"status": "ok"}, headers=NOT_KEPT)

    async def readiness(self, request: Request):
        """GET /readyz: 200 with the rule base's hash (what an upgrade changes) once the engines are
        warm, 503 before; nothing else about the rules, nothing about patients."""
        if not self.ready():
            return JSONResponse({"status": "warming"}, status_code=503, headers=NOT_KEPT)
        return JSONResponse({"status": "ready", "rules_hash": self.rules_hash}, headers=NOT_KEPT)

    def authorised(self, request: Request) -> tuple:
        """(issuer, tenant) of the call's trusted token; (None, None) in insecure_dev mode. The call's
        trail notes them (calls.py)."""
        if self.settings.insecure_dev:
            return None, None
        caller = caller_of(
            self.trust.verify(request.headers.get("authorization"), self.base + request.url.path, self.store.first_use)
        )
        note_of(request.scope).caller(*caller)
        return caller

    async def discovery(self, request: Request):
        """GET /cds-services: the services and their prefetch templates."""
        self.authorised(request)
        return JSONResponse(self.hooks.discovery())

    async def call(self, request: Request):
        """POST /cds-services/{service}: a hook call, answered with cards (which the keeper keeps)."""
        caller = self.authorised(request)
        body = await _json_body(request, self.settings.body_timeout)
        note = note_of(request.scope)
        note.heard(body, self.known_hooks)
        service_id = request.path_params["service"]
        refused = self.token_refused(caller[0], body)
        if refused is None:
            await self._fetch_missing_prefetch(service_id, body)
            partial = await self._read_every_page(body)
        else:  # the token goes nowhere: what would need it is said, never fetched
            missing = self.hooks.to_fetch(service_id, body)
            if missing:
                raise HookRefused(412, f"prefetch '{missing[0][0]}' was not sent, and {refused}")
            partial = {key: refused for key, value in (body.get("prefetch") or {}).items() if next_link(value)}
        await asyncio.shield(self.start_warming())  # the engine is the warm-up's until it is warm
        # The engine runs here, on the event loop: one call at a time by construction (experta
        # is not thread-safe), in arrival order, with no hand-off to a thread (2 ms a call).
        answer = self.hooks.call(service_id, body, partial=partial)
        self.keeper.keep(service_id, body["hook"], answer.cards, *caller)  # queued: written by the keeper's thread
        note.answered(answer.response["cards"], body.get("prefetch"), self.hooks.services.prefetch)
        return JSONResponse(answer.response)

    def token_refused(self, issuer: Optional[str], body) -> Optional[str]:
        """Why the call's access token may not go to its `fhirServer` (None: it may, or there is
        none): a trusted issuer's calls only to the FHIR servers the trust file lists for it
        (jwtauth.fhir_server_refused); in insecure_dev, with no trust file, a server on this
        machine or one reached over https."""
        if not isinstance(body, dict) or not body.get("fhirServer") or not body.get("fhirAuthorization"):
            return None
        server = body["fhirServer"]
        if self.settings.insecure_dev:
            try:
                parts = urlsplit(server) if isinstance(server, str) else None
                ok = parts is not None and (parts.scheme == "https" or is_loopback(parts.hostname or ""))
            except ValueError:
                ok = False
            return None if ok else "its fhirServer is neither on this machine nor https, so no token goes there"
        issuer = self.trust.issuers.get(issuer) if issuer is not None else None
        return fhir_server_refused(server, issuer.fhir_servers if issuer else ())

    async def _fetch_missing_prefetch(self, service_id: str, body: dict) -> None:
        """Add to the call's prefetch what the EHR left out and its FHIR server gives; HookRefused 412
        when the server's answer is not what the template asks."""
        missing = self.hooks.to_fetch(service_id, body)
        if missing:  # from the EHR's FHIR server, in threads, so that other calls go on meanwhile
            timeout = self.settings.fhir_timeout
            fetched = await run_in_threadpool(
                _reading, lambda client: {key: _fetch(query, body, timeout, client) for key, query in missing}
            )
            for key, _query in missing:  # the server's fault, not the caller's: 412, where prefetch is 400
                fault = self.hooks.services.unlike(key, fetched[key], body)
                if fault:
                    raise HookRefused(412, f"the FHIR server's answer for prefetch '{key}' {fault}")
            body["prefetch"] = dict(body.get("prefetch") or {}, **fetched)

    async def _read_every_page(self, body) -> dict:
        """Follow the `next` links of the call's searchsets on its FHIR server (paging.py), in a
        thread, within the FHIR timeout for them all; the keys read in part, with why."""
        prefetch = body.get("prefetch") if isinstance(body, dict) else None
        if not isinstance(prefetch, dict) or not any(next_link(value) for value in prefetch.values()):
            return {}
        limit = self.settings.fhir_timeout
        deadline = time.monotonic() + limit
        return await run_in_threadpool(
            _reading,
            lambda client: read_pages(
                prefetch, body, lambda url, left: _page(url, body, min(left, limit), client), deadline
            ),
        )

    async def feedback(self, request: Request):
        """POST /cds-services/{service}/feedback: the clinician's word on cards, stored."""
        caller = self.authorised(request)
        service_id = request.path_params["service"]
        if self.hooks.services.service(service_id) is None:
            raise HookRefused(404, f"no CDS service {service_id!r}")
        body = await _json_body(request, self.settings.body_timeout)
        await run_in_threadpool(self.keeper.flush)  # the cards it names are in the file first
        try:
            count = await run_in_threadpool(self.store.record, service_id, body, *caller)
        except FeedbackInvalid as exc:
            raise HookRefused(400, str(exc)) from None
        except UnknownCard as exc:
            raise HookRefused(404, str(exc)) from None
        note_of(request.scope).stored = count
        return JSONResponse({"stored": count})

    @contextlib.asynccontextmanager
    async def lifespan(self, app):
        """The app's life: it starts warming its engines, and when it ends, the cards still queued
        are written before the process ends."""
        self.start_warming().add_done_callback(_said_if_failed)
        yield
        self.keeper.close()


def _said_if_failed(warming: asyncio.Future) -> None:
    """Log a warm-up that failed: the worker then never says it is ready."""
    if not warming.cancelled() and warming.exception() is not None:
        log.error("the engines could not be warmed: %s", type(warming.exception()).__name__)


def _warm_up_calls(services) -> list:
    """(service id, call) of one call of each hook each listed service answers (its cards kept nowhere)."""
    return [(service.id, _warm_up_call(hook)) for service in services.services for hook in service.hooks]


def _warm_up_call(hook: str) -> dict:
    """A call of `hook` about a made-up patient whose record holds one resource of each kind the
    prefetch reads and one draft order, all coded in words alone: each is read as FHIR is (the first
    read of a kind is the slow one), and no rule has anything to say about them (no clinical content)."""
    subject = {"reference": "Patient/warm-up"}
    words = {"text": "warm-up"}
    order = {"resourceType": "MedicationRequest", "id": "warm-up-order", "status": "draft", "intent": "order"}
    order.update(subject=subject, medicationCodeableConcept=words)
    kinds = {
        "conditions": {"resourceType": "Condition", "code": words},
        "medications": {"resourceType": "MedicationRequest", "status": "active", "intent": "order"},
        "statements": {"resourceType": "MedicationStatement", "status": "active"},
        "procedures": {"resourceType": "Procedure", "status": "completed", "code": words},
        "allergies": {"resourceType": "AllergyIntolerance", "patient": subject, "code": words},
    }
    prefetch = {"patient": {"resourceType": "Patient", "id": "warm-up"}}
    for key, resource in kinds.items():
        resource = dict(resource, id=f"warm-up-{key}")
        if resource["resourceType"] in ("MedicationRequest", "MedicationStatement"):
            resource["medicationCodeableConcept"] = words
        if resource["resourceType"] != "AllergyIntolerance":
            resource["subject"] = subject
        prefetch[key] = {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": resource}]}
    context = {
        "patientId": "warm-up",
        "userId": "Practitioner/warm-up",
        "selections": ["MedicationRequest/warm-up-order"],
    }
    context["draftOrders"] = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": order}]}
    return {"hook": hook, "hookInstance": str(uuid.uuid4()), "context": context, "prefetch": prefetch}


class _LoopbackOnly:
    """ASGI middleware of an insecure_dev app (no token asked): a request is answered only when it
    reaches a loopback address from a loopback caller (ASGI scope's server and client, the client
    as a trusted proxy names it), else 403 saying why. `ivig serve` refuses such an app on another
    address at once; this holds wherever the app runs (uvicorn on 0.0.0.0, another server)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket") or _loopback_both_ends(scope):
            return await self.app(scope, receive, send)
        log.warning("refused a request to %s: insecure-dev answers loopback alone", for_terminal(scope["path"][:200]))
        if scope["type"] == "websocket":
            return await send({"type": "websocket.close", "code": 1008})
        message = (
            "this service runs in insecure-dev mode (no token asked) and answers a loopback caller "
            "on a loopback address alone (127.0.0.0/8, ::1)"
        )
        await JSONResponse(_outcome(message), status_code=403)(scope, receive, send)


def _loopback_both_ends(scope) -> bool:
    """Whether the request's server address and its client are loopback addresses (unknown: not)."""
    ends = (scope.get("server"), scope.get("client"))
    return all(end and isinstance(end[0], str) and _is_loopback_address(end[0]) for end in ends)


def _is_loopback_address(host: str) -> bool:
    """is_loopback for an address alone: a scope's name (TestClient's 'testserver') is no address."""
    return host != "localhost" and is_loopback(host)


def _freeze_what_startup_built() -> None:
    """Move what start-up built out of the garbage collector's sight."""
    # What start-up built (rule base, engines, mapping) lives as long as the process: out of
    # the collector's sight, so that a full collection does not walk it in the middle of a call.
    gc.collect()
    gc.freeze()


def _cors(settings: Settings) -> list:
    """The CORS middleware: GET and POST with a token and a JSON body, from `settings.cors_origins`."""
    return [
        Middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
    ]


async def _refused(request: Request, exc: Unauthorized):
    """401 with no body for a call without a trusted token."""
    log.warning("refused a call to %s: %s", _path(request), exc)  # the reason, never the token
    return Response(status_code=401, headers={"WWW-Authenticate": "Bearer"})


async def _failed(request: Request, exc: HookRefused):
    """The refusal's status with an OperationOutcome saying why."""
    if exc.status == 408:
        log.warning("%s: %s", _path(request), exc)
    # an answer given before the whole body was read ends the connection: what the client
    # still sends would otherwise keep it open
    closing = {"Connection": "close"} if exc.status in (408, 413) else None
    return JSONResponse(_outcome(str(exc)), status_code=exc.status, headers=closing)


async def _gone(request: Request, exc: ClientDisconnect):
    """400 (read by no one) for a client that went away before its request arrived whole."""
    log.warning("the client went away before its request to %s arrived whole", _path(request))
    return Response(status_code=400)  # read by no one


async def _broken(request: Request, exc: Exception):
    """500 for an unexpected failure, saying only that."""
    log.error("internal error on %s: %s", _path(request), type(exc).__name__)
    return JSONResponse(_outcome("internal error in the service; nothing was decided"), status_code=500)


def _path(request: Request) -> str:
    """The path called, as the log shows it: a path can hold any character, an escape among them."""
    return for_terminal(request.url.path[:200])


async def _json_body(request: Request, timeout: float):
    """The request's JSON body; HookRefused 413, 415, 408 (not whole within `timeout` seconds)
    or 400 when it is not one to read."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in ("application/json", "application/fhir+json", ""):
        raise HookRefused(415, f"the body must be JSON (application/json), not {kind}")
    size = request.headers.get("content-length")
    if size is not None and size.isdigit() and int(size) > MAX_BODY:
        raise HookRefused(413, f"a body of more than {MAX_BODY:,} bytes")
    try:
        data = await asyncio.wait_for(_body_bytes(request), timeout)
    except TimeoutError:
        raise HookRefused(408, f"the body did not arrive whole within {timeout:g} s") from None
    try:
        body = json.loads(data, parse_constant=_no_constant, object_pairs_hook=_object)
    except _KeyTwice as exc:
        raise HookRefused(
            400,
            f"the body gives the key {repr(exc.args[0])[:80]} twice in one object: "
            "which value is meant cannot be known",
        ) from None
    except (ValueError, RecursionError) as exc:
        raise HookRefused(400, f"the body is not valid JSON: {str(exc)[:120]}") from None
    if _depth(body) > MAX_DEPTH:
        raise HookRefused(400, f"the body is nested more than {MAX_DEPTH} levels deep: no FHIR record is")
    where = _lone_surrogate_at(body) if _may_hold_a_surrogate(data) else None
    if where is not None:
        raise HookRefused(
            400,
            f"the body's text at {where} holds a lone surrogate (a \\ud800-\\udfff escape "
            "without its pair): that is no Unicode character, and no text can hold it",
        )
    return body


def _may_hold_a_surrogate(data: bytes) -> bool:
    """Whether a JSON body may hold a lone surrogate: in UTF-8 only as an escape, so a body
    without one needs no look (UTF-16 and UTF-32 bodies are looked at whole)."""
    return not json.detect_encoding(data).startswith("utf-8") or _SURROGATE_ESCAPE.search(data) is not None


def _lone_surrogate_at(value) -> Optional[str]:
    """Where (context.patientId, prefetch.conditions.entry[0].resource.id) the first string or key
    of a parsed body that holds a lone surrogate is (escape.lone_surrogate_at), else None."""
    steps = lone_surrogate_at(value)
    if steps is None:
        return None
    path = "".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in steps).lstrip(".") or "the top"
    shown = path.encode("utf-8", "backslashreplace").decode("utf-8")  # escaped where it cannot be text
    return shown if len(shown) <= 200 else shown[:200] + "..."


async def _body_bytes(request: Request) -> bytearray:
    """The body as it arrives; HookRefused 413 past MAX_BODY, ClientDisconnect when the client goes."""
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_BODY:
            raise HookRefused(413, f"a body of more than {MAX_BODY:,} bytes")
    return data


def _depth(value) -> int:
    """How deeply a parsed body nests, found without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in (node.values() if isinstance(node, dict) else node))
    return deepest


class _KeyTwice(ValueError):
    """A JSON object that gives one key twice; args[0] is the key."""


def _object(pairs: list) -> dict:
    """One JSON object of a body; _KeyTwice when it gives a key twice: the standard library keeps
    the last value, and which one the EHR meant cannot be known (case files refuse them too)."""
    found = dict(pairs)
    if len(found) != len(pairs):
        seen = set()
        raise _KeyTwice(next(key for key, _ in pairs if key in seen or seen.add(key)))
    return found


def _no_constant(text):
    raise ValueError(f"{text} is not a number JSON allows")


def _outcome(message: str) -> dict:
    """An OperationOutcome saying why a call was not answered (CDS Hooks 3.0 asks for one; 2.0 allows it)."""
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "processing", "diagnostics": message}],
    }


def _reading(read: Callable):
    """`read(client)`, with one HTTP client for all that a call reads from its FHIR server: a client
    made for each read (httpx.get) builds its TLS context each time, about 19 ms of CPU a page, and
    opens a new connection; one client keeps the connection for the next page."""
    import httpx

    with httpx.Client() as client:
        return read(client)


def _fetch(query: str, request: dict, timeout: float, client):
    """A prefetch query run on the call's fhirServer with its access token; HookRefused 412 when it fails."""
    server = str(request["fhirServer"]).rstrip("/")
    if not server.startswith(("https://", "http://")):
        raise HookRefused(400, "fhirServer must be an http(s) URL")
    return _get(f"{server}/{query}", query.split("?")[0], request, timeout, client)


def _page(url: str, request: dict, timeout: float, client):
    """The next page of a search (paging.py), or None when the FHIR server does not give it."""
    try:
        return _get(url, "a next page", request, timeout, client)
    except HookRefused:
        return None


def _get(url: str, what: str, request: dict, timeout: float, client):
    """GET a FHIR URL with the call's access token, through the call's `client` (_reading);
    HookRefused 412 (400: not a URL) when it fails, None for a 404."""
    import httpx

    auth = request.get("fhirAuthorization") or {}
    try:
        reply = client.get(
            url,
            timeout=timeout,
            headers={"Authorization": f"Bearer {auth.get('access_token', '')}", "Accept": "application/fhir+json"},
        )
    except httpx.InvalidURL:
        raise HookRefused(400, "fhirServer is not a URL that can be called") from None
    except (httpx.HTTPError, ValueError) as exc:
        raise HookRefused(412, f"the FHIR server could not be reached for {what}: {type(exc).__name__}") from None
    if reply.status_code == 404:
        return None
    if reply.status_code != 200:
        raise HookRefused(412, f"the FHIR server answered {reply.status_code} for {what}")
    try:
        answer = reply.json()
    except ValueError:
        raise HookRefused(412, f"the FHIR server's answer for {what} is not JSON") from None
    where = _lone_surrogate_at(answer)
    if where is not None:
        raise HookRefused(412, f"the FHIR server's answer for {what} holds a lone surrogate at {where}")
    return answer
