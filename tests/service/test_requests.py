"""Requests as real CDS Hooks clients send them (issue 30, "Real clients"), through real HTTP
(the insecure-dev `ivig serve` of conftest.py) and through the library.

- Discovery gives each hook its own service id: a client that keys services by URL (the HL7
  sandbox) keeps all three; `ivig-order`, the one id of both order hooks before, still answers
  both for the EHRs configured with it, unlisted.
- `context.selections` are references of draft orders as the spec writes them (Type/id); any
  other form is a 400 naming the field and the value, never `{"cards": []}` without a word.
- `fhirAuthorization` is the object the spec defines; without a token it is a 400 naming the
  field, before anything is fetched (never an empty `Bearer` header sent to the FHIR server).
"""

import copy
from pathlib import Path

import httpx
import pytest
from helpers import FakeFhir, cards_of, fetching, load, outcome

from ivig_advisor.engine.base.errors import CdsServicesInvalid
from ivig_advisor.engine.service.cdshooks import CdsServices

SHIPPED = Path(__file__).resolve().parents[2] / "facts" / "cds-services.yaml"


def discovery(dev) -> list:
    reply = httpx.get(dev.url + "/cds-services", timeout=30)
    assert reply.status_code == 200, reply.text
    return reply.json()["services"]


def without_uuids(cards: list) -> list:
    """Cards as a client compares them: each call gives its cards and suggestions new uuids."""
    out = copy.deepcopy(cards)
    for card in out:
        card.pop("uuid", None)
        for suggestion in card.get("suggestions", []):
            suggestion.pop("uuid", None)
    return out


# -- one id per hook --------------------------------------------------------------------------


def test_discovery_gives_each_hook_its_own_id(dev):
    services = discovery(dev)
    assert {(s["hook"], s["id"]) for s in services} == {
        ("order-select", "ivig-order-select"),
        ("order-sign", "ivig-order-sign"),
        ("patient-view", "ivig-patient"),
    }
    urls = {f"{dev.url}/cds-services/{s['id']}" for s in services}
    assert len(urls) == len(services)  # a client keying services by URL keeps every one


def test_order_sign_says_its_cards_replace_those_of_order_select(dev):
    (sign,) = [s for s in discovery(dev) if s["hook"] == "order-sign"]
    assert "ivig-order-select" in sign["usageRequirements"]
    assert sign["extension"]["org.ivig-advisor.replaces-cards-of"] == ["ivig-order-select"]


@pytest.mark.parametrize(
    "sample, service", [("order-select-mmn", "ivig-order-select"), ("order-sign-mmn", "ivig-order-sign")]
)
def test_each_order_id_answers_its_hook_as_the_old_id_does(dev, sample, service):
    request = load(sample)
    cards = cards_of(dev.call(request, service=service))
    assert any(card["indicator"] == "info" for card in cards)  # the stance at least: the order was read
    assert without_uuids(cards) == without_uuids(cards_of(dev.call(request, service="ivig-order")))


@pytest.mark.parametrize(
    "sample, service", [("order-sign-mmn", "ivig-order-select"), ("order-select-mmn", "ivig-order-sign")]
)
def test_an_order_id_refuses_the_other_order_hook(dev, sample, service):
    reply = dev.call(load(sample), service=service)
    assert reply.status_code == 400, reply.text
    assert service in outcome(reply)


def services_file(tmp_path, old: str, new: str) -> Path:
    text = SHIPPED.read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "cds-services.yaml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "old, new, said",
    [
        ("  - id: ivig-order-sign\n", "  - id: ivig-order-select\n", "twice"),
        ("replaces: [ivig-order-select]", "replaces: [ivig-order-chosen]", "ivig-order-chosen"),
        ("hooks: [order-sign]", "hooks: [order-select]", "order-select"),
    ],
    ids=["an-id-twice", "replaces-no-service", "two-listed-for-one-hook"],
)
def test_a_services_file_that_would_lose_or_double_a_hook_is_refused(tmp_path, old, new, said):
    with pytest.raises(CdsServicesInvalid) as refused:
        CdsServices.load(services_file(tmp_path, old, new))
    assert said in str(refused.value)


# -- selections -------------------------------------------------------------------------------


def selecting(*selections) -> dict:
    request = load("order-select-mmn")
    request["context"]["selections"] = list(selections)
    return request


def test_a_bare_id_in_selections_is_400_saying_the_reference_it_should_be(dev):
    reply = dev.call(selecting("ivig-draft-1"), service="ivig-order-select")
    assert reply.status_code == 400, reply.text
    said = outcome(reply)
    assert "context.selections[0]" in said and '"ivig-draft-1"' in said
    assert "MedicationRequest/ivig-draft-1" in said


@pytest.mark.parametrize(
    "selection",
    [
        "https://ehr.example.org/fhir/MedicationRequest/ivig-draft-1",
        "urn:uuid:3f1c1f4e-6a8e-4f43-9a43-2b2f6f0f7a11",
        "MedicationRequest/ivig-draft-1/_history/1",
        "MedicationRequest/no-such-order",
        "Medicationrequest/ivig-draft-1",
        "",
    ],
)
def test_a_selection_that_is_no_draft_order_reference_is_400_naming_it(dev, selection):
    reply = dev.call(selecting("NutritionOrder/pureeddiet-simple", selection), service="ivig-order-select")
    assert reply.status_code == 400, reply.text
    said = outcome(reply)
    assert "context.selections[1]" in said and f'"{selection}"' in said


def test_a_selection_is_named_escaped_and_cut_short(dev):
    reply = dev.call(selecting("\x1b[2J\u202e" + "x" * 5000), service="ivig-order-select")
    assert reply.status_code == 400, reply.text
    said = outcome(reply)
    assert "\x1b" not in said and "\u202e" not in said and "\\u001b[2J\\u202e" in said
    assert len(said) < 600


def test_the_spec_form_of_each_draft_order_is_read(dev):
    """Type/id of any draft order (the spec's example selects a NutritionOrder and a MedicationRequest)."""
    cards = cards_of(dev.call(selecting("NutritionOrder/pureeddiet-simple"), service="ivig-order-select"))
    assert cards == []  # no IVIG among the selected orders
    cards = cards_of(dev.call(selecting("MedicationRequest/ivig-draft-1"), service="ivig-order-select"))
    assert cards


# -- fhirAuthorization ------------------------------------------------------------------------


def fetching_from(server: FakeFhir, **authorization) -> dict:
    """order-select-mmn with its Patient and Conditions left to fetch from `server`, with a
    fhirAuthorization changed by `authorization` (a None value drops the field)."""
    request = fetching(load("order-select-mmn"), server.url)
    request["fhirAuthorization"].update(authorization)
    request["fhirAuthorization"] = {k: v for k, v in request["fhirAuthorization"].items() if v is not None}
    return request


@pytest.fixture
def fhir():
    server = FakeFhir(load("order-select-mmn"))
    yield server
    server.close()


def test_fhir_authorization_without_a_token_is_400_and_nothing_is_fetched(dev, fhir):
    reply = dev.call(fetching_from(fhir, access_token=None), service="ivig-order-select")
    assert reply.status_code == 400, reply.text
    assert "fhirAuthorization.access_token" in outcome(reply)
    assert fhir.seen == []  # no empty Bearer header went to the FHIR server


@pytest.mark.parametrize(
    "change, field",
    [
        ({"access_token": ""}, "access_token"),
        ({"access_token": 7}, "access_token"),
        ({"token_type": None}, "token_type"),
        ({"token_type": "MAC"}, "token_type"),
        ({"expires_in": None}, "expires_in"),
        ({"expires_in": "300"}, "expires_in"),
        ({"expires_in": True}, "expires_in"),
        ({"scope": None}, "scope"),
        ({"subject": None}, "subject"),
        ({"subject": ["ivig"]}, "subject"),
        ({"patient": 1288992}, "patient"),
    ],
)
def test_fhir_authorization_missing_a_field_the_spec_requires_is_400_naming_it(dev, fhir, change, field):
    reply = dev.call(fetching_from(fhir, **change), service="ivig-order-select")
    assert reply.status_code == 400, reply.text
    assert f"fhirAuthorization.{field}" in outcome(reply)
    assert fhir.seen == []


@pytest.mark.parametrize("value", ["some-token", [], 7])
def test_fhir_authorization_that_is_no_object_is_400(dev, fhir, value):
    request = fetching_from(fhir)
    request["fhirAuthorization"] = value
    reply = dev.call(request, service="ivig-order-select")
    assert reply.status_code == 400, reply.text
    assert "fhirAuthorization" in outcome(reply)
    assert fhir.seen == []


def test_fhir_authorization_as_the_spec_writes_it_fetches_with_its_token(dev, fhir):
    """The spec's example object (token_type in any case: OAuth token types are case-insensitive)."""
    cards = cards_of(dev.call(fetching_from(fhir, token_type="bearer"), service="ivig-order-select"))
    assert (
        cards
        and fhir.seen
        and all(auth == "Bearer " + fetching_from(fhir)["fhirAuthorization"]["access_token"] for _, auth in fhir.seen)
    )
