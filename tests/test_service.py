"""`ivig serve` through real HTTP: a server process on a free port, called with httpx.

Two servers per session: one in --insecure-dev mode (no JWT) and one with a trust
file whose JWK Set holds an EC P-384 key (ES384) and an RSA key (RS384), generated
here. Every 200 response of a hook call is checked against the CDS Hooks 2.0
response schema (tests/schemas), and its cards against `ivig evaluate` on the
same record written as a FHIR Bundle. The requests (tests/cds/*.json) are the
spec's examples adapted to IVIG (tests/cds/make_requests.py writes them).
"""

import base64
import copy
import datetime as dt
import hashlib
import hmac
import http.server
import json
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import jsonschema
import jwt
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ivig_advisor.cli import main

HERE = Path(__file__).resolve().parent
CDS = HERE / "cds"
SCHEMAS = HERE / "schemas"
RESPONSE_SCHEMA = json.loads((SCHEMAS / "cds-hooks-2.0-response.schema.json").read_text(encoding="utf-8"))
OTHER_SCHEMA = json.loads((SCHEMAS / "cds-hooks-2.0-other.schema.json").read_text(encoding="utf-8"))
ISSUER = "https://ehr.example.org/"
SANDBOX = "https://sandbox.cds-hooks.org"


def response_validator():
    return jsonschema.Draft202012Validator(RESPONSE_SCHEMA)


def other_validator(name: str):
    schema = dict(OTHER_SCHEMA)
    schema["$ref"] = f"#/$defs/{name}"
    return jsonschema.Draft202012Validator(schema)


def check_response(body: dict) -> dict:
    """A 200 body of a hook call: valid against the CDS Hooks 2.0 response schema."""
    errors = sorted(response_validator().iter_errors(body), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:5])
    return body


def cards_of(reply) -> list:
    """The cards of a hook call's reply, which must be a 200 with a valid body."""
    assert reply.status_code == 200, reply.text
    return check_response(reply.json())["cards"]


def load(name: str) -> dict:
    return json.loads((CDS / f"{name}.json").read_text(encoding="utf-8"))


def stamp(seconds: float = 0) -> str:
    """An outcomeTimestamp `seconds` from now, as CDS Hooks writes one (RFC 3339, UTC, seconds):
    feedback is dated after its card was issued, and not in the future."""
    return (dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def service_of(request: dict) -> str:
    return "ivig-patient" if request["hook"] == "patient-view" else "ivig-order"


# -- the server processes ------------------------------------------------------------


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


@pytest.fixture(scope="session")
def dev(tmp_path_factory):
    server = Server(tmp_path_factory.mktemp("serve-dev"), "--insecure-dev")
    yield server
    server.stop()
    assert server.proc.returncode is not None  # no orphan process


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


@pytest.fixture(scope="session")
def keys(tmp_path_factory):
    return Keys(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="session")
def secure(tmp_path_factory, keys):
    server = Server(tmp_path_factory.mktemp("serve-secure"), "--trust", str(keys.trust))
    yield server
    server.stop()


# -- 2. discovery --------------------------------------------------------------------


def test_discovery_lists_the_three_hooks_with_prefetch_templates(dev):
    reply = httpx.get(dev.url + "/cds-services", timeout=30)
    assert reply.status_code == 200
    body = reply.json()
    other_validator("discovery").validate(body)
    by_hook = {(s["hook"], s["id"]) for s in body["services"]}
    assert by_hook == {("order-select", "ivig-order"), ("order-sign", "ivig-order"), ("patient-view", "ivig-patient")}
    for service in body["services"]:
        assert service["prefetch"]["patient"] == "Patient/{{context.patientId}}"
        assert service["prefetch"]["conditions"] == "Condition?patient={{context.patientId}}"
        assert all("{{context.patientId}}" in q for q in service["prefetch"].values())


def test_discovery_schema_can_fail():
    with pytest.raises(jsonschema.ValidationError):
        other_validator("discovery").validate({"services": [{"hook": "patient-view", "id": "x"}]})  # no description
    with pytest.raises(AssertionError):
        check_response({"cards": [{"summary": "x", "indicator": "urgent", "source": {"label": "y"}}]})


# -- 3. hook calls, and the same answer as `ivig evaluate` --------------------------------


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


def evaluate(request: dict, tmp_path) -> dict:
    path = tmp_path / "record.json"
    path.write_text(json.dumps(record_bundle(request)))
    result = CliRunner().invoke(main, ["evaluate", "--format", "json", "-q", str(path)], catch_exceptions=False)
    (out,) = json.loads(result.output)
    return out


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


def assert_same_as_evaluate(cards, result, weight=None):
    """The cards say what `ivig evaluate` says: one card per finding about this patient (a
    warning code) at critical or warning level, critical first, whose summary is the warning's
    own (never cut short); the dose card among the warnings; the stance card last, whose detail
    holds the general precautions and the quieter advice; no card for an info-level warning."""
    assert result["status"] == "ok", result["error"]
    stance = stance_of(cards)
    assert stance["source"]["topic"]["code"] == result["ivig"]["rule"]
    ranks = [("critical", "warning").index(c["indicator"]) for c in cards[:-1]]
    assert ranks == sorted(ranks), [c["summary"] for c in cards]
    own = [w for w in result["warnings"] if w.get("applies", "patient") == "patient"]
    loud = [w for w in own if w["severity"] in ("critical", "warning")]
    first = {}
    for w in loud:
        first.setdefault(w["code"], w)  # the Result lists the most severe first
    by_rule = {c["source"]["topic"]["code"]: c for c in cards[:-1]}
    for w in first.values():
        card = by_rule.get(w["rule"])
        assert card is not None, f"no card for the warning {w['code']} ({w['rule']})"
        assert card["indicator"] == w["severity"]
        assert not card["summary"].endswith("…")
        if len(w["summary"]) < 140:
            assert card["summary"] == w["summary"]
    dose_rule = (result.get("dose") or {}).get("rule")
    extra = [c for c in cards[:-1] if c["source"]["topic"]["code"] not in {w["rule"] for w in first.values()}]
    assert all(c["source"]["topic"]["code"] == dose_rule for c in extra), topics(extra)
    for card in extra:
        daily = round(result["dose"]["g_per_kg_per_day"] * weight, 1)
        resource = card["suggestions"][0]["actions"][0]["resource"]
        assert resource["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] == daily
    # no info-level warning becomes a card; each is said in the stance card's detail
    quiet = {w["rule"] for w in own if w["severity"] == "info"}
    quiet |= {i["rule"] for w in result["warnings"] for i in w.get("items", ())}
    assert not quiet & set(topics(cards))
    assert quiet <= said([stance]), quiet - said([stance])


def test_order_select_mmn_gives_stance_warnings_and_a_dose_update(dev, tmp_path):
    request = load("order-select-mmn")
    cards = cards_of(dev.call(request))
    stance = stance_of(cards)
    assert stance["indicator"] == "info"
    assert stance["summary"].startswith("IVIG first-line for Multifocal motor neuropathy")
    assert stance["source"]["topic"]["code"] == "mmn-general"
    assert {"mmn-avoid-corticosteroids", "skin-reactions", "aseptic-meningitis-any-patient", "thrombosis"} <= said(
        cards
    )
    dose = [c for c in cards if c.get("suggestions")]
    assert len(dose) == 1 and dose[0]["indicator"] == "warning"
    assert "140 g a day differs from the review's 28 g a day" in dose[0]["summary"]
    (suggestion,) = dose[0]["suggestions"]
    (action,) = suggestion["actions"]
    assert action["type"] == "update"
    ordered = request["context"]["draftOrders"]["entry"][1]["resource"]
    corrected = action["resource"]
    assert corrected["id"] == ordered["id"] and corrected["resourceType"] == "MedicationRequest"
    assert corrected["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"] == {
        "value": 28.0,
        "unit": "g",
        "system": "http://unitsofmeasure.org",
        "code": "g",
    }
    # the full order: every other element unchanged
    assert {k: v for k, v in corrected.items() if k != "dosageInstruction"} == {
        k: v for k, v in ordered.items() if k != "dosageInstruction"
    }
    assert len({c["uuid"] for c in cards} | {suggestion["uuid"]}) == len(cards) + 1
    assert_same_as_evaluate(cards, evaluate(request, tmp_path), weight=70)


def test_order_sign_evaluates_every_draft_order_and_a_right_dose_gets_no_dose_card(dev, tmp_path):
    request = load("order-sign-mmn")
    cards = cards_of(dev.call(request))
    assert stance_of(cards)["source"]["topic"]["code"] == "mmn-general"
    assert "anaphylaxis-iga-antibodies-unknown" in topics(cards)
    assert not any(c.get("suggestions") for c in cards)  # 28 g a day at 70 kg is the review's dose
    assert_same_as_evaluate(cards, evaluate(request, tmp_path), weight=70)


def test_order_sign_with_a_wrong_dose_gets_the_dose_card(dev):
    request = load("order-sign-mmn")
    request["context"]["draftOrders"]["entry"][1]["resource"]["dosageInstruction"][0]["doseAndRate"][0][
        "doseQuantity"
    ].update(value=35)
    cards = check_response(dev.call(request).json())["cards"]
    (dose,) = [c for c in cards if c.get("suggestions")]
    assert dose["source"]["topic"]["code"] == "mmn-dose"
    assert "35 g a day" in dose["summary"]


def test_patient_view_with_a_covered_diagnosis(dev, tmp_path):
    request = load("patient-view-cidp")
    cards = cards_of(dev.call(request))
    assert stance_of(cards)["source"]["topic"]["code"] == "cidp-general"
    assert stance_of(cards)["indicator"] == "info"
    assert not any(c.get("suggestions") for c in cards)  # no order, no dose card
    assert_same_as_evaluate(cards, evaluate(request, tmp_path))


def test_patient_view_without_a_covered_diagnosis_is_no_cards(dev):
    reply = dev.call(load("patient-view-uncovered"))
    assert reply.status_code == 200
    assert check_response(reply.json()) == {"cards": []}


def test_order_select_whose_selections_leave_out_the_ivig_order_is_no_cards(dev):
    reply = dev.call(load("order-select-unselected"))
    assert reply.status_code == 200
    assert check_response(reply.json()) == {"cards": []}
    # the same call with the IVIG order selected does get cards: the test can fail
    request = load("order-select-unselected")
    request["context"]["selections"].append("MedicationRequest/ivig-draft-1")
    assert check_response(dev.call(request).json())["cards"]


def test_ivig_ordered_where_not_effective_is_a_warning_stance_card(dev, tmp_path):
    request = load("order-select-als")
    cards = check_response(dev.call(request).json())["cards"]
    stance = stance_of(cards)
    assert stance["indicator"] == "warning"
    assert stance["summary"].startswith("IVIG ordered, but not effective for Amyotrophic lateral sclerosis")
    assert stance["source"]["topic"]["code"] == "als-not-effective"
    assert "ivig-planned-not-effective" in topics(cards)
    assert_same_as_evaluate(cards, evaluate(request, tmp_path), weight=70)


def test_ivig_for_ms_from_fhir_is_not_established(dev, tmp_path):
    """MS with established weakness (not effective) cannot be said in FHIR: the map leaves
    ms_presentation a question, so the stance is MS's general one, and the stance card says
    what the record does not give."""
    request = load("order-select-ms")
    cards = check_response(dev.call(request).json())["cards"]
    assert stance_of(cards)["source"]["topic"]["code"] == "ms-general"
    assert stance_of(cards)["indicator"] == "info"
    assert "ms\\_presentation" in stance_of(cards)["detail"]
    assert_same_as_evaluate(cards, evaluate(request, tmp_path), weight=70)


def test_ivig_for_no_covered_diagnosis_still_gives_the_safety_cards(dev):
    cards = check_response(dev.call(load("order-select-uncovered")).json())["cards"]
    assert stance_of(cards)["source"]["topic"]["code"] == "out-of-scope"
    assert "no disease the review covers" in stance_of(cards)["summary"]
    # diabetes and an elderly patient: thrombosis; kidney disease without known depletion
    assert {"thrombosis", "renal-disease-without-known-depletion", "skin-reactions"} <= said(cards)
    assert all(c["indicator"] in ("warning", "critical") for c in cards[:-1])


def test_critical_warning_card_has_override_reasons_with_displays(dev, tmp_path):
    request = load("order-select-critical")
    cards = check_response(dev.call(request).json())["cards"]
    critical = [c for c in cards if c["indicator"] == "critical"]
    assert topics(critical) == ["renal-failure"]
    reasons = critical[0]["overrideReasons"]
    assert len(reasons) >= 2
    assert all(r["code"] and r["system"] and r["display"] for r in reasons)
    assert not any("overrideReasons" in c for c in cards if c["indicator"] != "critical")
    assert_same_as_evaluate(cards, evaluate(request, tmp_path), weight=70)


def test_mmn_with_prednisone_ordered_is_a_critical_card(dev, tmp_path):
    """(Was a BUG until af0d2b2: a planned corticosteroid reached the case as a tuple.)"""
    request = load("order-select-mmn-prednisone")
    cards = check_response(dev.call(request).json())["cards"]
    critical = [c for c in cards if c["indicator"] == "critical"]
    assert topics(critical) == ["mmn-corticosteroids-planned"]
    assert all(r["display"] for r in critical[0]["overrideReasons"])
    assert "mmn-avoid-corticosteroids" not in topics(cards)  # the warning gives way to the critical one
    assert_same_as_evaluate(cards, evaluate(request, tmp_path), weight=70)


@pytest.mark.parametrize("form", ["doseAndRate-object", "stu3-doseQuantity", "unknown-element"])
def test_an_ivig_order_that_fails_r4_validation_is_not_silently_dropped(dev, form):
    request = load("order-select-critical")
    order = request["context"]["draftOrders"]["entry"][0]["resource"]
    quantity = order["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]
    if form == "doseAndRate-object":
        order["dosageInstruction"] = [{"doseAndRate": {"doseQuantity": quantity}}]
    elif form == "stu3-doseQuantity":
        order["dosageInstruction"] = [{"doseQuantity": quantity}]
    else:
        order["note"] = [{"text": "infuse slowly", "authorString": "x", "unknownElement": 1}]
    cards = check_response(dev.call(request).json())["cards"]
    assert cards, "an IVIG order for a patient with a critical risk gave no card at all"
    # the order's dosage is not what the mapping reads: its shape decides nothing, the advice stands
    assert any(c["indicator"] == "critical" for c in cards), [c["summary"] for c in cards]


# -- 4. errors -------------------------------------------------------------------------


def outcome(reply):
    body = reply.json()
    assert body["resourceType"] == "OperationOutcome" and body["issue"][0]["diagnostics"]
    return body["issue"][0]["diagnostics"]


def test_wrong_hook_for_the_service_is_400(dev):
    reply = dev.call(load("patient-view-cidp"), service="ivig-order")
    assert reply.status_code == 400 and "patient-view" in outcome(reply)
    reply = dev.call(load("order-select-mmn"), service="ivig-patient")
    assert reply.status_code == 400


@pytest.mark.parametrize("drop", ["patientId", "userId"])
def test_missing_context_ids_are_400(dev, drop):
    request = load("order-select-mmn")
    del request["context"][drop]
    reply = dev.call(request)
    assert reply.status_code == 400 and f"context.{drop}" in outcome(reply)


@pytest.mark.parametrize(
    "change",
    [
        "no-hookInstance",
        "no-draftOrders",
        "no-selections",
        "auth-without-server",
        "prefetch-not-object",
        "prefetch-not-fhir",
        "body-a-list",
    ],
)
def test_other_malformed_calls_are_400(dev, change):
    request = load("order-select-mmn")
    if change == "no-hookInstance":
        del request["hookInstance"]
    elif change == "no-draftOrders":
        del request["context"]["draftOrders"]
    elif change == "no-selections":
        del request["context"]["selections"]
    elif change == "auth-without-server":
        del request["fhirServer"]
        request["fhirAuthorization"] = {
            "access_token": "t",
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "user/Patient.read",
            "subject": "ivig",
        }
    elif change == "prefetch-not-object":
        request["prefetch"] = ["x"]
    elif change == "prefetch-not-fhir":
        request["prefetch"]["patient"] = "123"
    else:
        request = [request]
    reply = dev.post("/cds-services/ivig-order", request)
    assert reply.status_code == 400, reply.text
    outcome(reply)


def test_unknown_service_is_404(dev):
    reply = dev.call(load("order-select-mmn"), service="no-such-service")
    assert reply.status_code == 404
    reply = dev.post("/cds-services/no-such-service/feedback", {"feedback": []})
    assert reply.status_code == 404


@pytest.mark.parametrize("content", [b"{not json", b"", b"\xff\xfe", b'{"hook": NaN}', b"[" * 100_000])
def test_malformed_json_is_400(dev, content):
    reply = dev.post("/cds-services/ivig-order", content=content)
    assert reply.status_code == 400, reply.text
    outcome(reply)


def test_non_json_content_type_is_415(dev):
    reply = dev.post("/cds-services/ivig-order", load("order-select-mmn"), headers={"Content-Type": "text/plain"})
    assert reply.status_code == 415
    reply = dev.post(
        "/cds-services/ivig-order/feedback",
        {"feedback": []},
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert reply.status_code == 415


def test_fhir_json_content_type_is_read(dev):
    reply = dev.post(
        "/cds-services/ivig-order",
        load("order-select-mmn"),
        headers={"Content-Type": "application/fhir+json; charset=utf-8"},
    )
    assert reply.status_code == 200


@pytest.mark.parametrize("key", ["patient", "conditions"])
def test_required_prefetch_absent_without_fhir_server_is_412(dev, key):
    request = load("order-select-mmn")
    del request["prefetch"][key]
    del request["fhirServer"]
    reply = dev.call(request)
    assert reply.status_code == 412
    assert key in outcome(reply)


def test_optional_prefetch_absent_is_said_in_the_stance_card(dev):
    request = load("order-select-mmn")
    del request["prefetch"]["allergies"]
    cards = check_response(dev.call(request).json())["cards"]
    assert "allergies \\(not sent\\)" in stance_of(cards)["detail"]


def test_null_prefetch_is_no_data_not_412(dev):
    request = load("order-select-mmn")
    request["prefetch"]["conditions"] = None  # the EHR has no Conditions: no diagnosis, no advice
    reply = dev.call(request)
    assert reply.status_code == 200
    check_response(reply.json())


def call_fetching(dev, base: dict, served: dict = None, **fake):
    """`base` called with its Patient and Conditions left for the service to fetch from a FakeFhir
    serving `served` (default: what `base` holds); the reply, and the server (what it saw)."""
    server = FakeFhir(served or base, **fake)
    try:
        return dev.call(fetching(base, server.url)), server
    finally:
        server.close()


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
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/fhir+json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

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


TOKEN = "fhir-access-token-" + uuid.uuid4().hex


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


def test_absent_prefetch_is_fetched_from_the_fhir_server_with_the_access_token(dev):
    base = load("order-select-mmn")
    reply, fake = call_fetching(dev, base)
    assert reply.status_code == 200, reply.text
    cards = check_response(reply.json())["cards"]
    assert stance_of(cards)["source"]["topic"]["code"] == "mmn-general"
    paths = [p for p, _ in fake.seen]
    assert "/fhir/Patient/1288992" in paths
    assert "/fhir/Condition?patient=1288992" in paths
    assert len(paths) == 2  # only the keys not prefetched
    assert all(auth == f"Bearer {TOKEN}" for _, auth in fake.seen)
    assert TOKEN not in dev.stderr()


def test_fhir_server_down_is_412(dev):
    reply = dev.call(fetching(load("order-select-mmn"), f"http://127.0.0.1:{free_port()}/fhir"))
    assert reply.status_code == 412
    assert "could not be reached" in outcome(reply)


@pytest.mark.parametrize("status,raw", [(500, None), (401, None), (200, b"<html>not json</html>")])
def test_fhir_server_failing_is_412(dev, status, raw):
    base = load("order-select-mmn")
    reply, _ = call_fetching(dev, base, status=status, raw=raw)
    assert reply.status_code == 412, reply.text


def test_fhir_server_without_the_patient_is_412(dev):
    base = load("order-select-mmn")
    other = copy.deepcopy(base)
    other["prefetch"]["patient"]["id"] = "someone-else"
    reply, _ = call_fetching(dev, base, served=other)
    assert reply.status_code == 412


def test_invalid_fhir_server_url_is_no_500(dev):
    reply = dev.call(fetching(load("order-select-mmn"), "http://[::1"))
    assert reply.status_code in (400, 412)


def test_huge_integer_dose_is_no_500(dev):
    request = load("order-select-mmn")
    request["context"]["draftOrders"]["entry"][1]["resource"]["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"][
        "value"
    ] = 10**400
    reply = dev.call(request)
    assert reply.status_code != 500


@pytest.mark.parametrize("code", [["g"], {"g": 1}])
def test_a_dose_unit_that_is_not_text_is_no_500(dev, code):
    """Found by the fuzzer (test_service_fuzz): a unit code written as a list was looked up
    in the table of units, and the call was a 500. Now the dose is one this does not read."""
    request = load("order-select-mmn")
    request["context"]["draftOrders"]["entry"][1]["resource"]["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"][
        "code"
    ] = code
    reply = dev.call(request)
    assert reply.status_code == 200, reply.text


def test_a_dose_beside_an_odd_dose_and_rate_gets_its_dose_card(dev):
    """doseAndRate holding no object, and the dose written on the instruction (STU3): the dose
    is read there, and the corrected order is built without reading the odd doseAndRate (it once
    was, and the call was a 500)."""
    request = load("order-select-mmn")
    order = request["context"]["draftOrders"]["entry"][1]["resource"]
    grams = {"value": 35, "unit": "g", "system": "http://unitsofmeasure.org", "code": "g"}
    order["dosageInstruction"] = [{"doseAndRate": ["odd"], "doseQuantity": grams}]
    (dose,) = [c for c in cards_of(dev.call(request)) if c.get("suggestions")]
    corrected = dose["suggestions"][0]["actions"][0]["resource"]
    assert "35 g a day" in dose["summary"]
    assert corrected["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["code"] == "g"


def test_body_over_the_limit_is_413(dev):
    reply = dev.post("/cds-services/ivig-order", content=b" " * 8_000_001)
    assert reply.status_code == 413


# -- 5. feedback -----------------------------------------------------------------------


def test_feedback_round_trip_to_audit_overrides(dev):
    reply = dev.call(load("order-select-critical"))
    cards = check_response(reply.json())["cards"]
    (critical,) = [c for c in cards if c["indicator"] == "critical"]
    (dose,) = [c for c in cards if c.get("suggestions")]
    reason = critical["overrideReasons"][1]
    feedback = {
        "feedback": [
            {
                "card": critical["uuid"],
                "outcome": "overridden",
                "outcomeTimestamp": stamp(-20),
                "overrideReason": {
                    "reason": {"system": reason["system"], "code": reason["code"]},
                    "userComment": "hydrated overnight",
                },
            },
            {
                "card": dose["uuid"],
                "outcome": "accepted",
                "outcomeTimestamp": stamp(-10),
                "acceptedSuggestions": [{"id": dose["suggestions"][0]["uuid"]}],
            },
        ]
    }
    other_validator("feedback").validate(feedback)
    reply = dev.post("/cds-services/ivig-order/feedback", feedback)
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"stored": 2}
    # the reason as a Coding with its display, as an EHR may send it
    feedback = {
        "feedback": [
            {
                "card": critical["uuid"],
                "outcome": "overridden",
                "outcomeTimestamp": stamp(),
                "overrideReason": {"reason": reason},
            }
        ]
    }
    assert dev.post("/cds-services/ivig-order/feedback", feedback).json() == {"stored": 1}

    result = CliRunner().invoke(
        main, ["audit", "overrides", "--db", str(dev.db), "--format", "json"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    rows = {r["rule"]: r for r in json.loads(result.output)}
    renal = rows["renal-failure"]
    assert (
        renal["indicator"] == "critical" and renal["overridden"] >= 1 and renal["accepted"] == 0
    )  # the card, once: at its latest outcome
    assert {"reason": reason["display"], "count": 1} in renal["reasons"]
    assert rows["mmn-dose"]["accepted"] >= 1
    text = CliRunner().invoke(main, ["audit", "overrides", "--db", str(dev.db)], catch_exceptions=False).output
    assert "renal-failure" in text and reason["display"] in text


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"feedback": []},
        {"feedback": "x"},
        [{"card": "c"}],
        {"feedback": [{"card": "c", "outcome": "dismissed", "outcomeTimestamp": "2020-12-11T00:00:00Z"}]},
        {"feedback": [{"card": "c", "outcome": "accepted", "outcomeTimestamp": "2020-12-11T00:00:00Z"}]},
        {"feedback": [{"outcome": "overridden", "outcomeTimestamp": "2020-12-11T00:00:00Z"}]},
        {"feedback": [{"card": "c", "outcome": "overridden"}]},
        {
            "feedback": [
                {"card": "c", "outcome": "overridden", "outcomeTimestamp": "2020-12-11T00:00:00Z", "overrideReason": {}}
            ]
        },
        {
            "feedback": [
                {
                    "card": "c",
                    "outcome": "overridden",
                    "outcomeTimestamp": "2020-12-11T00:00:00Z",
                    "overrideReason": {"reason": {"system": "s"}},
                }
            ]
        },
        {
            "feedback": [
                {
                    "card": "c",
                    "outcome": "accepted",
                    "outcomeTimestamp": "2020-12-11T00:00:00Z",
                    "acceptedSuggestions": ["s"],
                }
            ]
        },
    ],
)
def test_malformed_feedback_is_400(dev, body):
    reply = dev.post("/cds-services/ivig-order/feedback", body)
    assert reply.status_code == 400, reply.text
    outcome(reply)


@pytest.mark.parametrize(
    "item",
    [
        {"acceptedSuggestions": None},
        {"overrideReason": {"reason": {"code": "a", "system": {"not": "a string"}}}},
        {"overrideReason": {"reason": {"code": "a", "display": ["x"]}}},
    ],
)
def test_feedback_with_odd_types_is_no_500(dev, item):
    body = {
        "feedback": [dict({"card": "c", "outcome": "overridden", "outcomeTimestamp": "2020-12-11T00:00:00Z"}, **item)]
    }
    assert dev.post("/cds-services/ivig-order/feedback", body).status_code == 400  # null and non-strings are refused


# -- 6. JWT ------------------------------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


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


def rs384(keys, payload):
    return jwt.encode(payload, keys.rsa, algorithm="RS384", headers={"kid": "ehr-rsa-1", "typ": "JWT"})


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def assert_refused(reply):
    assert reply.status_code == 401, reply.text
    assert reply.content == b""
    assert reply.headers["www-authenticate"] == "Bearer"


def test_es384_token_is_accepted(secure, keys):
    reply = secure.call(load("order-select-mmn"), headers=bearer(es384(keys, claims(secure))))
    assert reply.status_code == 200, reply.text
    check_response(reply.json())


def test_rs384_token_is_accepted(secure, keys):
    reply = secure.call(load("order-select-mmn"), headers=bearer(rs384(keys, claims(secure))))
    assert reply.status_code == 200
    check_response(reply.json())


def test_discovery_and_feedback_need_a_token_for_their_own_url(secure, keys):
    assert_refused(httpx.get(secure.url + "/cds-services", timeout=30))
    token = es384(keys, claims(secure, "/cds-services"))
    reply = httpx.get(secure.url + "/cds-services", headers=bearer(token), timeout=30)
    assert reply.status_code == 200
    other_validator("discovery").validate(reply.json())
    reply = secure.call(load("order-select-mmn"), headers=bearer(es384(keys, claims(secure))))
    body = {"feedback": [{"card": cards_of(reply)[0]["uuid"], "outcome": "overridden", "outcomeTimestamp": stamp()}]}
    # a token for the service's URL is not one for its feedback URL
    assert_refused(secure.post("/cds-services/ivig-order/feedback", body, headers=bearer(es384(keys, claims(secure)))))
    reply = secure.post(
        "/cds-services/ivig-order/feedback",
        body,
        headers=bearer(es384(keys, claims(secure, "/cds-services/ivig-order/feedback"))),
    )
    assert reply.status_code == 200


def test_aud_as_a_one_element_list_is_accepted(secure, keys):
    token = es384(keys, claims(secure, aud=[secure.url + "/cds-services/ivig-order"]))
    assert secure.call(load("order-select-mmn"), headers=bearer(token)).status_code == 200


def hs256_with_public_key(keys, payload):
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "ehr-ec-1"}).encode())
    body = b64(json.dumps(payload).encode())
    signature = hmac.new(keys.ec_public_pem, f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{b64(signature)}"


def unsigned(payload):
    header = b64(json.dumps({"alg": "none", "typ": "JWT", "kid": "ehr-ec-1"}).encode())
    return f"{header}.{b64(json.dumps(payload).encode())}."


REFUSED = {
    "expired": lambda s, k: es384(k, claims(s, exp=int(time.time()) - 600, iat=int(time.time()) - 900)),
    "wrong-aud": lambda s, k: es384(k, claims(s, aud=s.url + "/cds-services/ivig-patient")),
    "aud-other-host": lambda s, k: es384(k, claims(s, aud="https://cds.example.org/cds-services/ivig-order")),
    "alg-none": lambda s, k: unsigned(claims(s)),
    "hs256-public-key": lambda s, k: hs256_with_public_key(k, claims(s)),
    "unknown-issuer": lambda s, k: es384(k, claims(s, iss="https://evil.example.org/")),
    "unknown-kid": lambda s, k: es384(k, claims(s), kid="ehr-ec-2"),
    "jku-not-configured": lambda s, k: es384(k, claims(s), jku="https://evil.example.org/jwks.json"),
    "no-jti": lambda s, k: es384(k, claims(s, jti=None)),
    "no-exp": lambda s, k: es384(k, claims(s, exp=None)),
    "iat-in-future": lambda s, k: es384(k, claims(s, iat=int(time.time()) + 600, exp=int(time.time()) + 900)),
    "lives-a-day": lambda s, k: es384(k, claims(s, exp=int(time.time()) + 86400)),
    "signed-by-another-key": lambda s, k: jwt.encode(
        claims(s), ec.generate_private_key(ec.SECP384R1()), algorithm="ES384", headers={"kid": "ehr-ec-1"}
    ),
    "garbage": lambda s, k: "not.a.jwt",
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_untrusted_tokens_are_401_with_an_empty_body(secure, keys, case):
    token = REFUSED[case](secure, keys)
    reply = secure.call(load("order-select-mmn"), headers=bearer(token))
    assert_refused(reply)
    assert token not in secure.stderr()


def test_missing_or_non_bearer_authorization_is_401(secure, keys):
    assert_refused(secure.call(load("order-select-mmn")))
    token = es384(keys, claims(secure))
    assert_refused(secure.call(load("order-select-mmn"), headers={"Authorization": f"Basic {token}"}))


def test_replayed_jti_is_401_the_second_time(secure, keys):
    token = es384(keys, claims(secure))
    assert secure.call(load("order-select-mmn"), headers=bearer(token)).status_code == 200
    assert_refused(secure.call(load("order-select-mmn"), headers=bearer(token)))
    # the same jti in a new token is a replay too
    jti = jwt.decode(token, options={"verify_signature": False})["jti"]
    assert_refused(secure.call(load("order-select-mmn"), headers=bearer(rs384(keys, claims(secure, jti=jti)))))


def test_a_refused_token_does_not_burn_its_jti(secure, keys):
    payload = claims(secure)
    assert_refused(secure.call(load("order-select-mmn"), headers=bearer(es384(keys, payload, kid="nope"))))
    assert secure.call(load("order-select-mmn"), headers=bearer(es384(keys, payload))).status_code == 200


def test_token_with_a_list_iss_is_401(secure, keys):
    """PyJWT will not encode a list iss, so the token is signed as raw JWS: a client can send one."""
    payload = json.dumps(claims(secure, iss=[ISSUER])).encode()
    token = jwt.api_jws.PyJWS().encode(payload, keys.ec, algorithm="ES384", headers={"kid": "ehr-ec-1", "typ": "JWT"})
    assert_refused(secure.call(load("order-select-mmn"), headers=bearer(token)))


@pytest.mark.parametrize("alg", ["ES384", "RS384"])
def test_token_whose_alg_does_not_fit_its_kid_is_401(secure, keys, alg):
    if alg == "ES384":
        token = es384(keys, claims(secure), kid="ehr-rsa-1")
    else:
        token = jwt.encode(claims(secure), keys.rsa, algorithm="RS384", headers={"kid": "ehr-ec-1", "typ": "JWT"})
    assert_refused(secure.call(load("order-select-mmn"), headers=bearer(token)))


def test_the_log_never_holds_a_token(secure, keys):
    tokens = [es384(keys, claims(secure)), REFUSED["expired"](secure, keys), REFUSED["wrong-aud"](secure, keys)]
    for token in tokens:
        secure.call(load("order-select-mmn"), headers=bearer(token))
    log = secure.stderr()
    assert "refused a call" in log  # the log is written: the check below reads something
    for token in tokens:
        assert token not in log and token.split(".")[2] not in log


# -- 7. CORS -----------------------------------------------------------------------------


def preflight(server, origin):
    return httpx.options(
        server.url + "/cds-services/ivig-order",
        timeout=30,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )


def test_cors_preflight_from_the_sandbox_needs_no_jwt(secure):
    reply = preflight(secure, SANDBOX)
    assert reply.status_code == 200
    assert reply.headers["access-control-allow-origin"] == SANDBOX
    assert "POST" in reply.headers["access-control-allow-methods"]
    assert "authorization" in reply.headers["access-control-allow-headers"].lower()


def test_cors_preflight_from_another_origin_is_not_allowed(secure):
    reply = preflight(secure, "https://evil.example.org")
    assert "access-control-allow-origin" not in reply.headers


def test_cors_on_a_real_call(dev):
    reply = dev.call(load("order-select-mmn"), headers={"Origin": SANDBOX})
    assert reply.headers["access-control-allow-origin"] == SANDBOX
    reply = dev.call(load("order-select-mmn"), headers={"Origin": "https://evil.example.org"})
    assert "access-control-allow-origin" not in reply.headers


# -- 8. refusing to serve insecurely ------------------------------------------------------


def test_insecure_dev_on_a_public_address_is_refused(tmp_path):
    result = CliRunner().invoke(
        main, ["serve", "--insecure-dev", "--host", "0.0.0.0", "--feedback-db", str(tmp_path / "f.sqlite")]
    )
    assert result.exit_code == 2
    assert "loopback" in result.output
    assert not (tmp_path / "f.sqlite").exists()


def test_serve_without_trust_or_insecure_dev_is_refused(tmp_path):
    result = CliRunner().invoke(main, ["serve", "--feedback-db", str(tmp_path / "f.sqlite")])
    assert result.exit_code == 2
    assert "--trust" in result.output


def test_serve_with_a_bad_trust_file_does_not_start(tmp_path):
    trust = tmp_path / "trust.yaml"
    trust.write_text("issuers:\n  - iss: https://ehr.example.org/\n    jwks: missing.json\n")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ivig_advisor.cli",
            "serve",
            "--port",
            str(free_port()),
            "--trust",
            str(trust),
            "--feedback-db",
            str(tmp_path / "f.sqlite"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "missing.json" in proc.stderr


# -- 9. concurrency ------------------------------------------------------------------------


def patient_request(i: int) -> dict:
    """Patient pt-i, MMN, weighing 40 + 3i kg, with an IVIG order of 1 g a day (never the review's dose)."""
    request = load("order-select-mmn")
    pid, kg = f"pt-{i}", 40 + 3 * i
    text = json.dumps(request).replace("1288992", pid)
    request = json.loads(text)
    request["hookInstance"] = str(uuid.uuid4())
    request["prefetch"]["weights"]["entry"][0]["resource"]["valueQuantity"]["value"] = kg
    order = request["context"]["draftOrders"]["entry"][1]["resource"]
    order["id"] = f"ivig-{i}"
    order["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"].update(value=1, unit="g", code="g")
    request["context"]["selections"] = [f"MedicationRequest/ivig-{i}"]
    if i % 2:  # every other patient also has IgA deficiency: one more warning card
        request["prefetch"]["conditions"]["entry"].append(
            {
                "resource": {
                    "resourceType": "Condition",
                    "id": "iga",
                    "subject": {"reference": f"Patient/{pid}"},
                    "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "D80.2"}]},
                }
            }
        )
    return request


def test_concurrent_calls_each_get_their_own_patients_cards(dev):
    def call(i):
        return i, dev.call(patient_request(i), timeout=180)

    with ThreadPoolExecutor(max_workers=20) as pool:
        replies = list(pool.map(call, range(20)))
    for i, reply in replies:
        assert reply.status_code == 200, reply.text
        cards = check_response(reply.json())["cards"]
        kg = 40 + 3 * i
        assert f"Patient/pt\\-{i} birthDate" in stance_of(cards)["detail"]
        assert f"= {kg} kg" in stance_of(cards)["detail"]
        (dose,) = [c for c in cards if c.get("suggestions")]
        resource = dose["suggestions"][0]["actions"][0]["resource"]
        assert resource["id"] == f"ivig-{i}"
        assert resource["subject"]["reference"] == f"Patient/pt-{i}"
        assert resource["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] == round(0.4 * kg, 1)
        assert ("anaphylaxis-iga-antibodies-unknown" in topics(cards)) == bool(i % 2)
