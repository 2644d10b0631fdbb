"""A record read in part must not look complete (issue 30): a prefetched search sent as a first
page with a `next` link is read whole from the call's FHIR server, with its token and nowhere
else, or the cards say it was read in part; over real HTTP, against a FHIR server on loopback."""

import copy
import http.server
import threading

import httpx
import pytest
from helpers import TOKEN, InThread, check_response, load, send_fhir

from ivig_advisor.engine.service.app import Settings
from ivig_advisor.engine.service.paging import MAX_PAGES, on_server

READ_IN_PART = "Record read in part"


class PagedFhir:
    """A FHIR server in a thread serving `pages` (path below /fhir/ -> body); what it was asked, with
    which Authorization header, is in `seen`; the clients' (host, port) it was asked from, one for
    each connection, in `connections`."""

    def __init__(self, pages=None, endless=False):
        self.seen, self.pages, self.connections = [], pages or {}, set()
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # a connection serves the next page too, if the client keeps it

            def do_GET(self):
                fake.seen.append((self.path, self.headers.get("Authorization")))
                fake.connections.add(self.client_address)
                path = self.path.split("/fhir/", 1)[-1]
                if endless:  # every page has a next one
                    n = int(path.rsplit("/", 1)[-1]) if path.startswith("page/") else 0
                    body = searchset([], f"{fake.url}/page/{n + 1}")
                elif path in fake.pages:
                    body = fake.pages[path]
                else:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                send_fhir(self, body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/fhir"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def fhir():
    server = PagedFhir()
    yield server
    server.close()


def searchset(entries, next_url=None) -> dict:
    bundle = {"resourceType": "Bundle", "type": "searchset", "entry": entries}
    if next_url:
        bundle["link"] = [{"relation": "self", "url": "x"}, {"relation": "next", "url": next_url}]
    return bundle


def condition_ids(request) -> list:
    return [e["resource"]["id"] for e in request["prefetch"]["conditions"]["entry"]]


def paged(request: dict, server, first: list, rest_at: str = None, token: bool = True) -> dict:
    """`request` with its Conditions sent as a first page holding the ids `first`, the rest served by
    `server` as page 2 (at `rest_at`, default on `server`)."""
    request = copy.deepcopy(request)
    entries = request["prefetch"]["conditions"]["entry"]
    page1 = [e for e in entries if e["resource"]["id"] in first]
    page2 = [e for e in entries if e["resource"]["id"] not in first]
    server.pages["page/2"] = searchset(page2)
    request["prefetch"]["conditions"] = searchset(page1, rest_at or f"{server.url}/page/2")
    request["fhirServer"] = server.url
    if token:
        request["fhirAuthorization"] = {"access_token": TOKEN, "token_type": "Bearer", "expires_in": 300,
                                        "scope": "user/Condition.read", "subject": "ivig-advisor"}  # fmt: skip
    else:
        request.pop("fhirAuthorization", None)
    return request


def shown(reply) -> list:
    assert reply.status_code == 200, reply.text
    return [(c["summary"], c["indicator"]) for c in check_response(reply.json())["cards"]]


@pytest.mark.parametrize("name", ["patient-view-mmn-prednisone-renal", "order-select-critical"])
def test_the_diagnosis_and_the_risk_factor_on_page_2_give_the_cards_of_the_whole_record(dev, fhir, name):
    whole = load(name)
    first = [i for i in condition_ids(whole) if i.startswith("dehydration")]  # MMN and CKD on page 2
    assert shown(dev.call(paged(whole, fhir, first))) == shown(dev.call(whole))
    assert fhir.seen == [("/fhir/page/2", f"Bearer {TOKEN}")]
    assert any(indicator == "critical" for _, indicator in shown(dev.call(whole)))  # what page 2 decides


def test_without_a_token_the_record_read_in_part_says_so_instead_of_no_card(dev, fhir):
    whole = load("patient-view-mmn-prednisone-renal")
    first = [i for i in condition_ids(whole) if i.startswith("dehydration")]
    cards = shown(dev.call(paged(whole, fhir, first, token=False)))
    assert [s for s, _ in cards] == ["Record read in part: the advice may miss what the unread pages hold"]
    assert fhir.seen == []  # no token: nothing fetched
    detail = dev.call(paged(whole, fhir, first, token=False)).json()["cards"][0]["detail"]
    assert "conditions" in detail and "no FHIR server with an access token" in detail


def test_an_order_read_in_part_keeps_its_critical_cards_first_and_says_so_next(dev, fhir):
    whole = load("order-select-critical")
    first = [i for i in condition_ids(whole) if not i.startswith("dehydration")]  # only the dehydration unread
    cards = shown(dev.call(paged(whole, fhir, first, token=False)))
    part = [i for i, (s, _) in enumerate(cards) if s.startswith(READ_IN_PART)]
    assert len(part) == 1 and all(ind == "critical" for _, ind in cards[: part[0]])
    assert cards[part[0] + 1 :] and all(ind != "critical" for _, ind in cards[part[0] + 1 :])


def test_a_next_page_on_another_host_is_not_fetched_and_the_token_goes_nowhere(dev, fhir):
    elsewhere = PagedFhir()
    try:
        whole = load("patient-view-mmn-prednisone-renal")
        first = [i for i in condition_ids(whole) if i.startswith("dehydration")]
        request = paged(whole, fhir, first, rest_at=f"{elsewhere.url}/page/2")
        reply = dev.call(request)
        assert [s for s, _ in shown(reply)] == ["Record read in part: the advice may miss what the unread pages hold"]
        assert "not on the call's FHIR server" in reply.json()["cards"][0]["detail"]
        assert elsewhere.seen == [] and fhir.seen == []
    finally:
        elsewhere.close()


def test_a_search_with_endless_pages_stops_and_says_so(tmp_path):
    """The bound on pages, alone, and every page over one connection. The time a call has for its
    pages (fhir_timeout, 5 s by default) is set far beyond what 50 pages take, so that it cannot
    stop the reading first: when each page built an HTTP client of its own, 50 pages took 4.3 to
    5.7 s under load (a 2-core machine, CI's workers), and the default time stopped the reading at
    41 to 43 pages ("could not be read in the time a call has", an honest card, not this one)."""
    endless = PagedFhir(endless=True)
    settings = Settings(insecure_dev=True, feedback_db=str(tmp_path / "feedback.sqlite"), fhir_timeout=120)
    try:
        whole = load("patient-view-mmn-prednisone-renal")
        request = paged(whole, endless, condition_ids(whole))  # all on page 1, then empty pages for ever
        request["prefetch"]["conditions"]["link"][1]["url"] = f"{endless.url}/page/1"
        with InThread(settings) as served:
            reply = httpx.post(served.url + "/cds-services/ivig-patient", json=request, timeout=180)
        assert any(s.startswith(READ_IN_PART) for s, _ in shown(reply))
        assert f"more than {MAX_PAGES + 1} pages" in str(reply.json())
        assert len(endless.seen) == MAX_PAGES
        assert len(endless.connections) == 1, "one client for the call's pages, its connection kept"
    finally:
        endless.close()


def test_the_services_own_search_is_read_whole_too(dev, fhir):
    """A prefetch the EHR leaves out is fetched from the FHIR server, whose answer may be paged."""
    whole = load("patient-view-mmn-prednisone-renal")
    first = [i for i in condition_ids(whole) if i.startswith("dehydration")]
    request = paged(whole, fhir, first)
    fhir.pages["Condition?patient=1288992"] = request["prefetch"].pop("conditions")
    assert shown(dev.call(request)) == shown(dev.call(whole))
    assert [p for p, _ in fhir.seen] == ["/fhir/Condition?patient=1288992", "/fhir/page/2"]


@pytest.mark.parametrize(
    "url, on",
    [
        ("http://127.0.0.1:8080/fhir/page/2", True),
        ("http://127.0.0.1:8080/fhir", True),
        ("http://127.0.0.1:8080/fhirx/page/2", False),  # outside the base path
        ("https://127.0.0.1:8080/fhir/page/2", False),  # another scheme
        ("http://127.0.0.1:8081/fhir/page/2", False),  # another port
        ("http://127.0.0.1.evil.example:8080/fhir/page/2", False),
        ("http://evil.example@127.0.0.1:8080/fhir/page/2", True),  # userinfo: still that host and port
        ("http://127.0.0.1:8080/other", False),
        ("file:///etc/passwd", False),
        ("http://[::1", False),  # not a URL
    ],
)
def test_a_next_link_is_followed_only_on_the_call_s_fhir_server(url, on):
    assert on_server(url, "http://127.0.0.1:8080/fhir/") is on
