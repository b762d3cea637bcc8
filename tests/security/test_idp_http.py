"""HTTP to the IdP: TLS verified against a configured CA, no redirects, bounded size, safe messages."""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.security.idp_http import HttpSettings, IdPError, IdPHttp


class Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "http://127.0.0.1:1/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path == "/big-declared":
            self.send_response(200)
            self.send_header("Content-Length", str(10 << 20))
            self.end_headers()
            return
        body = json.dumps({"ok": True}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None = None,
    *,
    ca: bool,
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    issuer_name, signer = issuer or (name, key)
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
    return builder.sign(signer, hashes.SHA256())


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("test CA", ca_key, ca=True)
    server = _certificate("127.0.0.1", server_key, (ca.subject, ca_key), ca=False)
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "server.pem").write_bytes(server.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "server.key").write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "server.pem", tmp_path / "server.key")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{httpd.server_address[1]}", tmp_path / "ca.pem"
    httpd.shutdown()
    httpd.server_close()


def test_tls_is_verified_against_the_configured_ca(tls_server: tuple[str, Path]) -> None:
    url, ca_file = tls_server
    assert IdPHttp(HttpSettings(timeout=2.0, ca_file=str(ca_file))).get_json(url + "/doc") == {"ok": True}
    with pytest.raises(IdPError, match="cannot reach"):
        IdPHttp(HttpSettings(timeout=2.0)).get_json(url + "/doc")  # the system CAs do not know ours


def test_redirects_and_oversized_answers_are_refused(tls_server: tuple[str, Path]) -> None:
    url, ca_file = tls_server
    http = IdPHttp(HttpSettings(timeout=2.0, ca_file=str(ca_file), max_bytes=4096))
    with pytest.raises(IdPError, match="redirect"):
        http.get_json(url + "/redirect")
    with pytest.raises(IdPError, match="more than 4096 bytes"):
        http.get_json(url + "/big-declared")


def test_plain_http_only_when_allowed_and_messages_hide_query_and_userinfo() -> None:
    http = IdPHttp(HttpSettings(timeout=1.0))
    with pytest.raises(IdPError, match="expected https") as caught:
        http.get_json("http://user:pw@127.0.0.1:9/x?code=s3cret")
    assert "s3cret" not in str(caught.value) and "pw" not in str(caught.value)
    with pytest.raises(IdPError, match="cannot reach"):
        IdPHttp(HttpSettings(timeout=1.0, allow_plain_http=True)).get_json("http://127.0.0.1:9/x")
    with pytest.raises(IdPError):
        http.get_json("file:///etc/passwd")
