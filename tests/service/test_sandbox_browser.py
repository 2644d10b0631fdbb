"""The HL7 CDS Hooks sandbox, a real client, against the real `ivig serve` (issue 30, "real clients").

Opt-in: IVIG_CDS_SANDBOX names a sandbox already built from its public source
(github.com/cds-hooks/sandbox, as its README says): the directory its build writes (build/), with
index.html, app.bundle.js and the sandbox's own .well-known/jwks.json. This test builds and fetches
nothing; without the variable, or without Debian's chromium and chromedriver, it is skipped, saying why.

On loopback: the built sandbox on a static server, a small FHIR server with a patient with multifocal
motor neuropathy (and renal risk factors), and `ivig serve` trusting the sandbox's issuer with the
sandbox's JWK Set as a file and its `jku` on the issuer's allowlist. The sandbox signs every call with
that `jku` in the token's header, and the service fetches a listed jku's keys: its https requests go
through a proxy on loopback that answers for the sandbox's host alone (with a certificate of a CA made
here, which the service alone trusts) and serves the built sandbox's JWK Set, the file the public
sandbox publishes there. Chromium resolves no name but 127.0.0.1.

In chromium, as a user would: the sandbox opens on the FHIR server and patient (its URL parameters),
the service's discovery URL is added in "Add CDS Services", "Configure CDS Services" lists one service
for each of patient-view, order-select and order-sign, the patient's cards render (those the service
gives for the same record), an override of a critical card is stored, and Rx View and Rx Sign call
ivig-order-select and ivig-order-sign (with no card: the sandbox orders only from its own drug list,
which has no immune globulin). Every call the browser makes to the service is answered 200 (never 401)
and carries the listed jku. Screenshots of each view are left in the test's tmp_path.
Slow: four servers and a browser.
"""

import datetime as dt
import functools
import http.server
import json
import os
import sqlite3
import ssl
import threading
from pathlib import Path
from urllib.parse import quote, urlsplit

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from helpers import CHROMEDRIVER, CHROMIUM, HEADLESS_FLAGS, ISSUER, Keys, Server, cards_of, load, send_fhir, signed

pytestmark = pytest.mark.slow

SANDBOX = os.environ.get("IVIG_CDS_SANDBOX")
if not SANDBOX:
    pytest.skip(
        "IVIG_CDS_SANDBOX is not set: to run this test, set it to the build/ directory of the HL7 CDS Hooks "
        "sandbox built from its source (github.com/cds-hooks/sandbox)",
        allow_module_level=True,
    )
webdriver = pytest.importorskip(
    "selenium.webdriver",
    reason='no selenium: pip install -e ".[test]" (or pip install selenium) to run the sandbox test',
)
if CHROMIUM is None or CHROMEDRIVER is None:
    pytest.skip(
        "no chromium or chromedriver on this machine: `apt-get install chromium chromium-driver` "
        "(Debian's packages) to run the sandbox test",
        allow_module_level=True,
    )
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

# What the sandbox's tokens say (each call's token is checked for them below): its issuer, and the
# JWK Set URL its header names, where the public sandbox publishes the build's .well-known/jwks.json
SANDBOX_ISSUER = "https://sandbox.cds-hooks.org"
SANDBOX_HOST = "sandbox.cds-hooks.org"
JKU_PATH = "/.well-known/jwks.json"
SANDBOX_JKU = f"https://{SANDBOX_HOST}{JKU_PATH}"
SERVICES = {"patient-view": "ivig-patient", "order-select": "ivig-order-select", "order-sign": "ivig-order-sign"}
RECORD = "patient-view-mmn-prednisone-renal"  # MMN, chronic kidney disease, dehydration, 70 kg, on prednisone
OVERRIDE = ("benefit-outweighs-risk", "The expected benefit outweighs this risk for this patient")
MEDICATION = "Prednisone"  # the sandbox's Rx views offer its own drug list, which has no immune globulin


@pytest.fixture(scope="module")
def sandbox_build() -> Path:
    """The built sandbox IVIG_CDS_SANDBOX names (a wrong directory fails, saying what it needs)."""
    build = Path(SANDBOX).resolve()
    missing = [
        name for name in ("index.html", "app.bundle.js", ".well-known/jwks.json") if not (build / name).is_file()
    ]
    if missing:
        pytest.fail(
            f"IVIG_CDS_SANDBOX={SANDBOX} is not a built sandbox (its build/ directory): no {', '.join(missing)}"
        )
    return build


# -- the servers on loopback -----------------------------------------------------------------


class Quiet(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass


def serve(handler) -> tuple:
    """(server, its base URL) of `handler` on 127.0.0.1, answering in a thread of its own."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}"


def stop(httpd) -> None:
    httpd.shutdown()
    httpd.server_close()


class SandboxFhir:
    """An open FHIR R4 server with one patient, as the sandbox asks it (from the page, so with CORS):
    metadata, a read of the patient, and a search of each type (GET, or POST to _search, which the
    sandbox tries first for a prefetch) giving the record's resources of that type."""

    def __init__(self, record: dict):
        self.patient = record["prefetch"]["patient"]
        resources = [v for v in record["prefetch"].values() if v and v["resourceType"] != "Bundle"]
        resources += [e["resource"] for v in record["prefetch"].values() if v for e in v.get("entry", [])]
        self.asked = []
        fhir = self

        class Handler(Quiet):
            def end_headers(self):
                self.send_header("Access-Control-Allow-Origin", "*")
                super().end_headers()

            def do_OPTIONS(self):
                self.send_response(204)
                self.send_header("Access-Control-Allow-Methods", "GET, POST")
                self.send_header("Access-Control-Allow-Headers", "Accept, Authorization, Content-Type")
                self.end_headers()

            def do_GET(self):
                fhir.asked.append(f"GET {self.path}")
                self.answer(urlsplit(self.path).path)

            def do_POST(self):
                fhir.asked.append(f"POST {self.path}")
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.answer(urlsplit(self.path).path.removesuffix("/_search"))

            def answer(self, path: str):
                body = fhir.resource(path.removeprefix("/fhir/"), resources)
                if body is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                else:
                    send_fhir(self, body)

        self.httpd, url = serve(Handler)
        self.url = url + "/fhir"

    def resource(self, path: str, resources: list):
        """What the server gives at `path` (below its base): None when nothing."""
        if path == "metadata":
            return {
                "resourceType": "CapabilityStatement",
                "status": "active",
                "kind": "instance",
                "fhirVersion": "4.0.1",
            }
        if path == f"Patient/{self.patient['id']}":
            return self.patient
        if "/" in path:
            return None
        found = [r for r in resources if r["resourceType"] == path]
        return {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(found),
            "entry": [{"resource": r} for r in found],
        }


def sandbox_site(build: Path) -> tuple:
    """(server, origin) of the built sandbox, served as static files."""

    class Files(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    return serve(functools.partial(Files, directory=str(build)))


def certificate_for(tmp_path: Path, host: str) -> tuple:
    """(CA file, server context) of a certificate for `host`, its own CA, made here: the service is
    told to trust this file alone (SSL_CERT_FILE), so no other host's certificate is trusted."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / f"{host}.pem", tmp_path / f"{host}-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return cert_file, context


class JkuHost:
    """The sandbox's host as the service reaches it for the listed jku: an https proxy on loopback
    that opens a tunnel to that host alone, speaks TLS there with a certificate of its own CA, and
    serves the built sandbox's JWK Set at the jku's path. Every tunnel and path asked is in `asked`."""

    def __init__(self, tmp_path: Path, jwks: Path):
        self.ca_file, context = certificate_for(tmp_path, SANDBOX_HOST)
        self.asked = []
        host = self

        class Site(Quiet):
            def do_GET(self):
                host.asked.append(f"GET {self.path}")
                if self.path != JKU_PATH:
                    self.send_error(404)
                    return
                data = jwks.read_bytes()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        class Tunnel(Quiet):
            def do_CONNECT(self):
                host.asked.append(f"CONNECT {self.path}")
                self.close_connection = True
                if self.path != f"{SANDBOX_HOST}:443":
                    self.send_error(403)
                    return
                self.send_response(200, "Connection established")
                self.end_headers()
                try:
                    with context.wrap_socket(self.connection, server_side=True) as tls:
                        Site(tls, self.client_address, self.server)
                except (ssl.SSLError, OSError) as exc:
                    host.asked.append(f"TLS failed: {exc}")

        self.httpd, self.url = serve(Tunnel)


# -- the service -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def record() -> dict:
    """The patient's record, as a hook call with every prefetch key (the FHIR server serves it)."""
    request = load(RECORD)
    request["prefetch"]["patient"]["name"] = [{"family": "Sandbox", "given": ["Morgan"]}]
    return request


@pytest.fixture(scope="module")
def fhir(record):
    server = SandboxFhir(record)
    yield server
    stop(server.httpd)


@pytest.fixture(scope="module")
def site(sandbox_build):
    httpd, origin = sandbox_site(sandbox_build)
    yield origin
    stop(httpd)


@pytest.fixture(scope="module")
def jku_host(tmp_path_factory, sandbox_build):
    host = JkuHost(tmp_path_factory.mktemp("jku-host"), sandbox_build / ".well-known" / "jwks.json")
    yield host
    stop(host.httpd)


def trust_file(folder: Path, sandbox_jwks: Path) -> Path:
    """The trust file: the sandbox's issuer with its JWK Set as a file and its jku on the allowlist;
    and this test's own EHR (helpers.Keys), whose direct call the sandbox's cards are compared with."""
    path = folder / "trust-sandbox.yaml"
    path.write_text(
        "issuers:\n"
        f"  - iss: {SANDBOX_ISSUER}\n"
        f"    jwks: {sandbox_jwks}\n"
        f"    jku: [{SANDBOX_JKU}]\n"
        f"  - iss: {ISSUER}\n"
        "    jwks: ehr-jwks.json\n",
        encoding="utf-8",
    )
    return path


@pytest.fixture(scope="module")
def service(tmp_path_factory, sandbox_build, site, jku_host):
    """`ivig serve` on loopback trusting the sandbox, answering CORS from the sandbox's origin; its
    https requests (a listed jku's keys) go to the JkuHost proxy, whose CA alone it trusts."""
    tmp = tmp_path_factory.mktemp("serve-sandbox")
    keys = Keys(tmp)
    trust = trust_file(tmp, sandbox_build / ".well-known" / "jwks.json")
    with pytest.MonkeyPatch.context() as env:  # the service's process inherits these, this one not
        for name in ("https_proxy", "HTTPS_PROXY"):
            env.setenv(name, jku_host.url)
        for name in ("no_proxy", "NO_PROXY"):
            env.setenv(name, "127.0.0.1,localhost")
        env.setenv("SSL_CERT_FILE", str(jku_host.ca_file))
        server = Server(tmp, "--trust", str(trust), "--cors-origin", site)
    server.keys = keys
    yield server
    server.stop()


def stored_feedback(server) -> list:
    """(card, outcome, reason code) of each feedback the service stored."""
    db = sqlite3.connect(server.db)
    try:
        return db.execute("select card, outcome, reason_code from feedback").fetchall()
    finally:
        db.close()


# -- the browser -------------------------------------------------------------------------------


def chromium(profile: Path):
    """Headless chromium through the system's chromedriver (selenium downloads nothing), a fresh
    profile, no proxy, every name but 127.0.0.1 unresolved, and its network events logged."""
    options = Options()
    options.binary_location = CHROMIUM
    for flag in (
        *HEADLESS_FLAGS,
        "--disable-dev-shm-usage",
        "--no-proxy-server",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--window-size=1400,2000",
    ):
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SE_OFFLINE", "true")
        return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


@pytest.fixture
def browser(tmp_path):
    driver = chromium(tmp_path / "profile")
    yield driver
    driver.quit()


class Calls:
    """The browser's requests to the service (from chromium's network log): method, URL, status,
    the token's header and claims (unverified: what the sandbox sent), and the body sent."""

    def __init__(self, driver, service_url: str):
        self.driver, self.service_url = driver, service_url
        self.sent, self.status = {}, {}

    def all(self) -> list:
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            params = message.get("params", {})
            if message["method"] == "Network.requestWillBeSent":
                request = params["request"]
                if request["url"].startswith(self.service_url) and request["method"] != "OPTIONS":
                    self.sent[params["requestId"]] = request
            elif message["method"] == "Network.responseReceived":
                self.status[params["requestId"]] = params["response"]["status"]
        return [self._call(rid, request) for rid, request in self.sent.items()]

    def seen(self) -> list:
        """(call, status) of each call so far, for a message."""
        return [(c["what"], c["status"]) for c in self.all()]

    def _call(self, rid: str, request: dict) -> dict:
        bearer = request["headers"].get("Authorization", "").removeprefix("Bearer ")
        return {
            "what": f"{request['method']} {request['url'][len(self.service_url) :]}",
            "status": self.status.get(rid),
            "header": jwt.get_unverified_header(bearer) if bearer else None,
            "claims": jwt.decode(bearer, options={"verify_signature": False}) if bearer else None,
            "body": json.loads(request["postData"]) if request.get("postData") else None,
        }

    def answered(self, what: str, count: int = 1, seconds: float = 60) -> list:
        """The calls `what` (method and path) once `count` of them are answered."""
        WebDriverWait(self.driver, seconds).until(
            lambda d: sum(1 for c in self.all() if c["what"] == what and c["status"]) >= count,
            message=f"no {count} answered {what} in {seconds} s; the calls: {self.seen()}",
        )
        return [c for c in self.all() if c["what"] == what]


def opened(driver, site: str, fhir: SandboxFhir):
    """The sandbox opened on the FHIR server and patient by its URL parameters, as a user may."""
    driver.get(f"{site}/?fhirServiceUrl={quote(fhir.url, safe='')}&patientId={fhir.patient['id']}")
    WebDriverWait(driver, 60).until(lambda d: "Sandbox" in d.find_element(By.TAG_NAME, "body").text)
    WebDriverWait(driver, 60).until(
        lambda d: not d.find_elements(By.CSS_SELECTOR, ".MuiBackdrop-root:not([style*='hidden'])")
    )


def gear_menu(driver, item: str):
    """The settings (gear) menu's `item` chosen."""
    driver.find_elements(By.CSS_SELECTOR, "header button")[-1].click()
    WebDriverWait(driver, 10).until(lambda d: d.find_elements(By.XPATH, f"//li[normalize-space()='{item}']"))
    driver.find_element(By.XPATH, f"//li[normalize-space()='{item}']").click()


def add_services(driver, calls: Calls):
    """The service's discovery URL added in "Add CDS Services"; the dialog closes once the sandbox
    has the services (it stays open, saying it could not, when discovery is refused)."""
    gear_menu(driver, "Add CDS Services")
    field = WebDriverWait(driver, 10).until(lambda d: d.find_element(By.NAME, "discovery-endpoint-input"))
    field.send_keys(calls.service_url + "/cds-services")
    driver.find_element(By.XPATH, "//button[normalize-space()='Save']").click()
    (discovery,) = calls.answered("GET /cds-services")
    assert discovery["status"] == 200, f"discovery answered {discovery['status']}"
    WebDriverWait(driver, 60).until(lambda d: not d.find_elements(By.NAME, "discovery-endpoint-input"))


def configured(driver) -> dict:
    """{service URL: its definition} as "Configure CDS Services" lists them; the dialog closed again."""
    gear_menu(driver, "Configure CDS Services")
    dialog = WebDriverWait(driver, 10).until(lambda d: d.find_element(By.CSS_SELECTOR, "[role=dialog]"))
    listed = {}
    for block in dialog.find_elements(By.CSS_SELECTOR, "[class*='service-display__container']"):
        url = block.find_element(By.CSS_SELECTOR, "[class*='url-container']").get_attribute("textContent")
        body = block.find_element(By.CSS_SELECTOR, "[class*='definition-body']").get_attribute("textContent")
        listed[url.strip()] = json.loads(body.replace("\xa0", " "))
    return listed


def close_dialog(driver):
    driver.find_element(By.XPATH, "//*[@role='dialog']//button[normalize-space()='Cancel']").click()
    WebDriverWait(driver, 10).until(lambda d: not d.find_elements(By.CSS_SELECTOR, "[role=dialog]"))


def shown_cards(driver) -> list:
    """The text of each card the page shows."""
    try:
        return [c.text for c in driver.find_elements(By.CSS_SELECTOR, "[class*='decision-card']")]
    except StaleElementReferenceException:
        return shown_cards(driver)


def shot(driver, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"sandbox-{name}.png"
    driver.save_screenshot(str(path))
    return path


def chosen_medication(driver, name: str):
    """A medication of the sandbox's list chosen in the current Rx view, by typing its name."""
    field = WebDriverWait(driver, 30).until(lambda d: d.find_element(By.NAME, "medication-input"))
    for typed in range(1, len(name) + 1):  # a key at a time: the field shows a key once the list took it
        field.send_keys(name[typed - 1])
        WebDriverWait(driver, 10).until(lambda d: field.get_attribute("value") == name[:typed])
    pick = f"//*[contains(@class, 'MuiListItemButton-root')][starts-with(normalize-space(), '{name}')]"
    WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.XPATH, pick))
    driver.find_elements(By.XPATH, pick)[0].click()


def nav(driver, tab: str):
    driver.find_element(By.XPATH, f"//header//button[normalize-space()='{tab}']").click()


def check_authenticated(calls: list, service: Server, jku_host: JkuHost, log_from: int):
    """Every call answered 200 (none 401), each signed by the sandbox's issuer with the listed jku;
    the service refused nothing since `log_from` (its log's length then: before, it was asked
    whether it answers, without a token), and reached out for nothing but the jku's keys."""
    assert calls and all(c["status"] == 200 for c in calls), [(c["what"], c["status"]) for c in calls]
    assert {(c["claims"]["iss"], c["header"]["jku"]) for c in calls} == {(SANDBOX_ISSUER, SANDBOX_JKU)}
    said = service.stderr()[log_from:]
    assert "refused" not in said, said
    assert set(jku_host.asked) <= {f"CONNECT {SANDBOX_HOST}:443", f"GET {JKU_PATH}"}, jku_host.asked


# -- the tests ---------------------------------------------------------------------------------


def test_the_sandbox_lists_a_service_per_hook_shows_the_patients_cards_and_stores_an_override(
    browser, site, fhir, service, jku_host, record, tmp_path
):
    log_from = len(service.stderr())
    opened(browser, site, fhir)
    calls = Calls(browser, service.url)
    add_services(browser, calls)

    listed = configured(browser)
    shot(browser, tmp_path, "services")
    close_dialog(browser)
    by_hook = {definition["hook"]: url.rsplit("/", 1)[1] for url, definition in listed.items()}
    assert by_hook == SERVICES, listed  # order-select beside order-sign: the sandbox keys them by URL

    direct = {key: value for key, value in record.items() if key not in ("fhirServer", "fhirAuthorization")}
    expected = cards_of(service.call(direct, "ivig-patient", headers=signed(service, "/cds-services/ivig-patient")))
    assert any(c["indicator"] == "critical" for c in expected)
    WebDriverWait(browser, 60).until(lambda d: len(shown_cards(d)) == len(expected))
    shown = shown_cards(browser)
    assert all(any(card["summary"] in text for text in shown) for card in expected), (shown, expected)
    shot(browser, tmp_path, "patient-view")

    (hook_call,) = calls.answered("POST /cds-services/ivig-patient")
    assert set(hook_call["body"]["prefetch"]) >= {"patient", "conditions"}, "the sandbox prefetched the record"

    critical = next(c for c in expected if c["indicator"] == "critical")
    card = next(
        c for c in browser.find_elements(By.CSS_SELECTOR, "[class*='decision-card']") if critical["summary"] in c.text
    )
    card.find_element(By.CSS_SELECTOR, "button[aria-label='select dismiss reason']").click()
    browser.find_element(By.XPATH, f"//li[normalize-space()='Override: {OVERRIDE[1]}']").click()
    (feedback,) = calls.answered("POST /cds-services/ivig-patient/feedback")
    WebDriverWait(browser, 30).until(lambda d: len(shown_cards(d)) == len(expected) - 1)
    shot(browser, tmp_path, "overridden")
    stored = stored_feedback(service)
    assert [(outcome, code) for _, outcome, code in stored] == [("overridden", OVERRIDE[0])], stored
    assert stored[0][0] == feedback["body"]["feedback"][0]["card"]

    check_authenticated(calls.all(), service, jku_host, log_from)


def test_the_sandbox_calls_order_select_and_order_sign_and_both_authenticate(
    browser, site, fhir, service, jku_host, tmp_path
):
    log_from = len(service.stderr())
    opened(browser, site, fhir)
    calls = Calls(browser, service.url)
    add_services(browser, calls)

    nav(browser, "Rx View")
    chosen_medication(browser, MEDICATION)
    selected = calls.answered("POST /cds-services/ivig-order-select", count=2)
    shot(browser, tmp_path, "rx-view")
    body = next(
        c["body"]
        for c in reversed(selected)
        if c["body"]["context"]["draftOrders"]["entry"][0]["resource"].get("medicationCodeableConcept")
    )
    order = body["context"]["draftOrders"]["entry"][0]["resource"]
    assert body["hook"] == "order-select" and body["context"]["selections"] == [f"MedicationRequest/{order['id']}"]
    assert order["medicationCodeableConcept"]["text"].startswith(MEDICATION)

    nav(browser, "Rx Sign")  # the order of Rx View, to be signed
    field = WebDriverWait(browser, 30).until(lambda d: d.find_element(By.NAME, "medication-input"))
    assert field.get_attribute("value") == order["medicationCodeableConcept"]["text"]
    browser.find_element(By.XPATH, "//button[normalize-space()='Sign Order']").click()
    (signing,) = calls.answered("POST /cds-services/ivig-order-sign")
    shot(browser, tmp_path, "rx-sign")
    assert signing["body"]["hook"] == "order-sign" and signing["body"]["context"]["draftOrders"]["entry"]

    check_authenticated(calls.all(), service, jku_host, log_from)
