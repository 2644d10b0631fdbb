"""How `ivig serve` listens (issue 30, transport and trust): https with a certificate
(--ssl-certfile/--ssl-keyfile), never plain http beyond loopback unless a reverse proxy terminates TLS
(--behind-proxy, whose X-Forwarded-* headers are taken from the proxy alone), and an insecure-dev app
that answers loopback alone wherever it runs, under `ivig serve` or under uvicorn directly.

Over real HTTP(S): the real `ivig serve` (or uvicorn) in a process of its own; the certificate is
self-signed, made here, and the client trusts it alone."""

import datetime as dt
import ipaddress
import ssl
import subprocess
import time

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from helpers import (
    IVIG,
    Server,
    claims,
    es384,
    free_port,
    insecure_dev_on_every_address,
    ivig,
    load,
    outcome,
    outside_address,
    plain_env,
)

# -- a certificate, and `ivig serve` over https ----------------------------------------------


def self_signed(tmp_path, name="cert"):
    """(certificate file, key file) of a self-signed certificate for 127.0.0.1 and localhost."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ivig test")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / f"{name}.pem", tmp_path / f"{name}-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


class HttpsServer:
    """`ivig serve ARGS` with the certificate `cert` in a process of its own, answering over https
    (helpers.Server waits for plain http)."""

    def __init__(self, tmp_path, cert, *args):
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.trusting = ssl.create_default_context(cafile=str(cert))
        self.log = tmp_path / "serve.stderr"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [*IVIG, "serve", "--port", str(self.port), "--feedback-db", str(tmp_path / "f.sqlite"), *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=str(tmp_path),
                env=plain_env(),
            )
        deadline = time.monotonic() + 90
        while not self._answers():
            assert self.proc.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, "ivig serve did not answer over https: " + self.log.read_text()
            time.sleep(0.2)

    def _answers(self) -> bool:
        try:
            return self.get("/healthz").status_code == 200
        except httpx.HTTPError:
            return False

    def get(self, path, **kw) -> httpx.Response:
        return httpx.get(self.url + path, verify=self.trusting, timeout=30, **kw)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


@pytest.fixture
def certificate(tmp_path):
    return self_signed(tmp_path)


def test_serve_with_a_certificate_speaks_https_and_its_public_url_is_https(tmp_path, keys, certificate):
    cert, key = certificate
    server = HttpsServer(tmp_path, cert, "--trust", keys.trust, "--ssl-certfile", cert, "--ssl-keyfile", key)
    try:
        token = es384(keys, claims(server, "/cds-services"))  # aud: https://127.0.0.1:PORT/cds-services
        reply = server.get("/cds-services", headers={"Authorization": "Bearer " + token})
        assert reply.status_code == 200, reply.text
        assert "ivig-patient" in {service["id"] for service in reply.json()["services"]}
        with pytest.raises(httpx.HTTPError):  # no plain http on the port
            httpx.get(f"http://127.0.0.1:{server.port}/healthz", timeout=10)
    finally:
        server.stop()
    assert f"https://127.0.0.1:{server.port}/cds-services" in server.log.read_text()


def test_serve_on_every_address_with_a_certificate_serves_https(tmp_path, keys, certificate):
    cert, key = certificate
    server = HttpsServer(
        tmp_path, cert, "--host", "0.0.0.0", "--trust", keys.trust, "--ssl-certfile", cert, "--ssl-keyfile", key
    )
    try:
        assert server.get("/healthz").json() == {"status": "ok"}
        assert server.get("/cds-services").status_code == 401  # a token is still needed
    finally:
        server.stop()


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.2", "ivig.example.org"])
def test_serve_beyond_loopback_without_tls_or_a_proxy_is_refused(tmp_path, keys, host):
    proc = ivig("serve", "--host", host, "--port", free_port(), "--trust", keys.trust, "--feedback-db",
                tmp_path / "f.sqlite", timeout=60)  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "--ssl-certfile" in proc.stderr and "--behind-proxy" in proc.stderr
    assert not (tmp_path / "f.sqlite").exists()


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1"])
def test_loopback_addresses_are_loopback(host):
    from ivig_advisor.engine.service.app import is_loopback

    assert is_loopback(host)


def test_a_proxy_without_its_public_url_is_refused(tmp_path, keys):
    proc = ivig("serve", "--host", "0.0.0.0", "--behind-proxy", "--trust", keys.trust, "--port", free_port(),
                "--feedback-db", tmp_path / "f.sqlite", timeout=60)  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "--public-url" in proc.stderr


def test_a_key_without_its_certificate_is_refused(tmp_path, certificate):
    _cert, key = certificate
    proc = ivig("serve", "--insecure-dev", "--ssl-keyfile", key, "--port", free_port(), timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "--ssl-certfile" in proc.stderr


def garbage(tmp_path, certificate):
    path = tmp_path / "garbage.pem"
    path.write_text("-----BEGIN CERTIFICATE-----\nnot one\n-----END CERTIFICATE-----\n")
    return path


def missing(tmp_path, certificate):
    return tmp_path / "missing.pem"


def a_folder(tmp_path, certificate):
    return tmp_path


def another_key(tmp_path, certificate):
    return self_signed(tmp_path, "other")[1]


@pytest.mark.parametrize(
    "which, bad",
    [
        ("cert", garbage),
        ("cert", missing),
        ("cert", a_folder),
        ("key", garbage),
        ("key", missing),
        ("key", another_key),
    ],
)
def test_an_unusable_certificate_or_key_is_a_clean_error_before_listening(tmp_path, certificate, which, bad):
    cert, key = certificate
    wrong = bad(tmp_path, certificate)
    cert, key = (wrong, key) if which == "cert" else (cert, wrong)
    port = free_port()
    proc = ivig("serve", "--insecure-dev", "--port", port, "--ssl-certfile", cert, "--ssl-keyfile", key,
                "--feedback-db", tmp_path / "f.sqlite", timeout=60)  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert wrong.name in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "f.sqlite").exists()


# -- behind a reverse proxy: X-Forwarded-For from the proxy alone ---------------------------------


def proxied_call(server, client="203.0.113.9") -> httpx.Response:
    """A call the way a reverse proxy on this machine forwards one from `client`."""
    return server.call(load("order-select-mmn"), headers={"X-Forwarded-For": client, "X-Forwarded-Proto": "https"})


def test_behind_a_proxy_the_client_it_names_is_the_caller(tmp_path):
    # an insecure-dev service answers loopback callers alone: the proxy's word that the caller is
    # 203.0.113.9 is taken (it comes from 127.0.0.1, the default --forwarded-allow-ips), so 403
    server = Server(tmp_path, "--insecure-dev", "--behind-proxy")
    try:
        reply = proxied_call(server)
        assert reply.status_code == 403, reply.text
        assert "loopback" in outcome(reply)
        assert proxied_call(server, client="127.0.0.1").status_code == 200
    finally:
        server.stop()


@pytest.mark.parametrize("options", [(), ("--behind-proxy", "--forwarded-allow-ips", "192.0.2.99")])
def test_forwarded_headers_from_anyone_but_the_proxy_are_not_taken(tmp_path, options):
    server = Server(tmp_path, "--insecure-dev", *options)
    try:
        assert proxied_call(server).status_code == 200  # the caller is 127.0.0.1, whatever it says
    finally:
        server.stop()


# -- insecure-dev answers loopback alone, in the app itself ------------------------------------------


def test_insecure_dev_app_under_uvicorn_on_every_address_answers_loopback_alone(tmp_path):
    outside = outside_address()
    if outside is None:
        pytest.skip("this machine has no address but loopback")
    with insecure_dev_on_every_address(tmp_path / "f.sqlite") as port:
        for path in ("/cds-services", "/healthz"):
            reply = httpx.get(f"http://{outside}:{port}{path}", timeout=30)
            assert reply.status_code == 403, reply.text
            assert "loopback" in outcome(reply)
        reply = httpx.post(
            f"http://{outside}:{port}/cds-services/ivig-order", json=load("order-select-mmn"), timeout=30
        )
        assert reply.status_code == 403 and "cards" not in reply.json()
        assert httpx.get(f"http://127.0.0.1:{port}/cds-services", timeout=30).status_code == 200


def test_insecure_dev_on_a_public_address_is_still_refused_by_serve(tmp_path):
    cert, key = self_signed(tmp_path)  # TLS or not, no token is needed: loopback alone
    proc = ivig("serve", "--insecure-dev", "--host", "0.0.0.0", "--port", free_port(), "--ssl-certfile", cert,
                "--ssl-keyfile", key, "--feedback-db", tmp_path / "f.sqlite", timeout=60)  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "loopback" in proc.stderr
