"""`ivig serve` at its edges, through real HTTP (issue 25, "No wrong answer at the edges").

A client that stalls or goes away, more connections than the service serves, a
JWK Set over plain http, feedback for a card the service never issued, a key given
twice, and prefetch that is not what its template asks for. The servers are real
`ivig serve` processes (tests/service/test_app.py's Server); the timeouts are set short
here, so that nothing waits for the defaults.
"""

import copy
import json
import socket
import sqlite3
import subprocess
import time
import uuid

import pytest
from helpers import (
    CDS,
    ISSUER,
    Keys,
    Server,
    call_fetching,
    cards_of,
    feedback_item,
    free_port,
    ivig,
    load,
    on_ivig,
    outcome,
    said,
    signed,
    stance_of,
    stored_feedback,
)

BOUND = 30  # seconds a socket waits for the server before the test gives up: a bound, never a speed
STALLED = (
    b"POST /cds-services/ivig-order HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    b"Content-Length: 100000\r\n\r\n"
)


@pytest.fixture(scope="module")
def brisk(tmp_path_factory):
    """A server that waits 1 s for a request's headers and 1 s for its body."""
    server = Server(
        tmp_path_factory.mktemp("serve-brisk"), "--insecure-dev", "--header-timeout", "1", "--body-timeout", "1"
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def crowded(tmp_path_factory):
    """A server that serves two open connections at a time (and waits long for headers, so that
    the idle connections the test holds open stay open)."""
    server = Server(
        tmp_path_factory.mktemp("serve-crowded"), "--insecure-dev", "--max-connections", "2", "--header-timeout", "60"
    )
    yield server
    server.stop()


def connect(server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=BOUND)


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection; socket.timeout when it holds it."""
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def new_log(server, before: int, until) -> str:
    """What the server logged after `before` characters, once `until(text)` holds (or BOUND seconds pass)."""
    deadline = time.monotonic() + BOUND
    while True:
        text = server.stderr()[before:]
        if until(text) or time.monotonic() > deadline:
            time.sleep(0.5)  # a traceback that follows the first line is written too
            return server.stderr()[before:]
        time.sleep(0.1)


# -- a stalled client, a client gone, too many connections ---------------------------------


def test_a_stalled_body_is_answered_408_and_the_connection_closed(brisk):
    """Headers and 8 bytes of a 100,000-byte body, then nothing: the connection was held for ever."""
    with connect(brisk) as sock:
        sock.sendall(STALLED + b'{"hook":')
        reply = read_until_closed(sock)
    assert reply.startswith(b"HTTP/1.1 408 "), reply[:200]
    head, _, body = reply.partition(b"\r\n\r\n")
    assert b"connection: close" in head.lower()
    assert "body" in json.loads(body)["issue"][0]["diagnostics"]
    assert "Traceback" not in brisk.stderr()


@pytest.mark.parametrize(
    "sent", ["nothing", "half a request line", "headers without their end", "half a request after an answer"]
)
def test_stalled_headers_are_cut_off(brisk, sent):
    with connect(brisk) as sock:
        if sent == "half a request after an answer":  # a kept-alive connection: the next request stalls
            sock.sendall(b"GET /cds-services HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            head = b""
            while b"\r\n\r\n" not in head:
                head += sock.recv(65536)
            length = int(
                next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
            )
            rest = len(head.partition(b"\r\n\r\n")[2])
            while rest < length:
                rest += len(sock.recv(65536))
            sock.sendall(STALLED[:30])
        elif sent == "half a request line":
            sock.sendall(STALLED[:30])
        elif sent == "headers without their end":
            sock.sendall(STALLED[:-2])
        assert read_until_closed(sock) == b""  # closed, with nothing to say to a client that said nothing whole


def test_a_client_gone_mid_body_is_one_line_in_the_log(brisk):
    before = len(brisk.stderr())
    sock = connect(brisk)
    sock.sendall(STALLED + b'{"hook":')
    time.sleep(0.2)  # the body's first bytes are read before the client goes
    sock.close()
    text = new_log(brisk, before, lambda t: "went away" in t or "Traceback" in t or "ClientDisconnect" in t)
    assert "went away" in text, text
    assert "Traceback" not in text and "internal error" not in text, text
    assert len(text.strip().splitlines()) == 1, text


def test_open_connections_beyond_the_limit_are_503(crowded):
    request = load("order-select-mmn")
    with connect(crowded):
        assert crowded.call(request).status_code == 200  # one held open, and this call's own: two
        with connect(crowded):
            reply = crowded.call(request)
            assert reply.status_code == 503, reply.text
    # the held connections closed: served again once the server has seen them go
    deadline = time.monotonic() + BOUND
    while crowded.call(request).status_code != 200:
        assert time.monotonic() < deadline, "still 503 with no connection held"
        time.sleep(0.2)


# -- trust -------------------------------------------------------------------------------


def test_a_jwk_set_over_plain_http_is_refused_at_start(tmp_path):
    trust = tmp_path / "trust.yaml"
    trust.write_text(f"issuers:\n  - iss: {ISSUER}\n    jwks: http://ehr.example.org/jwks.json\n")
    try:
        proc = ivig(
            "serve", "--port", free_port(), "--trust", trust, "--feedback-db", tmp_path / "f.sqlite", timeout=60
        )
    except subprocess.TimeoutExpired:
        pytest.fail("ivig serve started with a JWK Set fetched over plain http")
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert str(trust) in line and ISSUER in line and "https" in line, line
    assert not (tmp_path / "f.sqlite").exists()


def test_a_path_is_logged_with_its_control_characters_escaped(two_issuers):
    """A refused call's path is logged: uvicorn decodes %1B into the escape character itself."""
    before = len(two_issuers.stderr())
    reply = two_issuers.post("/cds-services/%1B%5B2J%1B%5BHforged", load("order-select-mmn"))
    assert reply.status_code == 401
    text = new_log(two_issuers, before, lambda t: "refused a call" in t)
    assert "\\e[2J\\e[Hforged" in text, text
    assert "\x1b" not in text


# -- feedback ------------------------------------------------------------------------------


def test_feedback_for_a_card_never_issued_is_404_and_not_stored(dev):
    made_up = "x" * 50_000
    reply = dev.post("/cds-services/ivig-order/feedback", {"feedback": [feedback_item(made_up)]})
    assert reply.status_code == 404, reply.text
    assert made_up not in reply.text
    # one card issued and one made up: nothing of the body is stored
    (card, *_) = cards_of(dev.call(load("order-select-mmn")))
    reply = dev.post(
        "/cds-services/ivig-order/feedback",
        {"feedback": [feedback_item(card["uuid"]), feedback_item(str(uuid.uuid4()))]},
    )
    assert reply.status_code == 404, reply.text
    assert "feedback[1]" in outcome(reply)
    assert card["uuid"] not in stored_feedback(dev) and made_up not in stored_feedback(dev)
    # the same card on its own is stored: the test can fail
    assert dev.post("/cds-services/ivig-order/feedback", {"feedback": [feedback_item(card["uuid"])]}).json() == {
        "stored": 1
    }


def test_feedback_to_another_service_than_issued_the_card_is_404(dev):
    (card, *_) = cards_of(dev.call(load("order-select-mmn")))
    reply = dev.post("/cds-services/ivig-patient/feedback", {"feedback": [feedback_item(card["uuid"])]})
    assert reply.status_code == 404, reply.text


@pytest.mark.parametrize("stamp", ["not a date", "2026-13-01T10:00:00Z", "2026-11-26", "2026-11-26T10:05:31"])
def test_an_outcome_timestamp_that_is_no_utc_date_and_time_is_400(dev, stamp):
    (card, *_) = cards_of(dev.call(load("order-select-mmn")))
    reply = dev.post(
        "/cds-services/ivig-order/feedback", {"feedback": [feedback_item(card["uuid"], outcomeTimestamp=stamp)]}
    )
    assert reply.status_code == 400, reply.text
    assert "outcomeTimestamp" in outcome(reply)


OTHER_ISSUER = "https://other-ehr.example.org/"


@pytest.fixture(scope="module")
def two_issuers(tmp_path_factory):
    """A server that trusts two issuers (the same keys, for brevity)."""
    tmp = tmp_path_factory.mktemp("serve-two-issuers")
    keys = Keys(tmp)
    keys.trust.write_text(
        f"issuers:\n  - iss: {ISSUER}\n    jwks: ehr-jwks.json\n  - iss: {OTHER_ISSUER}\n    jwks: ehr-jwks.json\n"
    )
    server = Server(tmp, "--trust", str(keys.trust))
    server.keys = keys
    yield server
    server.stop()


@pytest.mark.parametrize("caller", ["another issuer", "another tenant", "no tenant"])
def test_feedback_from_another_caller_than_the_card_was_issued_to_is_404(two_issuers, caller):
    server, path = two_issuers, "/cds-services/ivig-order/feedback"
    reply = server.call(load("order-select-mmn"), headers=signed(server, "/cds-services/ivig-order", tenant="t-1"))
    (card, *_) = cards_of(reply)
    body = {"feedback": [feedback_item(card["uuid"])]}
    change = {
        "another issuer": {"iss": OTHER_ISSUER, "tenant": "t-1"},
        "another tenant": {"tenant": "t-2"},
        "no tenant": {"tenant": None},
    }[caller]
    reply = server.post(path, body, headers=signed(server, path, **change))
    assert reply.status_code == 404, reply.text
    # the caller it was issued to may give feedback on it
    assert server.post(path, body, headers=signed(server, path, tenant="t-1")).json() == {"stored": 1}


# -- the call's own body ---------------------------------------------------------------------


@pytest.mark.parametrize("where", ["hook", "context.patientId"])
def test_a_key_given_twice_is_400(dev, where):
    text = json.dumps(load("order-select-mmn"))
    if where == "hook":
        text = text[:-1] + ', "hook": "order-sign"}'
    else:
        text = text.replace('"patientId": "1288992"', '"patientId": "1288992", "patientId": "someone-else"')
        assert text.count('"patientId"') == 2
    reply = dev.post("/cds-services/ivig-order", content=text)
    assert reply.status_code == 400, reply.text
    assert repr(where.split(".")[-1]) in outcome(reply)


def patient_in_conditions(request):
    request["prefetch"]["conditions"] = copy.deepcopy(request["prefetch"]["patient"])


def patient_id_a_list(request):
    request["prefetch"]["patient"]["id"] = [request["prefetch"]["patient"]["id"]]


def another_patient(request):
    request["prefetch"]["patient"]["id"] = "someone-else"


def patient_in_a_bundle(request):
    request["prefetch"]["patient"] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": request["prefetch"]["patient"]}],
    }


def an_observation_among_the_conditions(request):
    request["prefetch"]["conditions"]["entry"].append(copy.deepcopy(request["prefetch"]["weights"]["entry"][0]))


def a_weight_not_in_a_bundle(request):
    request["prefetch"]["weights"] = request["prefetch"]["weights"]["entry"][0]["resource"]


def context_patient_id_a_list(request):
    request["context"]["patientId"] = [request["context"]["patientId"]]


WRONG_PREFETCH = {
    patient_in_conditions: "conditions",
    patient_id_a_list: "patient",
    another_patient: "patient",
    patient_in_a_bundle: "patient",
    an_observation_among_the_conditions: "conditions",
    a_weight_not_in_a_bundle: "weights",
    context_patient_id_a_list: "context.patientId",
}


@pytest.mark.parametrize("name", ["order-select-mmn", "patient-view-cidp"])
@pytest.mark.parametrize("change", list(WRONG_PREFETCH), ids=lambda f: f.__name__)
def test_prefetch_that_is_not_what_its_template_asks_for_is_400_naming_the_key(dev, name, change):
    request = load(name)
    change(request)
    reply = dev.call(request)
    assert reply.status_code == 400, reply.text
    said = outcome(reply)
    key = WRONG_PREFETCH[change]
    assert (f"prefetch '{key}'" if "." not in key else key) in said, said


def test_a_fhir_server_answering_another_type_than_asked_is_412(dev):
    base = load("order-select-mmn")
    patient_in_conditions(base)  # the fake server answers Condition?patient= with what the request holds
    reply, _ = call_fetching(dev, base)
    assert reply.status_code == 412, reply.text
    assert "conditions" in outcome(reply) or "Condition" in outcome(reply)


# -- a chart with no disease the review covers ---------------------------------------------------


def test_patient_view_with_no_covered_disease_but_on_ivig_gets_the_safety_cards_and_no_stance(dev):
    """Safety before efficacy: the review has nothing to say on IVIG for this disease, so there
    is no stance card, but the patient receives IVIG, and every adverse-event warning that applies
    (an elderly diabetic: thrombosis, kidney disease) reaches the chart."""
    cards = cards_of(dev.call(on_ivig(load("patient-view-uncovered"))))
    assert {"thrombosis", "skin-reactions"} <= said(cards), cards
    # the cards about this patient, and at most one info card: the general precautions
    quiet = [c for c in cards if c["indicator"] == "info"]
    assert [c["summary"] for c in quiet] in ([], ["General precautions for any IVIG infusion"])
    assert "out-of-scope" not in said(cards)
    # without IVIG in the record, the same chart gets no card: the test can fail
    assert cards_of(dev.call(load("patient-view-uncovered"))) == []


def test_an_ivig_order_with_no_covered_disease_gets_the_stance_and_every_safety_card(dev):
    cards = cards_of(dev.call(load("order-select-uncovered")))
    assert stance_of(cards)["source"]["topic"]["code"] == "out-of-scope"
    assert {"thrombosis", "renal-disease-without-known-depletion", "skin-reactions"} <= said(cards)


def test_a_feedback_file_from_before_cards_had_their_caller_is_carried_on(tmp_path):
    """A file written by an earlier `ivig serve` (its card table without issuer and tenant) gets
    the columns when the service opens it: its cards are kept, and feedback on them is taken."""
    db = sqlite3.connect(tmp_path / "feedback.sqlite")
    db.executescript("""
        create table card (uuid text primary key, service text not null, hook text not null, rule text,
            indicator text not null, summary text not null, suggestions text not null, created real not null);
        insert into card values ('old-card', 'ivig-order', 'order-select', 'thrombosis', 'warning', 's', '[]', 0);""")
    db.close()
    server = Server(tmp_path, "--insecure-dev")
    try:
        (card, *_) = cards_of(server.call(load("order-select-mmn")))
        reply = server.post("/cds-services/ivig-order/feedback", {"feedback": [feedback_item(card["uuid"])]})
        assert reply.status_code == 200, reply.text
        assert "Traceback" not in server.stderr() and "not kept" not in server.stderr()
    finally:
        server.stop()
    db = sqlite3.connect(tmp_path / "feedback.sqlite")
    assert db.execute("select count(*) from card where uuid = 'old-card'").fetchone() == (1,)
    db.close()


@pytest.mark.parametrize("query", ["Conditon?patient={{context.patientId}}", "{{context.patientId}}", "Patient"])
def test_a_prefetch_query_that_names_no_read_or_search_of_a_resource_type_is_refused_on_load(tmp_path, query):
    """What a prefetch value must be is read off its query, so a query it cannot be read off
    (a misspelt type, no type) is an error of the services file, naming its line."""
    from ivig_advisor.engine.base.errors import CdsServicesInvalid
    from ivig_advisor.engine.service.cdshooks import CdsServices

    lines = (CDS.parent.parent / "facts" / "cds-services.yaml").read_text(encoding="utf-8").splitlines()
    line = next(n for n, text in enumerate(lines, 1) if text.startswith("  conditions:"))
    lines[line - 1] = f"  conditions: {{query: {json.dumps(query)}, required: true}}"
    services = tmp_path / "cds-services.yaml"
    services.write_text("\n".join(lines) + "\n")
    with pytest.raises(CdsServicesInvalid) as caught:
        CdsServices.load(services)
    assert f"{services}:{line}: [conditions] prefetch conditions: the query" in str(caught.value)
