"""The `[mqtt]` table of agent.toml: where to publish, how to authenticate, how much to keep in flight.

Static checks happen here (pydantic, strict like every table); checks that need the agent's profile
(production refuses shortcuts) are in `profile_problems()`, because a table is validated on its own.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from ...core.config.errors import Problem
from ...core.config.schema_base import Strict, is_loopback_host
from ...security.secrets import SecretRef
from .topics import DEFAULT_STATUS_TEMPLATE, DEFAULT_TOPIC_TEMPLATE, check_template

MQTT_MAX_PAYLOAD = 268_435_455  # the protocol's limit (remaining length of a packet)


class MqttTls(Strict):
    """Present = TLS on. The server certificate is always verified against `ca_file` (or the system
    store when it is absent); `insecure` only skips the host name check, and production refuses it."""

    ca_file: str | None = None
    cert_file: str | None = None  # client certificate (PEM), for brokers with require_certificate
    key_file: str | None = None
    key_password: SecretRef | None = None
    # "tpm": key_file is a TPM-wrapped blob (TSS2 PRIVATE KEY, `create_tls_key`) and the handshake is signed
    # in the TPM through the tpm2-openssl provider, which the agent enables at start (docs/keystore.md).
    key: Literal["file", "tpm"] = "file"
    insecure: bool = False

    @field_validator("ca_file", "cert_file", "key_file")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError("expected an absolute path")
        return value

    @model_validator(mode="after")
    def _pair(self) -> MqttTls:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together (a client certificate needs its key)")
        if self.key_password is not None and self.key_file is None:
            raise ValueError("key_password needs key_file")
        if self.key == "tpm" and self.key_file is None:
            raise ValueError('key = "tpm" needs cert_file and key_file (the TSS2 PRIVATE KEY blob)')
        if self.key == "tpm" and self.key_password is not None:
            raise ValueError('key = "tpm" takes no key_password (the TPM key has an empty auth value)')
        return self


class MqttSection(Strict):
    host: str = Field(min_length=1, max_length=253)
    port: int | None = Field(default=None, ge=1, le=65535)  # default 8883 with TLS, 1883 without
    protocol: Literal["5", "3.1.1"] = "5"
    client_id: str | None = Field(default=None, min_length=1, max_length=128)  # default: agent.device_id
    # Placeholders: {device} {provider} {service} {resource} {stream} (= provider/service/resource).
    topic: str = DEFAULT_TOPIC_TEMPLATE
    status_topic: str = DEFAULT_STATUS_TEMPLATE  # retained "online"/"offline", also the last will
    # QoS 1 is what makes "deleted only on PUBACK" mean something; 0 must be asked for (it can lose readings).
    qos: Literal[0, 1] = 1
    username: str | None = Field(default=None, min_length=1, max_length=256)
    password: SecretRef | None = None
    tls: MqttTls | None = None
    keepalive: int = Field(default=30, ge=5, le=65535)
    connect_timeout: float = Field(default=10.0, gt=0, le=120, allow_inf_nan=False)
    # A broker that stops acknowledging (but keeps the TCP connection) is given up on after this long.
    ack_timeout: float = Field(default=30.0, gt=0, le=600, allow_inf_nan=False)
    batch: int = Field(default=500, ge=1, le=10_000)  # records taken from the outbox at once
    inflight: int = Field(default=100, ge=1, le=65_535)  # PUBLISHes awaiting their PUBACK at once
    # Larger sealed payloads are never sent (and are counted as rejected): set it to the broker's
    # message_size_limit, because an MQTT 3.1.1 broker drops an oversize message yet still acknowledges it.
    max_payload: int = Field(default=256 * 1024, ge=1024, le=MQTT_MAX_PAYLOAD)

    @field_validator("topic", "status_topic")
    @classmethod
    def _template(cls, value: str, info: ValidationInfo) -> str:
        return check_template(value, data=info.field_name == "topic")

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        if any(c.isspace() for c in value) or "/" in value:
            raise ValueError("expected a host name or an IP address")
        return value

    @model_validator(mode="after")
    def _credentials(self) -> MqttSection:
        if self.password is not None and self.username is None:
            raise ValueError("password needs username")
        return self

    @property
    def effective_port(self) -> int:
        return self.port or (8883 if self.tls is not None else 1883)


def profile_problems(section: MqttSection, profile: str, prefix: str = "mqtt") -> list[Problem]:
    """What the production profile refuses: unverified TLS, and plain TCP (or a password) off-host."""
    if profile != "production":
        return []
    problems = []
    if section.tls is not None and section.tls.insecure:
        problems.append(Problem(f"{prefix}.tls.insecure", "refused in the production profile"))
    if section.tls is None and not is_loopback_host(section.host):
        problems.append(
            Problem(f"{prefix}.tls", "TLS is required in the production profile for a broker off this host")
        )
    return problems
