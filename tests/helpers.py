"""What the tests share, in one place: plain functions and classes (their fixtures are in conftest.py).

- the checkout and small file helpers;
- the real `ivig` in a process of its own, or at a pseudo-terminal (pexpect), and reading
  an interview's screen;
- FHIR records built and evaluated in-process (tests/io/fhir);
- hypothesis strategies over cases;
- the CDS Hooks service over real HTTP: a server process, keys, tokens, a fake FHIR server.

A test that calls `ivig`, `started`, `spawn` or `Server` runs a process of its own, so
conftest.py marks it slow.
"""

import asyncio
import contextlib
import copy
import datetime as dt
import http.server
import io
import ipaddress
import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import unicodedata
import uuid
from pathlib import Path

import httpx
import jsonschema
import jwt
import pexpect
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import strategies as st

from ivig_advisor.cli import main
from ivig_advisor.engine.core.analysis import domains
from ivig_advisor.engine.core.schema import CaseSchema

ROOT = Path(__file__).resolve().parent.parent
HERE = ROOT / "tests"


# -- files and output ---------------------------------------------------------------------


def jsonl(output: str):
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def results_of(run_cli, *paths, input=None):
    """The JSON results of `ivig evaluate PATHS` through the real command (exit 0 or 1)."""
    out = run_cli("evaluate", "--format", "jsonl", "--quiet", *map(str, paths), input=input)
    assert out.exit_code in (0, 1), out.output
    return jsonl(out.stdout)


def written(tmp_path, text, name="cases.csv"):
    """A file of `text` (str: as UTF-8; bytes: as they are) in tmp_path."""
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def mutate(path, old, new):
    """Replace the first `old` in a file by `new` (which must be there)."""
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


# -- the real command in a process of its own ---------------------------------------------

IVIG = [sys.executable, "-m", "ivig_advisor.cli"]


def plain_env(env=None) -> dict:
    """`env` (default: this process's) without colour: output compared as text."""
    return dict(os.environ if env is None else env, NO_COLOR="1")


def ivig(*args, input=None, cwd=None, env=None, timeout=120, **kw) -> subprocess.CompletedProcess:
    """Run the real `ivig ARGS` in a process of its own and wait for it; text in and out,
    both streams captured unless `stdout` or `stderr` says where they go."""
    if "stdout" not in kw and "stderr" not in kw:
        kw["capture_output"] = True
    return subprocess.run(
        [*IVIG, *map(str, args)], input=input, cwd=cwd, env=plain_env(env), text=True, timeout=timeout, **kw
    )


def started(*args, cwd=None, env=None) -> subprocess.Popen:
    """The real `ivig ARGS` started in a process of its own, its output in pipes: for
    processes that must run side by side."""
    return subprocess.Popen(
        [*IVIG, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=plain_env(env),
        cwd=cwd,
    )


# -- the interview at a pseudo-terminal ---------------------------------------------------

INTERVIEW = ("-m", "ivig_advisor.cli", "interview")
QUESTIONS = {spec.question: name for name, spec in CaseSchema.load().fields.items() if spec.question}
QUESTION = re.compile(r"\n(?:\x1b\[[0-9;]*m)*(\d+)\. ([^?]+\?)")  # may be wrapped
SAVE = "Save the case to a file"
# what a terminal does not show as text: styles, cursor moves, readline's redisplay
CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|[\x00-\x08\x0b-\x1f]")


def terminal_env(colour=False, term="xterm", home=None) -> dict:
    """A terminal's environment: its size comes from the pty alone (no COLUMNS or LINES),
    colour only when asked, and HOME at `home` when given."""
    env = {name: value for name, value in os.environ.items() if name not in ("COLUMNS", "LINES", "NO_COLOR")}
    env["TERM"] = term
    if not colour:
        env["NO_COLOR"] = "1"
    if home:
        env["HOME"] = str(home)
    return env


def spawn(*args, cwd, colour=False, command=INTERVIEW, home=None, size=(24, 80), term="xterm"):
    """`python COMMAND ARGS` (by default the real `ivig interview ARGS`) at a pseudo-terminal of
    `size` (rows, columns); the whole transcript, as the terminal received it, in child.logfile_read."""
    child = pexpect.spawn(
        sys.executable,
        [*command, *args],
        cwd=str(cwd),
        env=terminal_env(colour, term, home),
        encoding="utf-8",
        timeout=30,
        dimensions=size,
    )
    child.logfile_read = io.StringIO()
    return child


def spawn_wide(*args, cwd):
    """`ivig interview ARGS` at a terminal of 200 columns without line editing (TERM=dumb),
    where what the interview says is seldom wrapped."""
    return spawn(*args, cwd=cwd, size=(50, 200), term="dumb")


def question(child):
    """The field of the next question."""
    child.expect(QUESTION)
    name = QUESTIONS[" ".join(child.match.group(2).split())]
    child.expect("> ")
    return name


def columns(text: str) -> int:
    """Display columns: East Asian wide and fullwidth characters take two."""
    return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def screen_lines(transcript: str):
    return [CONTROL.sub("", line) for line in transcript.replace("\r\n", "\n").split("\n")]


def said_after(child, answer: str) -> str:
    """What the screen says, as one line, after `answer` is typed at a question, up to the next prompt."""
    child.sendline(answer)
    child.expect("> ")
    return joined(child.before)


def joined(transcript: str) -> str:
    """The transcript's text with wrapped lines joined (whitespace runs as one space)."""
    return " ".join(" ".join(screen_lines(transcript)).split())


# -- FHIR records, evaluated in-process -----------------------------------------------------

AS_OF = "2026-11-25"  # the day FHIR cases are evaluated on (--as-of): an age from a birth date stays put
CM = "http://hl7.org/fhir/sid/icd-10-cm"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"


def coding(system, code, display=None) -> dict:
    return {"system": system, "code": code, **({"display": display} if display else {})}


def body_weight(rid, value_quantity: dict, pid="p", when="2026-11-01") -> dict:
    """An Observation of body weight (LOINC 29463-7) with its valueQuantity exactly as given."""
    return {
        "resourceType": "Observation",
        "id": rid,
        "status": "final",
        "subject": {"reference": f"Patient/{pid}"},
        "code": {"coding": [coding(LOINC, "29463-7")]},
        "effectiveDateTime": when,
        "valueQuantity": value_quantity,
    }


def write_json(path: Path, document) -> Path:
    path.write_text(json.dumps(document, indent=1), encoding="utf-8")
    return path


def invoke(*args):
    """Run the real `ivig` in-process; never lets an exception escape (an internal error is exit 70)."""
    return CliRunner().invoke(main, [str(a) for a in args])


def evaluate_json(*paths, as_of=AS_OF):
    """`ivig evaluate --format json` of paths, in-process: (exit code, results)."""
    out = invoke("evaluate", "--format", "json", "--quiet", *(["--as-of", as_of] if as_of else []), *paths)
    assert out.exit_code in (0, 1), f"exit {out.exit_code}: {out.output}{out.exception!r}"
    return out.exit_code, json.loads(out.stdout)


# -- hypothesis strategies ----------------------------------------------------------------


@st.composite
def cut_point_cases(draw, rulebase, diagnosis=None, weight_kg=None):
    """A case of one value per field from the rule base's cut points (analysis.domains: the
    values its tests tell apart, unknown among them), lists as lists and unknowns left out.
    `diagnosis` stands in for an unknown diagnosis; `weight_kg`, a strategy, draws the weight."""
    facts = {name: draw(st.sampled_from(values)) for name, values in domains(rulebase).items()}
    if diagnosis is not None:
        facts["diagnosis"] = facts["diagnosis"] or diagnosis
    if weight_kg is not None:
        facts["weight_kg"] = draw(weight_kg)
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in facts.items() if v is not None}


# -- the CDS Hooks service over real HTTP ---------------------------------------------------

CDS = HERE / "cds"
SCHEMAS = HERE / "schemas"
RESPONSE_SCHEMA = json.loads((SCHEMAS / "cds-hooks-2.0-response.schema.json").read_text(encoding="utf-8"))
ISSUER = "https://ehr.example.org/"
TOKEN = "fhir-access-token-" + uuid.uuid4().hex


def response_validator():
    return jsonschema.Draft202012Validator(RESPONSE_SCHEMA)


def check_response(body: dict) -> dict:
    """A 200 body of a hook call: valid against the CDS Hooks 2.0 response schema."""
    errors = sorted(response_validator().iter_errors(body), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:5])
    return body


def cards_of(reply) -> list:
    """The cards of a hook call's reply, which must be a 200 with a valid body."""
    assert reply.status_code == 200, reply.text
    return check_response(reply.json())["cards"]


def outcome(reply):
    body = reply.json()
    assert body["resourceType"] == "OperationOutcome" and body["issue"][0]["diagnostics"]
    return body["issue"][0]["diagnostics"]


def load(name: str) -> dict:
    return json.loads((CDS / f"{name}.json").read_text(encoding="utf-8"))


def stamp(seconds: float = 0) -> str:
    """An outcomeTimestamp `seconds` from now, as CDS Hooks writes one (RFC 3339, UTC, seconds):
    feedback is dated after its card was issued, and not in the future."""
    return (dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def service_of(request: dict) -> str:
    return "ivig-patient" if request["hook"] == "patient-view" else "ivig-order"


def record_bundle(request: dict) -> dict:
    """The record a hook call carries (its prefetch and its draft orders) as one FHIR Bundle."""
    resources = []
    for value in request.get("prefetch", {}).values():
        if value is None:
            continue
        if value["resourceType"] == "Bundle":
            resources += [e["resource"] for e in value.get("entry", [])]
        else:
            resources.append(value)
    for entry in request["context"].get("draftOrders", {}).get("entry", []):
        resources.append(entry["resource"])
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in resources]}


def on_ivig(request: dict) -> dict:
    """The patient of `request` with an active IVIG order in the record (prefetch medications)."""
    order = copy.deepcopy(load("order-select-uncovered")["context"]["draftOrders"]["entry"][0]["resource"])
    order.update(id="ivig-active-1", status="active")
    request["prefetch"]["medications"]["entry"].append({"resource": order})
    return request


def topics(cards):
    return [c["source"].get("topic", {}).get("code") for c in cards]


def stance_of(cards) -> dict:
    """The stance card: the last, after the cards about this patient (issue 26)."""
    return cards[-1]


def said(cards) -> set:
    """Every rule whose words reach the EHR: a card's topic, or a precaution in a card's detail
    ('(rule `skin-reactions`)'), so that a test of what a patient is told holds whether a
    warning is about this patient (a card) or applies to every infusion (a precaution)."""
    named = {m for c in cards for m in re.findall(r"\(rule `([a-z0-9-]+)`\)", c.get("detail", ""))}
    return set(topics(cards)) | named


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`ivig serve` in a subprocess; its stderr goes to a file the tests read."""

    def __init__(self, tmp: Path, *args: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db = tmp / "feedback.sqlite"
        self.log = tmp / "serve.stderr"
        self._log = open(self.log, "wb")
        cmd = [
            sys.executable,
            "-m",
            "ivig_advisor.cli",
            "serve",
            "--port",
            str(self.port),
            "--feedback-db",
            str(self.db),
            *args,
        ]
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, cwd=str(tmp))
        deadline = time.monotonic() + 90
        while True:
            if self.proc.poll() is not None:
                self._log.close()
                raise RuntimeError(f"ivig serve exited {self.proc.returncode}: {self.log.read_text()}")
            try:
                httpx.get(self.url + "/cds-services", timeout=2)  # 200, or 401 without a token: it answers
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"ivig serve did not answer in 90 s: {self.log.read_text()}") from None
                time.sleep(0.2)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        self._log.close()

    def stderr(self) -> str:
        self._log.flush()
        return self.log.read_text(encoding="utf-8", errors="replace")

    def post(self, path: str, body=None, *, content=None, headers=None, timeout=60) -> httpx.Response:
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        return httpx.post(
            self.url + path, content=json.dumps(body) if content is None else content, headers=h, timeout=timeout
        )

    def call(self, request: dict, service=None, **kw) -> httpx.Response:
        return self.post(f"/cds-services/{service or service_of(request)}", request, **kw)


class InThread:
    """The app of `settings` under a real uvicorn in a thread of this process, on a free loopback port."""

    def __init__(self, settings):
        import uvicorn

        from ivig_advisor.engine.service.app import create_app

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve()), daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "uvicorn did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=30)


def outside_address():
    """An address of this machine that is not loopback, or None."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("198.51.100.1", 9))  # no packet is sent: the route says which address
            address = probe.getsockname()[0]
    except OSError:
        return None
    return None if ipaddress.ip_address(address).is_loopback else address


@contextlib.contextmanager
def insecure_dev_on_every_address(db: Path):
    """The insecure-dev app under uvicorn run directly on 0.0.0.0 (not through `ivig serve`, which
    refuses that), keeping its cards and calls in `db`: yields its port once it answers on loopback."""
    from ivig_advisor.engine.service.app import ENV, Settings

    port = free_port()
    env = dict(os.environ, **{ENV: Settings(insecure_dev=True, feedback_db=str(db)).to_env()})
    app = "ivig_advisor.engine.service.app:app_from_environment"
    command = [sys.executable, "-m", "uvicorn", "--factory", app, "--host", "0.0.0.0", "--port", str(port)]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
                break
            except httpx.HTTPError:
                assert proc.poll() is None and time.monotonic() < deadline, "uvicorn did not answer"
                time.sleep(0.2)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# Debian's chromium and its chromedriver, for the tests that drive a real browser (None: not installed),
# and the flags a headless chromium needs on a machine with no network beyond loopback
CHROMIUM = next((shutil.which(name) for name in ("chromium", "chromium-browser") if shutil.which(name)), None)
CHROMEDRIVER = shutil.which("chromedriver") or next(
    (path for path in ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver") if os.access(path, os.X_OK)), None
)
HEADLESS_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


class Keys:
    """An EC P-384 and an RSA key of the trusted issuer, as a JWK Set and a trust file."""

    def __init__(self, tmp: Path):
        self.ec = ec.generate_private_key(ec.SECP384R1())
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        ec_jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.ec.public_key()))
        rsa_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.rsa.public_key()))
        ec_jwk.update(kid="ehr-ec-1", alg="ES384", use="sig")
        rsa_jwk.update(kid="ehr-rsa-1", alg="RS384", use="sig")
        self.jwks = tmp / "ehr-jwks.json"
        self.jwks.write_text(json.dumps({"keys": [ec_jwk, rsa_jwk]}))
        self.trust = tmp / "trust.yaml"
        self.trust.write_text(f"issuers:\n  - iss: {ISSUER}\n    jwks: ehr-jwks.json\n")
        self.ec_public_pem = self.ec.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def claims(secure, path="/cds-services/ivig-order", **change):
    now = int(time.time())
    out = {
        "iss": ISSUER,
        "aud": secure.url + path,
        "exp": now + 300,
        "iat": now,
        "jti": str(uuid.uuid4()),
        "tenant": "2ddd6c3a",
    }
    out.update(change)
    return {k: v for k, v in out.items() if v is not None}


def es384(keys, payload, **headers):
    return jwt.encode(payload, keys.ec, algorithm="ES384", headers=dict({"kid": "ehr-ec-1", "typ": "JWT"}, **headers))


def signed(server, path, **change):
    return {"Authorization": "Bearer " + es384(server.keys, claims(server, path, **change))}


def feedback_item(card: str, **change) -> dict:
    item = {"card": card, "outcome": "overridden", "outcomeTimestamp": stamp()}
    item.update(change)
    return item


def stored_feedback(server) -> list:
    db = sqlite3.connect(server.db)
    try:
        return [row[0] for row in db.execute("select card from feedback")]
    finally:
        db.close()


def call_fetching(dev, base: dict, served: dict = None, **fake):
    """`base` called with its Patient and Conditions left for the service to fetch from a FakeFhir
    serving `served` (default: what `base` holds); the reply, and the server (what it saw)."""
    server = FakeFhir(served or base, **fake)
    try:
        return dev.call(fetching(base, server.url)), server
    finally:
        server.close()


def git(where, *args) -> None:
    """A git command in `where`, as a test's own committer (no identity needed on the machine)."""
    subprocess.run(
        ["git", "-C", str(where), "-c", "user.name=t", "-c", "user.email=t@t", *args], check=True, capture_output=True
    )


def send_fhir(handler: http.server.BaseHTTPRequestHandler, body) -> None:
    """Answer a fake FHIR server's GET with `body` as FHIR JSON (200)."""
    data = json.dumps(body).encode()
    handler.send_response(200)
    handler.send_header("Content-Type", "application/fhir+json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


class FakeFhir:
    """A FHIR server in a thread: Patient/{id}, Condition?patient=, an empty searchset for the rest."""

    def __init__(self, request: dict, status=200, raw=None):
        self.seen = []
        fake = self
        patient = request["prefetch"]["patient"]
        conditions = request["prefetch"]["conditions"]

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                fake.seen.append((self.path, self.headers.get("Authorization")))
                if raw is not None or status != 200:
                    data = raw if raw is not None else b'{"resourceType": "OperationOutcome"}'
                    self.send_response(status)
                    self.send_header("Content-Type", "application/fhir+json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                path = self.path.split("/fhir/", 1)[-1]
                if path == f"Patient/{patient['id']}":
                    body = patient
                elif path.startswith("Condition?patient="):
                    body = conditions
                elif path.startswith("Patient/"):
                    self.send_response(404)
                    self.end_headers()
                    return
                else:
                    body = {"resourceType": "Bundle", "type": "searchset", "entry": []}
                send_fhir(self, body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/fhir"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


def fetching(request: dict, server_url: str) -> dict:
    request = copy.deepcopy(request)
    request["fhirServer"] = server_url
    request["fhirAuthorization"] = {
        "access_token": TOKEN,
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "user/Patient.read user/Condition.read",
        "subject": "ivig-advisor",
    }
    del request["prefetch"]["patient"], request["prefetch"]["conditions"]
    return request


def section(lines, heading: str, item: str) -> list:
    """The lines of a part of an output: the first line starting with `heading`, then the lines
    after it that start with `item` (the part's entries), up to the first that does not."""
    start = next(i for i, line in enumerate(lines) if line.startswith(heading))
    part = [lines[start]]
    for line in lines[start + 1 :]:
        if not line.startswith(item):
            break
        part.append(line)
    return part
