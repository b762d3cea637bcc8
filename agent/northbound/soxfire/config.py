"""The [soxfire] configuration table: where to publish, how to trust the server, what to mirror."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from ...core.config.schema_base import Name, Strict
from ...security.secrets import SecretRef
from .wire import DEVICE_TYPES

SECTION = "soxfire"

# A bare or full JID, loosely checked (localpart@domain[/resource]): the server has the last word.
Jid = Annotated[str, Field(pattern=r"^[^@/\s]+@[^@/\s]+(/\S+)?$", max_length=1023)]
Domain = Annotated[str, Field(pattern=r"^[^@/\s]+$", max_length=1023)]
# No control characters (a NUL cannot be opened at all, a newline would forge log lines); PATH_MAX.
AbsolutePath = Annotated[str, Field(pattern=r"^/[^\x00-\x1f\x7f]+$", max_length=4096)]
DeviceType = Literal[DEVICE_TYPES]  # type: ignore[valid-type]  (a tuple of literals is what we mean)


class BridgeDevice(Strict):
    """A remote SOX device mirrored into the model as a provider."""

    device: str = Field(min_length=1, max_length=256)  # its node prefix: <device>_meta / <device>_data
    provider: Name | None = None  # default: the device name made into a valid provider name
    pubsub: Domain | None = None  # default: this server's pubsub service (another one goes over s2s)


class Actuation(Strict):
    """transducerSetValue items on our _data nodes, from these JIDs only. Off unless enabled."""

    enabled: bool = False
    allow: list[Jid] = []

    @model_validator(mode="after")
    def _someone_allowed(self) -> Actuation:
        if self.enabled and not self.allow:
            raise ValueError("actuation is enabled but 'allow' names no JID")
        return self


class Frames(Strict):
    """Anonymized camera frames (the anonymizer's `camera/<id>/frame` records) on SOX.

    auto: uploaded by XEP-0363 when the server offers it (URL and digest in the item), else inline while
    the item stays under max_item_bytes, else skipped and counted. inline: never uploaded. off: frames are
    not published to SOX at all (MQTT or the status page may still carry them)."""

    mode: Literal["auto", "inline", "off"] = "auto"
    upload_timeout: float = Field(default=30.0, gt=0, le=600)


class SoxfireSection(Strict):
    enabled: bool = True
    jid: Jid
    # password: SASL SCRAM/PLAIN with `password`. certificate: SASL EXTERNAL (XEP-0178), the server takes
    # the account from the TLS client certificate (cert_file), and no password exists at all.
    login: Literal["password", "certificate"] = "password"
    password: SecretRef | None = None
    host: str | None = Field(default=None, max_length=253)  # default: the JID's domain
    port: int = Field(default=5222, ge=1, le=65535)
    pubsub: Domain | None = None  # default: "pubsub." + the JID's domain
    # starttls: STARTTLS required and verified; direct: TLS from the first byte (port 5223);
    # plaintext: no TLS at all, the password crosses the network readable — only when said explicitly.
    tls: Literal["starttls", "direct", "plaintext"] = "starttls"
    ca_file: AbsolutePath | None = None  # trust anchors for the server certificate (default: system CAs)
    pinned_cert: AbsolutePath | None = None  # accept exactly this certificate (PEM), whatever its issuer
    # Our TLS client certificate (PEM; intermediates after it) and its key: with login = "certificate" it
    # is the login; with a password it is only shown in the handshake (servers requiring mutual TLS).
    cert_file: AbsolutePath | None = None
    key_file: AbsolutePath | None = None
    # "tpm": key_file is the TPM-wrapped blob (TSS2 PRIVATE KEY, `msec-agent keys tls-key`) and the
    # handshake is signed in the TPM (tpm2-openssl provider, enabled by the agent at start; docs/keystore.md).
    key: Literal["file", "tpm"] = "file"
    key_password: SecretRef | None = None  # an encrypted PEM key file's passphrase
    device_prefix: str = Field(default="", max_length=128)  # node of provider p: <prefix><p>_meta/_data
    device_type: DeviceType = "vehicle"
    data_access: Literal["open", "whitelist"] = "open"
    data_members: list[Jid] = []  # who may subscribe to _data when data_access = "whitelist"
    # Readings kept by the server on each _data node: 1 as SOX clients expect (the latest); more gives
    # late consumers a history (items max_items=N), at the server's storage cost.
    data_max_items: int = Field(default=1, ge=1, le=100_000)
    batch: int = Field(default=500, ge=1, le=10_000)  # records taken from the outbox per round
    max_item_bytes: int = Field(default=60_000, ge=1024, le=10_000_000)  # a <data> item is split above this
    # Sent in the node configuration at creation: Openfire (SOXFire) defaults to 5 KB otherwise.
    max_payload_size: int = Field(default=300_000, ge=1024)
    iq_timeout: float = Field(default=30.0, gt=0, le=600)
    connect_timeout: float = Field(default=20.0, gt=0, le=600)
    actuation: Actuation = Actuation()
    bridge: list[BridgeDevice] = []
    frames: Frames = Frames()

    @model_validator(mode="after")
    def _consistent(self) -> SoxfireSection:
        if self.ca_file and self.pinned_cert:
            raise ValueError("give either ca_file or pinned_cert, not both")
        if self.tls == "plaintext" and (self.ca_file or self.pinned_cert):
            raise ValueError("ca_file/pinned_cert make no sense with tls = 'plaintext'")
        if self.max_item_bytes > self.max_payload_size:
            raise ValueError("max_item_bytes must not exceed max_payload_size")
        self._check_login()
        return self

    def _check_login(self) -> None:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together (a client certificate needs its key)")
        if self.key == "tpm" and self.key_file is None:
            raise ValueError('key = "tpm" needs cert_file and key_file (the TSS2 PRIVATE KEY blob)')
        if self.key_password is not None and (self.key_file is None or self.key == "tpm"):
            raise ValueError('key_password goes with a key_file of key = "file" only')
        if self.tls == "plaintext" and self.cert_file is not None:
            raise ValueError("a client certificate needs TLS (tls = 'plaintext' has none)")
        if self.login == "password" and self.password is None:
            raise ValueError("password is required with login = 'password' (or use login = 'certificate')")
        if self.login == "certificate":
            if self.cert_file is None:
                raise ValueError("login = 'certificate' needs cert_file and key_file")
            if self.password is not None:
                raise ValueError("login = 'certificate' uses no password: remove it")

    @property
    def domain(self) -> str:
        return self.jid.split("@", 1)[1].split("/", 1)[0]

    @property
    def bare_jid(self) -> str:
        return self.jid.split("/", 1)[0]

    @property
    def server_host(self) -> str:
        return self.host or self.domain

    @property
    def pubsub_service(self) -> str:
        return self.pubsub or f"pubsub.{self.domain}"
