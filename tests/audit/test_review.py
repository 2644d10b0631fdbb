"""`ivig audit review`: the report served on a loopback address with a verdict form on each card.

Over real HTTP requests to the app (starlette's TestClient), on a copy of the rules: a verdict
given on the page is written to the same review log as `ivig audit sign` (the reviewer from
the command line, the git identity, the current hash), and `ivig audit check` / `show` see it;
a request from elsewhere (another Host, another Origin, without the run's token or key) writes
nothing; signoff's own refusals (a needs-change without comment, a damaged log, a held lock)
are shown on the card, never a crash; what comes from the rule base is escaped. The real
server in a real browser is tests/audit/test_review_browser.py.
"""

import fcntl
import json
import os
import warnings
from html.parser import HTMLParser

import pytest
import yaml
from helpers import mutate

starlette = pytest.importorskip("starlette", reason='the review page needs the serve extra: pip install -e ".[serve]"')
with warnings.catch_warnings():  # starlette 1.x would have httpx2 under its TestClient; the test extra has httpx
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient` is deprecated")
    from starlette.testclient import TestClient

from ivig_advisor.engine import RuleBase  # noqa: E402
from ivig_advisor.engine.audit import review, signoff  # noqa: E402

PORT = 48213  # the port the app is told it listens on: TestClient opens no socket
BASE = f"http://127.0.0.1:{PORT}"
REVIEWER = "Dr Rev"
IDENTITY = "Rev Iewer <rev@example.org>"


class _Forms(HTMLParser):
    """The verdict forms of a page: each card's hidden fields, by the id the form is for."""

    def __init__(self):
        super().__init__()
        self.forms, self._current = {}, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form" and "verdict" in (attrs.get("class") or "").split():
            self._current = self.forms.setdefault(attrs["data-id"], {"action": attrs["action"]})
        elif tag == "input" and self._current is not None and attrs.get("type") == "hidden":
            self._current[attrs["name"]] = attrs["value"]

    def handle_endtag(self, tag):
        if tag == "form":
            self._current = None


def forms_of(page: str) -> dict:
    parser = _Forms()
    parser.feed(page)
    return parser.forms


@pytest.fixture
def git_identity(tmp_path, monkeypatch):
    """A known git identity (user.name, user.email) for every git the test runs."""
    config = tmp_path / "gitconfig"
    config.write_text("[user]\n\tname = Rev Iewer\n\temail = rev@example.org\n", encoding="utf-8")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    return IDENTITY


@pytest.fixture
def run(rules_copy, git_identity):
    """One run of `ivig audit review --rules COPY --reviewer 'Dr Rev'`."""
    return review.ReviewRun.open(str(rules_copy), REVIEWER)


@pytest.fixture
def client(run):
    """A browser that opened the address the run printed (its key now a cookie)."""
    with TestClient(review.review_app(run, "127.0.0.1", PORT), base_url=BASE) as browser:
        entered = browser.get(f"/?key={run.key}", follow_redirects=False)
        assert entered.status_code == 303 and entered.headers["location"] == "/"
        yield browser


@pytest.fixture
def page(client):
    shown = client.get("/")
    assert shown.status_code == 200, shown.text
    return shown.text


def post(client, form: dict, json_reply=False, origin=BASE, **change):
    """Submit a card's form as the page does, from `origin` (None: no Origin header); `change`
    sets fields, or leaves them out (None)."""
    fields = {k: v for k, v in {**form, **change}.items() if k != "action" and v is not None}
    headers = {"Origin": origin} if origin is not None else {}
    if json_reply:
        headers["Accept"] = "application/json"
    return client.post(form["action"], data=fields, headers=headers, follow_redirects=False)


def logged(rules_dir):
    path = rules_dir / "review-log.yaml"
    return yaml.safe_load(path.read_text(encoding="utf-8"))["signoffs"] if path.exists() else []


# -- a verdict given on the page --------------------------------------------------------


def test_approving_on_the_page_writes_the_log_as_sign_does_and_audit_check_shows_it(
    run_cli, rules_copy, client, page, git_identity
):
    strict = json.loads(run_cli("audit", "check", "--strict", "--format", "json", "--rules", str(rules_copy)).stdout)
    assert "mmn-general" in {f["rule"] for f in strict["findings"] if f["kind"] == "sign-off"}

    form = forms_of(page)["mmn-general"]
    answer = post(client, form, verdict="approved", reviewer="Someone Else")  # the form's name is not taken
    assert answer.status_code == 303 and answer.headers["location"] == "/#rule-mmn-general"

    (entry,) = logged(rules_copy)
    current = signoff.signoff_hash(RuleBase.load(str(rules_copy)), RuleBase.load(str(rules_copy)).by_id["mmn-general"])
    assert entry["rule"] == "mmn-general" and entry["verdict"] == "approved"
    assert entry["reviewer"] == REVIEWER and entry["identity"] == git_identity
    assert entry["hash"] == current == form["hash"]

    strict = json.loads(run_cli("audit", "check", "--strict", "--format", "json", "--rules", str(rules_copy)).stdout)
    assert "mmn-general" not in {f["rule"] for f in strict["findings"] if f["kind"] == "sign-off"}
    assert strict["signoff"]["approved"] == 1
    shown = run_cli("audit", "show", "--rules", str(rules_copy), "mmn-general").stdout
    assert f"approved by {REVIEWER} on " in shown.splitlines()[0]

    again = client.get("/").text  # the page shows it too, in the card's lifecycle
    assert f'<span id="lifecycle-mmn-general">approved by {REVIEWER} on ' in again
    assert '<span class="badge approved" id="stage-mmn-general">approved</span>' in again


def test_a_verdict_by_fetch_answers_json_and_the_lifecycle_endpoint_follows_the_log(run_cli, rules_copy, client, page):
    forms = forms_of(page)
    answer = post(client, forms["gbs-dose"], json_reply=True, verdict="needs-change", comment="say 2 g/kg first")
    assert answer.status_code == 200, answer.text
    reply = answer.json()
    assert reply["id"] == "gbs-dose" and reply["stage"] == "needs-change"
    assert reply["lifecycle"].startswith(f"needs-change by {REVIEWER} on ") and reply["lifecycle"].endswith(
        ": say 2 g/kg first"
    )
    assert reply["log"] == str(rules_copy / "review-log.yaml")
    assert logged(rules_copy)[0]["comment"] == "say 2 g/kg first"

    # a verdict given elsewhere (the command line) shows up on the page's next poll
    signed = run_cli("audit", "sign", "--rules", str(rules_copy), "mg-dose", "--verdict", "approved", "--reviewer", "B")
    assert signed.exit_code == 0, signed.output
    states = client.get("/lifecycle").json()["lifecycle"]
    assert states["mg-dose"]["stage"] == "approved" and states["mg-dose"]["text"].startswith("approved by B on ")
    assert states["gbs-dose"]["stage"] == "needs-change" and states["mmn-general"]["stage"] == "draft"


def test_a_later_evidence_entry_is_signed_on_its_card_too(rules_copy, client, page):
    form = forms_of(page)["sid-gbs-second-course"]
    answer = post(client, form, verdict="approved")
    assert answer.status_code == 303 and answer.headers["location"] == "/#evidence-sid-gbs-second-course"
    (entry,) = logged(rules_copy)
    assert entry["evidence"] == "sid-gbs-second-course" and "rule" not in entry


# -- signoff's refusals, shown on the card ----------------------------------------------------------


def test_needs_change_without_a_comment_is_refused_on_the_card_and_nothing_is_written(rules_copy, client, page):
    form = forms_of(page)["gbs-dose"]
    assert form["action"] == "/verdict#rule-gbs-dose"  # a refused plain form opens the page at its card
    plain = post(client, form, verdict="needs-change", comment="   ")
    assert plain.status_code == 400
    card = plain.text.split('id="rule-gbs-dose"', 1)[1].split("</article>", 1)[0]
    assert "a &#x27;needs-change&#x27; verdict needs a comment saying what to change" in card
    by_fetch = post(client, form, json_reply=True, verdict="needs-change")
    assert by_fetch.status_code == 400
    assert by_fetch.json()["error"] == "a 'needs-change' verdict needs a comment saying what to change"
    assert not (rules_copy / "review-log.yaml").exists()


def test_an_unknown_id_or_verdict_is_refused(rules_copy, client, page):
    form = forms_of(page)["gbs-dose"]
    assert post(client, form, json_reply=True, id="gbs-dosee", verdict="approved").status_code == 400
    plain = post(client, form, id="gbs-dosee", verdict="approved")  # no card to show it on: the page's top
    assert plain.status_code == 400
    assert "no rule &#x27;gbs-dosee&#x27;" in plain.text.split('<h2 id="summary">', 1)[0]
    assert post(client, form, json_reply=True, verdict="fine").status_code == 400
    assert post(client, form, json_reply=True, verdict=None).status_code == 400
    assert not (rules_copy / "review-log.yaml").exists()


def test_a_damaged_log_is_shown_as_an_error_and_left_as_it_was(rules_copy, client, page):
    path = rules_copy / "review-log.yaml"
    path.write_text("signoffs: {}\n", encoding="utf-8")
    answer = post(client, forms_of(page)["gbs-dose"], json_reply=True, verdict="approved")
    assert answer.status_code == 409
    assert "'signoffs' must be a list" in answer.json()["error"] and f"{path}:1" in answer.json()["error"]
    assert path.read_text(encoding="utf-8") == "signoffs: {}\n"
    shown = client.get("/")
    assert shown.status_code == 200 and "unknown: the review log has errors" in shown.text


def test_a_held_lock_is_shown_as_an_error_and_nothing_is_written(rules_copy, client, page, monkeypatch):
    monkeypatch.setattr(review, "PAGE_LOCK_TIMEOUT", 0.2)  # not the page's few seconds
    lock = os.open(rules_copy / ".review-log.yaml.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another `ivig audit sign` holds it
        answer = post(client, forms_of(page)["gbs-dose"], json_reply=True, verdict="approved")
    finally:
        os.close(lock)
    assert answer.status_code == 423 and "locked by another process" in answer.json()["error"]
    assert not (rules_copy / "review-log.yaml").exists()


def test_a_rule_edited_since_the_page_was_shown_is_not_signed_on_the_old_page(rules_copy, client, page):
    mutate(rules_copy / "gbs.yaml", "- id: gbs-dose\n    title: ", "- id: gbs-dose\n    title: Edited, ")
    answer = post(client, forms_of(page)["gbs-dose"], json_reply=True, verdict="approved")
    assert answer.status_code == 409 and "changed since this page was shown" in answer.json()["error"]
    for other in ("", "é", "0" * 16):  # any other hash, even one that is not ASCII, is not this page's
        assert (
            post(client, forms_of(page)["mmn-general"], json_reply=True, verdict="approved", hash=other).status_code
            == 409
        )
    assert not (rules_copy / "review-log.yaml").exists()
    fresh = forms_of(client.get("/").text)["gbs-dose"]  # reloaded, the page signs the rule as it is now
    assert post(client, fresh, verdict="approved").status_code == 303
    assert logged(rules_copy)[0]["hash"] == fresh["hash"] != forms_of(page)["gbs-dose"]["hash"]


# -- requests from elsewhere write nothing -------------------------------------------------------


@pytest.mark.parametrize("token", ["", "x" * 43, None])
def test_a_post_without_this_runs_token_is_refused(rules_copy, client, page, token):
    answer = post(client, forms_of(page)["mmn-general"], verdict="approved", token=token)
    assert answer.status_code == 403
    assert not (rules_copy / "review-log.yaml").exists()


@pytest.mark.parametrize("origin", ["http://evil.example", f"http://127.0.0.1:{PORT + 1}", "null"])
def test_a_post_from_another_origin_is_refused(rules_copy, client, page, origin):
    answer = post(client, forms_of(page)["mmn-general"], verdict="approved", origin=origin)
    assert answer.status_code == 403 and "another site" in answer.text
    assert not (rules_copy / "review-log.yaml").exists()


@pytest.mark.parametrize("host", ["evil.example", f"evil.example:{PORT}", f"127.0.0.1:{PORT + 1}", ""])
def test_a_request_for_another_host_is_refused(rules_copy, client, page, host):
    """DNS rebinding: a page of evil.example whose name now points at 127.0.0.1 sends its own Host."""
    assert client.get("/", headers={"Host": host}).status_code == 400
    assert client.get("/lifecycle", headers={"Host": host}).status_code == 400
    form = forms_of(page)["mmn-general"]
    fields = {k: v for k, v in form.items() if k != "action"}
    answer = client.post("/verdict", data={**fields, "verdict": "approved"}, headers={"Host": host})
    assert answer.status_code == 400
    assert not (rules_copy / "review-log.yaml").exists()


def test_localhost_names_the_same_page_and_a_post_without_origin_needs_only_the_token(rules_copy, client, page):
    assert client.get("/lifecycle", headers={"Host": f"localhost:{PORT}"}).status_code == 200
    assert post(client, forms_of(page)["mmn-general"], origin=None, verdict="approved").status_code == 303
    assert logged(rules_copy)[0]["rule"] == "mmn-general"


def test_a_browser_without_the_runs_key_gets_nothing(rules_copy, run, page):
    """Another user of this machine reaches the loopback address too: without the key the
    command printed, no page, no token, no verdict."""
    token = forms_of(page)["mmn-general"]["token"]
    with TestClient(review.review_app(run, "127.0.0.1", PORT), base_url=BASE) as stranger:
        for shown in (stranger.get("/"), stranger.get("/?key=wrong"), stranger.get("/lifecycle")):
            assert shown.status_code == 403 and token not in shown.text
        form = forms_of(page)["mmn-general"]
        answer = post(stranger, form, verdict="approved")
        assert answer.status_code == 403
    assert not (rules_copy / "review-log.yaml").exists()


def test_a_form_that_is_not_urlencoded_or_too_large_is_refused(rules_copy, client, page):
    form = {k: v for k, v in forms_of(page)["mmn-general"].items() if k != "action"}
    as_json = client.post("/verdict", json={**form, "verdict": "approved"}, headers={"Origin": BASE})
    assert as_json.status_code == 415
    huge = client.post("/verdict", data={**form, "verdict": "approved", "comment": "x" * 100_000})
    assert huge.status_code == 413
    assert not (rules_copy / "review-log.yaml").exists()


def test_the_page_may_not_be_framed_and_runs_only_its_own_script(page, client):
    headers = client.get("/").headers
    policy = headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy and "script-src 'nonce-" in policy
    assert "default-src 'none'" in policy and "form-action 'self'" in policy
    assert headers["x-frame-options"] == "DENY" and headers["cache-control"] == "no-store"


# -- what comes from the rule base and the log is escaped ------------------------------------------

HOSTILE = '<script>alert(1)</script> & "quoted" <img src=x onerror=alert(2)>'


def test_a_hostile_title_and_comment_are_shown_as_text(run_cli, rules_copy, client):
    mutate(rules_copy / "mmn.yaml", "title: IVIG is the treatment of choice for MMN", f"title: '{HOSTILE}'")
    signed = run_cli(
        "audit", "sign", "--rules", str(rules_copy), "gbs-dose", "--verdict", "needs-change", "--reviewer", "<b>B</b>"
    )
    assert signed.exit_code != 0  # needs a comment: give one that is hostile too
    signed = run_cli(
        "audit",
        "sign",
        "--rules",
        str(rules_copy),
        "gbs-dose",
        "--verdict",
        "needs-change",
        "--reviewer",
        "<b>B</b>",
        "--comment",
        HOSTILE,
    )
    assert signed.exit_code == 0, signed.output
    text = client.get("/").text
    assert "<script>alert" not in text and "<img src=x" not in text and "<b>B</b>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quoted&quot;" in text
    assert "&lt;b&gt;B&lt;/b&gt;" in text
    assert text.count("<script") == 1  # the page's own, with its nonce
    lifecycle = client.get("/lifecycle").json()["lifecycle"]["gbs-dose"]["text"]
    assert HOSTILE in lifecycle  # JSON, that the page sets as text (textContent), never as HTML


# -- the command line refuses what it cannot serve safely -----------------------------------------


@pytest.fixture
def never_served(monkeypatch):
    """A refusal is said before listening: a run that gets as far as serving fails the test here
    rather than serving for ever."""
    uvicorn = pytest.importorskip("uvicorn")

    def served(*args, **kwargs):
        raise AssertionError("the review server was started")

    monkeypatch.setattr(uvicorn.Server, "run", served)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "example.org", "", "::ffff:127.0.0.1"])
def test_a_host_that_is_not_loopback_is_refused(run_cli, rules_copy, never_served, host):
    result = run_cli("audit", "review", "--rules", str(rules_copy), "--reviewer", REVIEWER, "--host", host)
    assert result.exit_code == 2
    assert "Invalid value for --host" in result.output and "not a loopback address" in result.output
    assert not (rules_copy / "review-log.yaml").exists()


@pytest.mark.parametrize("reviewer", [None, "", "   "])
def test_a_review_needs_the_reviewers_name(run_cli, rules_copy, never_served, reviewer):
    args = ["audit", "review", "--rules", str(rules_copy), "--no-browser"]
    result = run_cli(*args, *(["--reviewer", reviewer] if reviewer is not None else []))
    assert result.exit_code == 2 and "--reviewer" in result.output


@pytest.mark.parametrize(
    "host, address",
    [("127.0.0.1", "127.0.0.1"), ("127.0.0.2", "127.0.0.2"), ("::1", "::1"), ("localhost", "127.0.0.1")],
)
def test_a_loopback_host_is_listened_on_at_its_address(host, address):
    assert review.loopback_address(host) == address
