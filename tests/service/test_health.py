"""Health for a load balancer (issue 30): `GET /healthz` says the process answers, `GET /readyz` that
its engines are warm; neither needs a token, and neither says anything about patients or rules but the
rule base's hash. Over real HTTP: `ivig serve` in a process of its own (conftest.py's `secure`), and the
app under uvicorn in a thread of this process, where the warm-up can be held back to see the service
not ready yet."""

import threading
import time

import httpx
import pytest
from helpers import InThread, load

from ivig_advisor.engine.core.advisor import Advisor
from ivig_advisor.engine.core.rulebase import RuleBase
from ivig_advisor.engine.service.app import Settings


def ready_reply(url: str, give_up_after: float = 120) -> httpx.Response:
    """GET url/readyz until it is 200, or its last answer when it never is (a bound, not a measure)."""
    deadline = time.monotonic() + give_up_after
    reply = httpx.get(url + "/readyz", timeout=10)
    while reply.status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
        reply = httpx.get(url + "/readyz", timeout=10)
    return reply


def test_healthz_answers_ok_without_a_token(secure):
    reply = httpx.get(secure.url + "/healthz", timeout=10)
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"status": "ok"}


def test_readyz_once_warm_says_ready_with_the_rule_base_hash_alone(secure):
    reply = ready_reply(secure.url)
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"status": "ready", "rules_hash": RuleBase.load().stamp["hash"]}


def test_health_routes_take_no_body_and_no_other_method(secure):
    assert httpx.post(secure.url + "/healthz", timeout=10).status_code == 405
    assert httpx.post(secure.url + "/readyz", timeout=10).status_code == 405


@pytest.fixture
def held_warm_up(monkeypatch):
    """Advisor.warm held back until the event returned is set: the service is not ready meanwhile."""
    release, warming = threading.Event(), threading.Event()
    real_warm = Advisor.warm

    def held(advisor):
        warming.set()
        assert release.wait(timeout=120), "the test never released the warm-up"
        real_warm(advisor)

    monkeypatch.setattr(Advisor, "warm", held)
    yield release, warming
    release.set()


def test_readyz_is_503_until_the_engines_are_warm_and_a_call_meanwhile_waits_for_them(held_warm_up, tmp_path):
    release, warming = held_warm_up
    settings = Settings(insecure_dev=True, feedback_db=str(tmp_path / "feedback.sqlite"))
    with InThread(settings) as served:
        assert warming.wait(timeout=60), "the worker did not start warming its engines"
        assert httpx.get(served.url + "/healthz", timeout=10).status_code == 200  # alive, not ready
        reply = httpx.get(served.url + "/readyz", timeout=10)
        assert reply.status_code == 503, reply.text
        assert reply.json() == {"status": "warming"}
        answers = []
        call = threading.Thread(
            target=lambda: answers.append(
                httpx.post(served.url + "/cds-services/ivig-order", json=load("order-select-mmn"), timeout=120)
            )
        )
        call.start()
        release.set()
        call.join(timeout=150)
        assert answers and answers[0].status_code == 200, answers and answers[0].text
        assert answers[0].json()["cards"]
        assert ready_reply(served.url).status_code == 200
