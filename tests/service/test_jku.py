"""A token naming a `jku` (issue 30: the HL7 sandbox sends one with every token): verified with the
keys at that URL when the trust file lists it for the issuer (or, where the issuer's key file has the
token's `kid`, with that key, fetching nothing: an air-gapped hospital reaches no jku), refused and
never fetched otherwise."""

import json
import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from helpers import Keys, es384

from ivig_advisor.engine.base.errors import TrustInvalid, Unauthorized
from ivig_advisor.engine.service.jwtauth import Trust

ISS = "https://ehr.example.org/"
AUD = "http://127.0.0.1:8080/cds-services/ivig-order"
LISTED = "https://sandbox.cds-hooks.org/.well-known/jwks.json"


@pytest.fixture
def keys(tmp_path):
    return Keys(tmp_path)


@pytest.fixture
def fetched(monkeypatch, keys):
    """The URLs a JWK Set is fetched from; each answers with the issuer's keys."""
    seen = []

    def fetch_data(client):
        seen.append(client.uri)
        return json.loads(keys.jwks.read_text())

    monkeypatch.setattr(jwt.PyJWKClient, "fetch_data", fetch_data)
    return seen


def trust_with(keys, tmp_path, extra="") -> Trust:
    path = tmp_path / "trust-jku.yaml"
    path.write_text(f"issuers:\n  - iss: {ISS}\n    jwks: ehr-jwks.json\n{extra}")
    return Trust.load(path)


def token(keys, **headers) -> str:
    now = int(time.time())
    claims = {"iss": ISS, "aud": AUD, "exp": now + 300, "iat": now, "jti": str(uuid.uuid4())}
    return "Bearer " + es384(keys, claims, **headers)


def verify(trust, bearer):
    return trust.verify(bearer, AUD, lambda jti, exp: True)


def test_a_listed_jku_whose_kid_is_in_the_key_file_verifies_and_is_not_fetched(keys, tmp_path, monkeypatch):
    """Air-gapped: the sandbox's key given as a file, its jku listed, its URL out of reach."""
    seen = []

    def unreachable(client):
        seen.append(client.uri)
        raise jwt.PyJWKClientConnectionError("no route to host")

    monkeypatch.setattr(jwt.PyJWKClient, "fetch_data", unreachable)
    trust = trust_with(keys, tmp_path, f"    jku: [{LISTED}]\n")
    assert verify(trust, token(keys, jku=LISTED))["iss"] == ISS
    assert seen == []


def test_a_listed_jku_is_fetched_for_a_kid_the_key_file_lacks(keys, tmp_path, monkeypatch):
    other = ec.generate_private_key(ec.SECP384R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(other.public_key()))
    jwk.update(kid="at-the-jku-only", alg="ES384", use="sig")
    seen = []

    def fetch_data(client):
        seen.append(client.uri)
        return {"keys": [jwk]}

    monkeypatch.setattr(jwt.PyJWKClient, "fetch_data", fetch_data)
    trust = trust_with(keys, tmp_path, f"    jku: [{LISTED}]\n")
    now = int(time.time())
    claims = {"iss": ISS, "aud": AUD, "exp": now + 300, "iat": now, "jti": str(uuid.uuid4())}
    signed = jwt.encode(claims, other, algorithm="ES384", headers={"kid": "at-the-jku-only", "jku": LISTED})
    assert verify(trust, "Bearer " + signed)["iss"] == ISS
    assert seen == [LISTED]


def test_a_jku_not_listed_is_refused_and_never_fetched(keys, tmp_path, fetched):
    trust = trust_with(keys, tmp_path, f"    jku: [{LISTED}]\n")
    with pytest.raises(Unauthorized, match="nor on its jku list"):
        verify(trust, token(keys, jku="https://evil.example.org/jwks.json"))
    assert fetched == []


def test_without_a_jku_list_a_jku_is_refused_as_before(keys, tmp_path, fetched):
    with pytest.raises(Unauthorized):
        verify(trust_with(keys, tmp_path), token(keys, jku=LISTED))
    assert fetched == []
    assert verify(trust_with(keys, tmp_path), token(keys))["iss"] == ISS  # no jku: the file's keys


@pytest.mark.parametrize(
    "listed", ["[http://sandbox.example.org/jwks.json]", "[https:///jwks.json]", "[jwks.json]", "{a: 1}", "[1]"]
)
def test_a_jku_list_of_anything_but_https_urls_is_refused_at_start(keys, tmp_path, listed):
    with pytest.raises(TrustInvalid, match="jku"):
        trust_with(keys, tmp_path, f"    jku: {listed}\n")
