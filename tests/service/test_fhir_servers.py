"""Where a call's access token may go (issue 30): only to a FHIR server on its issuer's
`fhir_servers` list in the trust file, https, never to any URL a trusted caller names."""

import pytest
from helpers import FakeFhir, Keys, claims, es384, fetching, load, outcome

from ivig_advisor.engine.base.errors import TrustInvalid
from ivig_advisor.engine.service.jwtauth import Trust, fhir_server_refused

ISS = "https://ehr.example.org/"


def trust_with(tmp_path, extra="") -> Trust:
    Keys(tmp_path)
    path = tmp_path / "trust-servers.yaml"
    path.write_text(f"issuers:\n  - iss: {ISS}\n    jwks: ehr-jwks.json\n{extra}")
    return Trust.load(path)


def test_the_trust_file_lists_the_fhir_servers_of_an_issuer(tmp_path):
    trust = trust_with(tmp_path, "    fhir_servers: [https://ehr.example.org/fhir]\n")
    assert trust.issuers[ISS].fhir_servers == ("https://ehr.example.org/fhir",)
    assert trust_with(tmp_path).issuers[ISS].fhir_servers == ()


@pytest.mark.parametrize(
    "listed", ["[http://ehr.example.org/fhir]", "[https:///fhir]", "[fhir]", "{a: 1}", "[1]", "[file:///etc]"]
)
def test_a_fhir_servers_list_of_anything_but_https_urls_is_refused_at_start(tmp_path, listed):
    with pytest.raises(TrustInvalid, match="fhir_servers"):
        trust_with(tmp_path, f"    fhir_servers: {listed}\n")


@pytest.mark.parametrize(
    "server, refused",
    [
        ("https://ehr.example.org/fhir", False),
        ("https://ehr.example.org/fhir/", False),
        ("https://ehr.example.org/fhir/r4", False),
        ("http://ehr.example.org/fhir", True),  # plain http: the token in the clear
        ("https://ehr.example.org/fhirx", True),
        ("https://ehr.example.org.evil.example/fhir", True),
        ("https://ehr.example.org:8443/fhir", True),
        ("https://attacker.example/fhir", True),
        (None, True),
        ("https://[::1", True),
    ],
)
def test_a_token_goes_only_to_a_listed_fhir_server(server, refused):
    assert (fhir_server_refused(server, ("https://ehr.example.org/fhir",)) is not None) is refused


def test_an_issuer_without_the_list_sends_its_token_nowhere():
    assert fhir_server_refused("https://ehr.example.org/fhir", ()) is not None


# -- over real HTTP: the service sends no token where it may not ---------------------------------


def test_a_trusted_call_to_an_unlisted_fhir_server_fetches_nothing_and_says_why(secure, keys):
    base = load("order-select-mmn")
    fake = FakeFhir(base)
    try:
        request = fetching(base, fake.url)  # the trust file lists no fhir_servers for the issuer
        reply = secure.call(request, headers={"Authorization": "Bearer " + es384(keys, claims(secure))})
    finally:
        fake.close()
    assert reply.status_code == 412, reply.text
    assert "not on its issuer's fhir_servers list" in outcome(reply)
    assert fake.seen == []  # the token went nowhere


def test_an_insecure_dev_call_sends_its_token_to_this_machine_or_https_alone(dev):
    reply = dev.call(fetching(load("order-select-mmn"), "http://192.0.2.7/fhir"))  # plain http elsewhere
    assert reply.status_code == 412 and "neither on this machine nor https" in outcome(reply)
    base = load("order-select-mmn")
    fake = FakeFhir(base)
    try:
        assert dev.call(fetching(base, fake.url)).status_code == 200 and fake.seen  # loopback: fetched
    finally:
        fake.close()
