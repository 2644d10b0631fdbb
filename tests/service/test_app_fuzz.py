"""`ivig serve` fuzzed through real HTTP: no body is a 500, every 200 is a valid CDS Hooks response.

Bodies are random JSON, or the requests of tests/cds mutated: a key dropped, a
value replaced by random JSON or by a value of the wrong type, a huge string, deep
nesting. They go to the insecure-dev server of tests/service/test_app.py.
"""

import copy
import json

import httpx
import pytest
from helpers import CDS, check_response, stamp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

REQUESTS = {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(CDS.glob("*.json"))}
SERVICES = ["ivig-order", "ivig-patient"]
FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | st.sampled_from(
        [
            "",
            "Patient/1288992",
            "MedicationRequest/ivig-draft-1",
            "order-select",
            "patient-view",
            "draft",
            "g",
            "g/kg",
            "mg/kg",
            "J06BA02",
            "http://www.whocc.no/atc",
            "Bundle",
            "MedicationRequest",
            "Patient",
            "Condition",
            "OperationOutcome",
        ]
    )
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=25,
)


def paths(node, prefix=()):
    """Every path to a value inside a JSON document."""
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from paths(value, prefix + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from paths(value, prefix + (i,))


def deep(depth: int, kind: str):
    node = "bottom"
    for _ in range(depth):
        node = [node] if kind == "list" else {"a": node}
    return node


def wrong_type(value):
    if isinstance(value, str):
        return [value]
    if isinstance(value, (dict, list)):
        return "x"
    if isinstance(value, bool):
        return "true"
    if isinstance(value, (int, float)):
        return str(value)
    return {}


@st.composite
def mutated(draw, documents):
    name = draw(st.sampled_from(sorted(documents)))
    body = copy.deepcopy(documents[name])
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(list(paths(body))))
        action = draw(st.sampled_from(["drop", "replace", "wrong-type", "huge-string", "deep", "null"]))
        if not where:
            if action == "replace":
                body = draw(json_values)
            continue
        parent = body
        for step in where[:-1]:
            parent = parent[step]
        key = where[-1]
        if action == "drop":
            del parent[key]
        elif action == "replace":
            parent[key] = draw(json_values)
        elif action == "wrong-type":
            parent[key] = wrong_type(parent[key])
        elif action == "huge-string":
            parent[key] = draw(st.sampled_from(["x", "é", "\u202e", "<script>", "*_`|"])) * 200_000
        elif action == "null":
            parent[key] = None
        else:
            parent[key] = deep(draw(st.integers(50, 400)), draw(st.sampled_from(["list", "dict"])))
    return name, body


def post(server, service, body):
    return httpx.post(
        f"{server.url}/cds-services/{service}",
        content=json.dumps(body),
        headers={"Content-Type": "application/json"},
        timeout=120,
    )


def assert_answered(reply):
    assert reply.status_code != 500, reply.text
    assert reply.status_code in (200, 400, 404, 412, 413, 415), reply.status_code
    if reply.status_code == 200:
        check_response(reply.json())
    else:
        assert reply.json()["resourceType"] == "OperationOutcome"


@FUZZ
@given(body=json_values, service=st.sampled_from(SERVICES))
def test_random_json_is_never_a_500(dev, body, service):
    assert_answered(post(dev, service, body))


@FUZZ
@given(case=mutated(REQUESTS), other_service=st.booleans())
def test_mutated_requests_are_never_a_500(dev, case, other_service):
    name, body = case
    service = "ivig-patient" if name.startswith("patient-view") else "ivig-order"
    if other_service:
        service = SERVICES[1 - SERVICES.index(service)]
    assert_answered(post(dev, service, body))


@pytest.fixture(scope="module")
def feedback(dev):
    """Feedback on two cards the service issued (it takes no other): one accepted, one overridden."""
    reply = post(dev, "ivig-order", REQUESTS["order-select-mmn"])
    cards = check_response(reply.json())["cards"]
    (dose,) = [c for c in cards if c.get("suggestions")]
    return {
        "feedback": {
            "feedback": [
                {
                    "card": dose["uuid"],
                    "outcome": "accepted",
                    "acceptedSuggestions": [{"id": dose["suggestions"][0]["uuid"]}],
                    "outcomeTimestamp": stamp(),
                },
                {
                    "card": cards[0]["uuid"],
                    "outcome": "overridden",
                    "overrideReason": {
                        "reason": {
                            "code": "d7ecf885",
                            "system": "https://example.com/cds-hooks/override-reason-system",
                            "display": "a reason",
                        },
                        "userComment": "A comment entered by the clinician.",
                    },
                    "outcomeTimestamp": stamp(),
                },
            ]
        }
    }


@FUZZ
@given(data=st.data())
def test_mutated_feedback_is_never_a_500(dev, feedback, data):
    _, body = data.draw(mutated(feedback))
    reply = httpx.post(
        f"{dev.url}/cds-services/ivig-order/feedback",
        content=json.dumps(body),
        headers={"Content-Type": "application/json"},
        timeout=60,
    )
    assert reply.status_code in (200, 400, 404, 413), reply.text
    if reply.status_code == 200:
        assert reply.json() == {"stored": len(body["feedback"])}


@pytest.mark.parametrize("depth", [200, 900])
@pytest.mark.parametrize("kind", ["list", "dict"])
def test_deep_nesting_in_an_ivig_order_is_answered(dev, depth, kind):
    body = copy.deepcopy(REQUESTS["order-select-mmn"])
    body["context"]["draftOrders"]["entry"][1]["resource"]["note"] = [{"text": "x", "extension": deep(depth, kind)}]
    assert_answered(post(dev, "ivig-order", body))
