"""Trusting CDS clients: the signed JWT of CDS Hooks 2.0 (section "Trusting CDS Clients").

Each call carries `Authorization: Bearer <JWT>`, signed by the EHR with an
asymmetric key. A token is accepted only when its issuer (`iss`) is one the
service was told to trust, its signature verifies against that issuer's JWK
Set (a file, or a URL configured here: a `jku` in the token is used only when
it is that URL or one of the issuer's `jku` allowlist, never fetched on the
token's word), its `kid` names a key of
the set, its algorithm is an asymmetric one (never `none` or HMAC), `aud`
is the endpoint being called, `exp` has not passed, `iat` is not in the
future, and its `jti` has not been seen before (replay), across all workers.

The trust file (YAML or JSON):

    issuers:
      - iss: https://ehr.example.org/
        jwks: /etc/ivig/ehr-jwks.json          # or https://ehr.example.org/jwks.json
        tenant: 2ddd6c3a                       # optional: the only tenant accepted
        jku:                                   # optional: the JWK Set URLs its tokens may name
          - https://ehr.example.org/.well-known/jwks.json
        fhir_servers:                          # the FHIR servers its calls' access tokens may go to
          - https://ehr.example.org/fhir

The service sends a call's access token only to a `fhirServer` on its issuer's `fhir_servers`
list (https base URLs; a call's server is on it when it is the base or below it): a trusted
caller cannot make the service take its token to any other URL. An issuer without the list
gets nothing fetched (its EHR must prefetch).

A token whose header names a `jku` is verified with the keys at that URL when it is the issuer's
configured JWK Set or on its `jku` list (each an https URL with a host, fetched and cached as the
configured one is); any other `jku` is refused and never fetched (CDS Hooks 2.0: a service SHOULD
keep an allowlist of JWK Set URLs). The HL7 sandbox sends a `jku` with every token. Where the
issuer's keys are a file that has the token's `kid`, that key verifies it and nothing is fetched:
a hospital that reaches no jku (air-gapped) still takes the sandbox's tokens with its key as a file.

A JWK Set URL must be https, with a host (its scheme in any case: HTTPS:// is
https): keys fetched over plain http could be anyone's. A `file:` URL names a
file on this machine (file:///etc/ivig/jwks.json); any other text is a path,
relative to the trust file. A tenant, in the trust file and in a token, is a
string, compared exactly: the number 1 is not the tenant "1".
"""

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple
from urllib.parse import unquote, urlsplit

from ..base.errors import SourceError, TrustInvalid, Unauthorized
from ..base.escape import LONE_SURROGATE
from ..base.yamlsrc import load_one

ALGORITHMS = ["ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512"]
LEEWAY = 30  # seconds of clock skew allowed on exp and iat
MAX_LIFETIME = 3600  # best practice: a token lives no more than an hour
_URL = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):(//)?")  # a URL's scheme (RFC 3986), and whether an authority follows


@dataclass
class Issuer:
    iss: str
    jwks: str
    tenant: Optional[str] = None
    jku: Tuple[str, ...] = ()  # the JWK Set URLs its tokens may name in their header (https)
    fhir_servers: Tuple[str, ...] = ()  # the FHIR server base URLs its calls' tokens may go to (https)

    @property
    def remote(self) -> bool:
        """Whether its JWK Set is fetched from a URL (else read from a file)."""
        return self.jwks.startswith("https://")


def caller_of(claims: dict) -> tuple:
    """(issuer, tenant) of a trusted token's claims: whom the service answers, and to whom the
    cards it issues belong (service/feedback.py). The tenant is a string or None (Trust.verify
    refuses any other)."""
    return claims["iss"], claims.get("tenant")


def is_text(value) -> bool:
    """Whether `value` is a string that can be stored and said: no lone surrogate (which JSON
    can write as an escape, and no UTF-8 or UTF-16 text holds: escape.LONE_SURROGATE)."""
    return isinstance(value, str) and not LONE_SURROGATE.search(value)


def key_location(jwks: str, trust_file: Path) -> Tuple[str, bool]:
    """(where, remote) of an issuer's JWK Set as the trust file gives it: an https URL with a host
    (its scheme lower-cased), a `file:` URL's path, or a path relative to the trust file. ValueError
    saying why for a URL that is none of these: plain http, no host, another scheme, another
    machine's file."""
    scheme = _URL.match(jwks)
    kind = scheme.group(1).lower() if scheme else None
    if kind is None or (kind not in ("http", "https", "file") and not scheme.group(2)):
        return str((trust_file.parent / jwks).resolve()), False  # keys:v2.json is a file name
    try:
        parts = urlsplit(jwks)
        parts.port  # noqa: B018 (read for its ValueError: a port that is no number)
    except ValueError as exc:
        raise ValueError(f"is not a URL that can be read ({exc})") from None
    if kind == "http":
        raise ValueError(
            "is plain http, where anyone on the way could give their own keys: give an https URL or a file"
        )
    if kind == "https":
        if not parts.hostname:
            raise ValueError("is an https URL with no host: give https://host/path")
        return "https" + jwks[len(kind) :], True
    if kind == "file":
        if parts.netloc not in ("", "localhost"):
            raise ValueError(f"is a file on another machine ({parts.netloc}): give a file of this one")
        if not parts.path.startswith("/"):
            raise ValueError("is a file URL without an absolute path: give file:///path or a path")
        return str(Path(unquote(parts.path)).resolve()), False
    raise ValueError(f"is a {kind} URL: give an https URL or a file")


def _https_list(node: dict, key: str, i: int, path) -> Tuple[str, ...]:
    """An issuer's allowlist of URLs (`jku`, `fhir_servers`) as the trust file gives it: https URLs
    with a host, kept as written (a token names a jku exactly); TrustInvalid for anything else."""
    listed = node.get(key, [])
    if isinstance(listed, str):
        listed = [listed]
    if not isinstance(listed, list):
        raise TrustInvalid(f"{path}: issuers[{i}] ({node['iss']}): '{key}' must be a list of https URLs")
    for url in listed:
        try:
            remote = isinstance(url, str) and key_location(url, Path(path))[1]
        except ValueError as exc:
            raise TrustInvalid(f"{path}: issuers[{i}] ({node['iss']}): the {key} {url} {exc}") from None
        if not remote:
            raise TrustInvalid(f"{path}: issuers[{i}] ({node['iss']}): the {key} {url!r} is not an https URL")
    return tuple(listed)


def fhir_server_refused(server, allowed: Tuple[str, ...]) -> Optional[str]:
    """Why a call's `fhirServer` may not have its access token (None: it may): not a URL, or at
    none of the `allowed` base URLs (the same scheme, host and port, and a path at or below)."""
    from .paging import on_server

    if not isinstance(server, str):
        return "fhirServer is not a URL"
    if not any(on_server(server, base) for base in allowed):
        return "its fhirServer is not on its issuer's fhir_servers list in the trust file, so no token goes there"
    return None


class Trust:
    """The issuers a service trusts, with their keys."""

    def __init__(self, issuers: List[Issuer], source: str = ""):
        self.issuers: Dict[str, Issuer] = {i.iss: i for i in issuers}
        self.source = source
        self._keys: Dict[str, object] = {}  # iss -> PyJWKSet or PyJWKClient

    @classmethod
    def load(cls, path) -> "Trust":
        try:
            data = load_one(Path(path).read_text(encoding="utf-8-sig"), str(path))
        except (OSError, UnicodeDecodeError) as exc:
            raise TrustInvalid(f"{path}: cannot read the trust file: {exc}") from None
        except SourceError as exc:
            raise TrustInvalid(str(exc)) from None
        if not isinstance(data, dict) or not isinstance(data.get("issuers"), list) or not data["issuers"]:
            raise TrustInvalid(f"{path}: needs 'issuers', a list of {{iss, jwks}}")
        issuers = []
        for i, node in enumerate(data["issuers"]):
            if (
                not isinstance(node, dict)
                or not isinstance(node.get("iss"), str)
                or not isinstance(node.get("jwks"), str)
            ):
                raise TrustInvalid(f"{path}: issuers[{i}] needs 'iss' and 'jwks' (a JWK Set file or https URL)")
            if not is_text(node["iss"]) or any(c < " " or "\x7f" <= c <= "\x9f" for c in node["iss"]):
                raise TrustInvalid(f"{path}: issuers[{i}]: the iss holds a control character; an issuer is a URL")
            if node.get("tenant") is not None and not isinstance(node["tenant"], str):
                raise TrustInvalid(
                    f"{path}: issuers[{i}] ({node['iss']}): the tenant must be a string (quote it): "
                    "a token's tenant is compared with it exactly"
                )
            try:
                where, remote = key_location(node["jwks"], Path(path))
            except ValueError as exc:
                raise TrustInvalid(f"{path}: issuers[{i}] ({node['iss']}): the JWK Set {node['jwks']} {exc}") from None
            if not remote and not Path(where).is_file():
                raise TrustInvalid(f"{path}: issuers[{i}]: no JWK Set file {where}")
            jku, servers = _https_list(node, "jku", i, path), _https_list(node, "fhir_servers", i, path)
            issuers.append(Issuer(node["iss"], where, node.get("tenant"), jku, servers))
        trust = cls(issuers, str(path))
        for issuer in issuers:
            if not issuer.remote:
                trust._key_source(issuer)  # a bad key file is known at start, not at the first call
        return trust

    def _key_source(self, issuer: Issuer, jku: Optional[str] = None, kid: Optional[str] = None):
        """The keys a token of `issuer` is verified with: those of the JWK Set its header names
        (`jku`, one the trust file allows), else the issuer's configured set. A key file that has
        the token's `kid` serves whatever the jku: its keys are trusted for the issuer anyway, and
        an air-gapped hospital reaches no jku (the HL7 sandbox names one in every token)."""
        import jwt

        if jku is not None and jku != issuer.jwks and not (kid is not None and self._has_in_file(issuer, kid)):
            if jku not in self._keys:
                self._keys[jku] = jwt.PyJWKClient(jku, cache_keys=True, lifespan=300, timeout=5)
            return self._keys[jku]
        source = self._keys.get(issuer.iss)
        if source is None:
            if issuer.remote:
                source = jwt.PyJWKClient(issuer.jwks, cache_keys=True, lifespan=300, timeout=5)
            else:
                try:
                    source = jwt.PyJWKSet.from_dict(json.loads(Path(issuer.jwks).read_text(encoding="utf-8")))
                except Exception as exc:
                    raise TrustInvalid(f"{issuer.jwks}: not a JWK Set: {exc}") from None
            self._keys[issuer.iss] = source
        return source

    def _has_in_file(self, issuer: Issuer, kid: str) -> bool:
        """Whether the issuer's keys are given as a file and one of them is `kid`."""
        if issuer.remote:
            return False
        return any(key.key_id == kid for key in self._key_source(issuer).keys)

    def verify(self, authorization: Optional[str], audience: str, first_use) -> dict:
        """The claims of a trusted token for a call to `audience` (the endpoint's URL);
        Unauthorized otherwise. `first_use(jti, exp)` is False for a replayed token."""
        import jwt

        if not authorization or not authorization.startswith("Bearer "):
            raise Unauthorized("no bearer token")
        token = authorization[len("Bearer ") :].strip()
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(token, options={"verify_signature": False})
        except Exception as exc:
            raise Unauthorized(f"not a JWT: {type(exc).__name__}") from None
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in ALGORITHMS:
            raise Unauthorized(f"algorithm {alg!r} is not accepted (asymmetric only, never none or HMAC)")
        if header.get("typ", "JWT") != "JWT" or not isinstance(kid, str):
            raise Unauthorized("the header needs typ JWT and a kid")
        iss = claims.get("iss") if isinstance(claims, dict) else None
        issuer = self.issuers.get(iss) if isinstance(iss, str) else None
        if issuer is None:
            raise Unauthorized("issuer not trusted")
        jku = header.get("jku")
        if jku is not None and jku != issuer.jwks and jku not in issuer.jku:
            raise Unauthorized("jku is neither the issuer's configured JWK Set nor on its jku list")
        source = self._key_source(issuer, jku, kid)
        try:
            if isinstance(source, jwt.PyJWKClient):
                key = source.get_signing_key(kid).key
            else:
                key = next((k.key for k in source.keys if k.key_id == kid), None)
                if key is None:
                    raise Unauthorized("no key with this kid")
            claims = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=audience,
                issuer=issuer.iss,
                leeway=LEEWAY,
                options={"require": ["iss", "aud", "exp", "iat", "jti"]},
            )
        except Unauthorized:
            raise
        except Exception as exc:  # PyJWTError, or a TypeError when the alg does not fit the kid's key
            raise Unauthorized(f"token refused: {type(exc).__name__}") from None
        if (
            not all(isinstance(claims[k], (int, float)) and not isinstance(claims[k], bool) for k in ("iat", "exp"))
            or claims["iat"] > time.time() + LEEWAY
            or claims["exp"] - claims["iat"] > MAX_LIFETIME
        ):
            raise Unauthorized("iat in the future, or a lifetime over an hour")
        if claims.get("tenant") is not None and not is_text(claims["tenant"]):
            raise Unauthorized("the tenant is no string (a tenant is text, compared exactly)")
        if issuer.tenant is not None and claims.get("tenant") != issuer.tenant:
            raise Unauthorized("tenant not trusted")
        if not is_text(claims["jti"]):
            raise Unauthorized("the jti is no string")
        if not first_use(f"{issuer.iss} {claims['jti']}", claims["exp"]):
            raise Unauthorized("jti already used (a replay)")
        return claims
