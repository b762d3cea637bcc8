"""TLS to a real Mosquitto: the server is verified against the CA; client certificates where required."""

from __future__ import annotations

from agent.core.runtime import State

from .broker import Mosquitto, Pki
from .conftest import Harness, reading, wait_until


def test_verified_tls_delivers(broker: Mosquitto, pki: Pki, harness: Harness) -> None:
    harness.append([reading("truck", "env", "t", 1)])
    harness.start(host="localhost", port=broker.tls_port, tls={"ca_file": str(pki.ca)})
    harness.wait_drained()


def test_a_certificate_from_another_ca_is_refused_and_reported(
    broker: Mosquitto, pki: Pki, harness: Harness
) -> None:
    harness.append([reading("truck", "env", "t", 1)])
    harness.start(host="localhost", port=broker.tls_port, tls={"ca_file": str(pki.other_ca)})
    wait_until(lambda: harness.health().state is State.FAILED)
    assert "certificate" in harness.health().detail and "do not trust" in harness.health().detail
    assert harness.depth() == 1


def test_a_host_name_not_in_the_certificate_is_refused(broker: Mosquitto, pki: Pki, harness: Harness) -> None:
    # The test server certificate names localhost and 127.0.0.1 only.
    harness.start(host="127.0.0.2", port=broker.tls_port, tls={"ca_file": str(pki.ca)})
    wait_until(lambda: harness.health().state is State.FAILED)
    assert "TLS" in harness.health().detail or "refused" in harness.health().detail


def test_client_certificate_when_the_broker_requires_one(
    broker: Mosquitto, pki: Pki, harness: Harness
) -> None:
    harness.append([reading("truck", "env", "t", 1)])
    tls = {"ca_file": str(pki.ca), "cert_file": str(pki.client_cert), "key_file": str(pki.client_key)}
    harness.start(host="localhost", port=broker.mtls_port, tls=tls)
    harness.wait_drained()


def test_no_client_certificate_is_refused(broker: Mosquitto, pki: Pki, harness: Harness) -> None:
    harness.start(host="localhost", port=broker.mtls_port, tls={"ca_file": str(pki.ca)})
    wait_until(lambda: harness.health().state is State.FAILED)
    assert harness.health().detail
