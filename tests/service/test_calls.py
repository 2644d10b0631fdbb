"""The trail of CDS Hooks calls (issue 30, accountability): `ivig serve` keeps a row per call in its
SQLite file (time, issuer, tenant, hook, hookInstance, service, status, latency, cards by
indicator, the prefetch keys read in part, the rule base's hash) and `ivig audit calls` reports it.

Over real HTTP: a run of calls with distinctive markers in every place a patient, a code or a
token can be (good calls, 401, 400, 404, 415, a record read in part, feedback), then the report
through the real command, and the whole file's bytes searched for each marker.
"""

import copy
import csv
import io
import json
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from click.testing import CliRunner
from helpers import (
    CDS,
    ISSUER,
    InThread,
    Keys,
    Server,
    cards_of,
    feedback_item,
    insecure_dev_on_every_address,
    load,
    outside_address,
    signed,
)

from ivig_advisor.cli import main
from ivig_advisor.engine.service.app import Settings
from ivig_advisor.engine.service.cdshooks import Hooks
from ivig_advisor.engine.service.feedback import CALL_COLUMNS, FeedbackStore

# -- what a request holds that no trail may keep ----------------------------------------------------

PATIENT = "zqxpatient4711"
FAMILY, GIVEN = "Zqxfamilyname", "Zqxgivenname"
CODE, DISPLAY = "ZQX-CODE-93", "Zqx condition display"
CONDITION_ID = "zqxcondition"
USER, ENCOUNTER = "Practitioner/zqxuser", "zqxencounter"
ACCESS_TOKEN = "zqx-access-token-0b7e"
NEXT_PAGE = "https://ehr.example.org/fhir/Condition?page=zqxnextpage"
BAD_TOKEN = "zqxbadtoken.zqxbadtoken.zqxbadtoken"
MALFORMED_INSTANCE = "zqx-not-a-uuid"
MARKERS = [PATIENT, FAMILY, GIVEN, CODE, DISPLAY, CONDITION_ID, "zqxuser", ENCOUNTER, ACCESS_TOKEN, "zqxnextpage"]
MARKERS += [BAD_TOKEN, MALFORMED_INSTANCE, "zqx"]  # the last: any of them, cut or not
ORDER, PATIENT_VIEW = "/cds-services/ivig-order-select", "/cds-services/ivig-patient"


def marked(name: str) -> dict:
    """A request of tests/cds with a marker wherever a patient's data can be: the patient's id (in
    the context, the Patient and every reference), a name, a Condition with a code of its own,
    the user, the encounter, and an access token for the FHIR server."""
    text = json.dumps(load(name)).replace("1288992", PATIENT)
    request = json.loads(text)
    request["prefetch"]["patient"]["name"] = [{"family": FAMILY, "given": [GIVEN]}]
    request["prefetch"]["conditions"]["entry"].append(
        {
            "resource": {
                "resourceType": "Condition",
                "id": CONDITION_ID,
                "subject": {"reference": f"Patient/{PATIENT}"},
                "code": {"coding": [{"system": "http://example.org/zqx", "code": CODE, "display": DISPLAY}]},
            }
        }
    )
    request["context"].update(userId=USER, encounterId=ENCOUNTER)
    request["fhirServer"] = "https://ehr.example.org/fhir"
    request["fhirAuthorization"] = {
        "access_token": ACCESS_TOKEN,
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "user/Patient.read",
        "subject": "ivig-advisor",
    }
    return request


def in_part(request: dict) -> dict:
    """`request` with its Conditions sent as the first page of a search, whose next page is not
    read (its issuer's trust entry lists no FHIR server, so the token goes nowhere)."""
    request = copy.deepcopy(request)
    request["prefetch"]["conditions"]["link"] = [{"relation": "next", "url": NEXT_PAGE}]
    return request


def audit_calls(db, *args, code=0):
    """`ivig audit calls --db DB ARGS` through the real command; its result."""
    result = CliRunner().invoke(main, ["audit", "calls", "--db", str(db), *map(str, args)], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


def report(db, *args) -> dict:
    return json.loads(audit_calls(db, "--format", "json", *args).stdout)


def file_bytes(db) -> bytes:
    """The SQLite file and whatever SQLite keeps beside it (its write-ahead log)."""
    return b"".join(p.read_bytes() for p in sorted(db.parent.glob(db.name + "*")))


# -- a run of calls ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A server trusting one issuer, called once for each kind of answer; stopped once the calls are
    made, so that every row is written (its keeper writes what is queued as it stops). What the
    report said while the server still ran is kept for the test of reading beside a writer."""
    tmp = tmp_path_factory.mktemp("serve-calls")
    keys = Keys(tmp)
    server = Server(tmp, "--trust", str(keys.trust))
    server.keys = keys
    sent = []  # (status the caller got, service, cards of a 200, the JWT sent or None)

    def call(path, body=None, token=True, **kw):
        headers = dict(signed(server, path, tenant="t-1")) if token else {}
        headers.update(kw.pop("headers", {}))
        reply = server.post(path, body, headers=headers, **kw)
        cards = reply.json()["cards"] if reply.status_code == 200 and "cards" in reply.text else []
        sent.append((reply.status_code, path.split("/")[2], cards, headers.get("Authorization")))
        return reply

    try:
        good = call(ORDER, marked("order-select-mmn"))
        card = cards_of(good)[0]
        cards_of(call(PATIENT_VIEW, in_part(marked("patient-view-mmn-prednisone-renal"))))
        bad_instance = dict(marked("order-select-mmn"), hookInstance=MALFORMED_INSTANCE)
        assert call(ORDER, bad_instance).status_code == 200
        bad_token = {"Authorization": "Bearer " + BAD_TOKEN}
        assert call(ORDER, marked("order-select-mmn"), token=False, headers=bad_token).status_code == 401
        assert call(ORDER, marked("patient-view-mmn-prednisone-renal")).status_code == 400  # the wrong hook
        assert call(ORDER, content=json.dumps(marked("order-select-mmn"))[:-40]).status_code == 400  # cut short
        assert call("/cds-services/ivig-nothing", marked("order-select-mmn")).status_code == 404
        plain = {"Content-Type": "text/plain"}
        assert call(ORDER, marked("order-select-mmn"), headers=plain).status_code == 415
        feedback = {"feedback": [feedback_item(card["uuid"])]}
        assert call(ORDER + "/feedback", feedback).json() == {"stored": 1}
        # a feedback writes the calls queued before it first: read now, beside the running server
        while_running = report(server.db)
    finally:
        server.stop()
    return server, sent, while_running


# -- the report ----------------------------------------------------------------------------------------


def test_every_call_is_reported_with_the_status_its_caller_got(run):
    server, sent, _ = run
    rows = report(server.db)["calls"]
    assert [r["status"] for r in rows] == [status for status, *_ in sent]
    assert [r["service"] for r in rows] == [service for _, service, *_ in sent]
    assert [r["kind"] for r in rows] == ["hook"] * (len(sent) - 1) + ["feedback"]
    assert rows[-1]["stored"] == 1 and all(r["stored"] is None for r in rows[:-1])
    # the caller of a verified token; no one for the token refused
    assert [(r["issuer"], r["tenant"]) for r in rows] == [
        (None, None) if status == 401 else (ISSUER, "t-1") for status, *_ in sent
    ]
    assert all(r["latency_ms"] >= 0 and r["rules_hash"].startswith("sha256:") for r in rows)


def test_the_cards_of_each_call_are_counted_by_indicator(run):
    server, sent, _ = run
    rows = report(server.db)["calls"]
    for row, (_status, _service, cards, _token) in zip(rows, sent):
        assert row["cards"] == len(cards), row
        for indicator in ("critical", "warning", "info"):
            assert row[indicator] == sum(c["indicator"] == indicator for c in cards), (row, indicator)
    assert rows[0]["cards"] > 0 and rows[1]["critical"] > 0  # the test can fail
    summary = report(server.db)["summary"]
    assert summary["cards"]["total"] == sum(len(cards) for _, _, cards, _ in sent)


def test_hook_and_hook_instance_are_kept_only_as_the_spec_writes_them(run):
    server, _, _ = run
    rows = report(server.db)["calls"]
    assert rows[0]["hook"] == "order-select" and rows[1]["hook"] == "patient-view"
    assert rows[0]["hook_instance"] == load("order-select-mmn")["hookInstance"]
    assert rows[2]["hook_instance"] == "malformed"  # a hookInstance that is no UUID: never its text
    assert rows[4]["hook"] == "patient-view"  # called on the order service: 400, the hook still known
    assert rows[5]["hook"] is None and rows[5]["hook_instance"] is None  # a body cut short: nothing read


def test_a_record_read_in_part_is_reported_with_its_prefetch_keys(run):
    server, _, _ = run
    got = report(server.db)
    assert [r["partial"] for r in got["calls"]][:3] == [[], ["conditions"], []]
    assert got["summary"]["read_in_part"] == {"calls": 1, "keys": {"conditions": 1}}


def test_the_text_report_summarises_then_lists_the_latest_calls(run):
    server, sent, _ = run
    lines = audit_calls(server.db).stdout.splitlines()
    assert lines[0].startswith(f"{len(sent)} calls, ")
    statuses = {}
    for status, *_ in sent:
        statuses[status] = statuses.get(status, 0) + 1
    for status, count in statuses.items():
        assert any(line.split() == [str(status), str(count)] for line in lines), (status, count, lines)
    assert any(line.startswith("latency (ms): p50 ") and " p99 " in line for line in lines), lines
    assert any(line.startswith("read in part: 1 call") for line in lines), lines
    start = lines.index(next(line for line in lines if line.startswith("the last ")))
    listed = lines[start + 2 :]
    assert len(listed) == len(sent)
    assert [line.split()[1] for line in listed] == [str(status) for status, *_ in sent]


def test_the_report_can_be_read_while_the_server_writes(run):
    """A feedback writes what its server queued before it: every call before it is in the file."""
    server, sent, while_running = run
    assert [r["status"] for r in while_running["calls"]] == [status for status, *_ in sent[:-1]]


def test_no_patient_data_and_no_token_is_in_the_file_or_the_report(run):
    server, sent, _ = run
    tokens = [header.split(" ", 1)[1] for *_, header in sent if header]
    signatures = [token.rsplit(".", 1)[1] for token in tokens]  # the part no other token shares
    data = file_bytes(server.db)
    outputs = [audit_calls(server.db, "--format", fmt).stdout for fmt in ("text", "json", "csv")]
    for marker in MARKERS + tokens + signatures:
        assert marker.encode() not in data, marker
        for output in outputs:
            assert marker not in output, marker
    # the search can fail: what the trail keeps is in the file and in each output
    kept = load("order-select-mmn")["hookInstance"]
    assert kept.encode() in data and all(kept in output for output in outputs)


def test_the_csv_is_one_row_a_call(run):
    server, sent, _ = run
    rows = list(csv.DictReader(io.StringIO(audit_calls(server.db, "--format", "csv").stdout)))
    assert [int(r["status"]) for r in rows] == [status for status, *_ in sent]
    assert rows[1]["partial"] == "conditions"


def test_filters_choose_the_calls_and_the_summary_counts_only_them(run):
    server, sent, _ = run
    rows = report(server.db)["calls"]
    assert [r["status"] for r in report(server.db, "--status", 401)["calls"]] == [401]
    assert report(server.db, "--issuer", ISSUER)["summary"]["calls"] == len(sent) - 1
    assert report(server.db, "--issuer", "https://nobody.example.org/")["summary"]["calls"] == 0
    assert report(server.db, "--since", "2999-01-01")["summary"]["calls"] == 0
    assert report(server.db, "--until", "2000-01-01T00:00:00Z")["summary"]["calls"] == 0
    assert report(server.db, "--since", rows[3]["time"])["summary"]["calls"] == len(sent) - 3
    assert report(server.db, "--until", rows[-1]["time"][:10])["summary"]["calls"] == len(sent)  # the whole day
    limited = report(server.db, "--limit", 2)
    assert limited["calls"] == rows[-2:] and limited["summary"]["calls"] == len(sent)
    refused = audit_calls(server.db, "--since", "yesterday", code=2)
    assert "--since" in refused.output and "yesterday" in refused.output


# -- what a caller names, escaped ------------------------------------------------------------------------

HOSTILE_ISSUER = "=cmd|' /C calc'!A0"  # a control character in an issuer is refused at start (test_app_attack)
HOSTILE_TENANT = '=HYPERLINK("http://evil.example")\x1b[31m\nFORGED 200'
HOSTILE_SERVICE = "=cmd\x1b[2J"


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """A server whose trusted issuer and a caller's tenant and service id are made to harm a
    terminal and a spreadsheet; stopped once called."""
    tmp = tmp_path_factory.mktemp("serve-hostile")
    keys = Keys(tmp)
    keys.trust.write_text("issuers:\n  - iss: \"=cmd|' /C calc'!A0\"\n    jwks: ehr-jwks.json\n")
    server = Server(tmp, "--trust", str(keys.trust))
    server.keys = keys
    try:
        mine = signed(server, ORDER, iss=HOSTILE_ISSUER, tenant=HOSTILE_TENANT)
        assert server.post(ORDER, load("order-select-mmn"), headers=mine).status_code == 200
        path = "/cds-services/" + HOSTILE_SERVICE  # as the server reads it; sent percent-encoded
        sent = path.replace("\x1b", "%1B")
        reply = server.post(sent, load("order-select-mmn"), headers=signed(server, path, iss=HOSTILE_ISSUER))
        assert reply.status_code == 404, reply.text
    finally:
        server.stop()
    return server


def test_what_a_caller_names_is_escaped_in_the_text_report(hostile):
    text = audit_calls(hostile.db).stdout
    assert "\x1b" not in text
    assert not any(line.startswith("FORGED") for line in text.splitlines()), text
    assert "\\e[2J" in text and "\\e[31m\\nFORGED 200" in text  # shown, escaped
    raw = audit_calls(hostile.db, "--format", "json").stdout
    assert "\x1b" not in raw and json.loads(raw)["calls"][0]["tenant"] == HOSTILE_TENANT


def test_what_a_caller_names_cannot_start_a_formula_in_the_csv(hostile):
    output = audit_calls(hostile.db, "--format", "csv").stdout
    assert "\x1b" not in output and len(output.splitlines()) == 3  # a header and a line a call
    rows = list(csv.DictReader(io.StringIO(output)))
    cells = [cell for row in rows for cell in row.values()]
    assert not [cell for cell in cells if cell and cell[0] in "=+-@"], cells
    assert rows[0]["issuer"].startswith("'=cmd") and rows[0]["tenant"].startswith("'=HYPERLINK")
    assert rows[1]["service"].startswith("'=cmd")


# -- the file ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["calls", "overrides"])
def test_an_audit_of_a_missing_file_is_refused_and_creates_nothing(tmp_path, command):
    missing = tmp_path / "none.sqlite"
    result = CliRunner().invoke(main, ["audit", command, "--db", str(missing)])
    assert result.exit_code == 2, result.output
    assert str(missing) in result.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["calls", "overrides"])
@pytest.mark.parametrize("content", [b"", b"hello, no database\n"], ids=["empty", "text"])
def test_an_audit_of_a_file_that_is_no_feedback_file_says_so_and_leaves_it_as_it_was(tmp_path, command, content):
    """`audit overrides` wrote its tables into an empty file, and ended a text file in an internal error."""
    path = tmp_path / "f.sqlite"
    path.write_bytes(content)
    result = CliRunner().invoke(main, ["audit", command, "--db", str(path)])
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: ") and str(path) in line, line
    assert path.read_bytes() == content and list(tmp_path.iterdir()) == [path]


def test_a_feedback_file_from_before_calls_were_kept_is_said_to_hold_none(tmp_path):
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.execute("create table card (uuid text primary key)")
    db.commit()
    db.close()
    before = path.read_bytes()
    result = CliRunner().invoke(main, ["audit", "calls", "--db", str(path)])
    assert result.exit_code == 2, result.output
    assert str(path) in result.stderr and "no trail of calls" in result.stderr
    assert path.read_bytes() == before


def test_two_servers_writing_one_file_lose_no_row(tmp_path):
    """Two `ivig serve` on one file, each called by several clients at once."""
    servers = [Server(tmp_path, "--insecure-dev") for _ in range(2)]
    calls = 40
    try:
        with ThreadPoolExecutor(8) as pool:
            replies = list(
                pool.map(
                    lambda i: servers[i % 2].call(load("order-select-mmn"), service="ivig-order-select"), range(calls)
                )
            )
        assert all(reply.status_code == 200 for reply in replies)
    finally:
        for server in servers:
            server.stop()
    got = report(servers[0].db)
    assert got["summary"]["calls"] == calls
    instances = [r["hook_instance"] for r in got["calls"]]
    assert len(instances) == calls and all(r["status"] == 200 for r in got["calls"])


# -- in this process: what no call from outside can cause ------------------------------------------------


def test_a_call_the_service_fails_on_is_kept_as_the_500_its_caller_got(tmp_path, monkeypatch):
    """A failure no handler answers is answered outside the app's own middleware: the trail notes it too."""

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(Hooks, "call", broken)
    db = tmp_path / "feedback.sqlite"
    with InThread(Settings(insecure_dev=True, feedback_db=str(db))) as served:
        reply = httpx.post(served.url + ORDER, json=load("order-select-mmn"), timeout=120)
        assert reply.status_code == 500, reply.text
    (row,) = report(db)["calls"]
    assert row["status"] == 500 and row["hook"] == "order-select" and row["cards"] == 0


def test_calls_older_than_the_days_kept_are_forgotten(tmp_path):
    db = tmp_path / "feedback.sqlite"
    old = dict.fromkeys(CALL_COLUMNS)
    old.update(time=time.time() - 3 * 86400, kind="hook", service="ivig-order-select", status=200)
    old.update(cards=0, critical=0, warning=0, info=0)
    FeedbackStore(db).keep_many([], [old])
    assert report(db)["summary"]["calls"] == 1
    with InThread(Settings(insecure_dev=True, feedback_db=str(db), keep_calls_days=2)) as served:
        reply = httpx.post(served.url + ORDER, json=load("order-select-mmn"), timeout=120)
        assert reply.status_code == 200, reply.text
    (row,) = report(db)["calls"]
    assert row["hook_instance"] == load("order-select-mmn")["hookInstance"]


def test_what_is_queued_when_the_process_ends_without_the_app_s_shutdown_is_written(tmp_path):
    """An app whose lifespan never ends (embedded, or under a test client, as docs/integrator.md
    shows it) lost the rows its keeper had not written yet when the process ended."""
    db = tmp_path / "feedback.sqlite"
    script = (
        "import json, sys\n"
        "from starlette.testclient import TestClient\n"
        "from ivig_advisor.engine.service.app import Settings, create_app\n"
        "app = create_app(Settings(insecure_dev=True, feedback_db=sys.argv[1]))\n"
        "client = TestClient(app, base_url='http://127.0.0.1:8080', client=('127.0.0.1', 50000))\n"
        "call = json.load(open(sys.argv[2]))\n"
        "assert client.post('/cds-services/ivig-order-select', json=call).status_code == 200\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(db), str(CDS / "order-select-mmn.json")], capture_output=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    (row,) = report(db)["calls"]
    assert row["status"] == 200 and row["cards"] > 0


def test_a_call_insecure_dev_refuses_beyond_loopback_is_kept_with_its_403(tmp_path):
    """The loopback guard answers before any route: the trail, outside it, notes its refusal too."""
    outside = outside_address()
    if outside is None:
        pytest.skip("this machine has no address but loopback")
    db = tmp_path / "f.sqlite"
    with insecure_dev_on_every_address(db) as port:
        reply = httpx.post(f"http://{outside}:{port}{ORDER}", json=load("order-select-mmn"), timeout=30)
        assert reply.status_code == 403, reply.text
    (row,) = report(db)["calls"]
    assert row["status"] == 403 and row["service"] == "ivig-order-select" and row["hook"] is None


def test_serve_keep_calls_days_reaches_the_workers(tmp_path):
    """`ivig serve --keep-calls-days 2`: the option, through the environment, reaches each worker's keeper."""
    old = dict.fromkeys(CALL_COLUMNS)
    old.update(time=time.time() - 3 * 86400, kind="hook", service="ivig-order-select", status=200)
    old.update(cards=0, critical=0, warning=0, info=0)
    FeedbackStore(tmp_path / "feedback.sqlite").keep_many([], [old])
    server = Server(tmp_path, "--insecure-dev", "--keep-calls-days", "2", "--workers", "2")
    try:
        assert server.call(load("order-select-mmn")).status_code == 200
    finally:
        server.stop()
    (row,) = report(tmp_path / "feedback.sqlite")["calls"]
    assert row["hook_instance"] == load("order-select-mmn")["hookInstance"]
