"""SOXFire northbound: the model published as SOX devices over XMPP pubsub, and remote SOX devices
mirrored into the model. Wiring: `create_sox_components(section, model, outbox, sealer)`."""

from __future__ import annotations

from collections.abc import Callable

from ...core.model import Model
from ...core.outbox import Outbox
from ...core.runtime import Component
from ...security.sealer import Sealer
from ...security.secrets import TpmResolver, resolve_secret
from .bridge import MirroredDevice, SoxBridge
from .client_cert import ClientCertificate
from .config import SECTION, SoxfireSection
from .mapping import model_name
from .nodes import NodePolicy
from .publisher import SoxPublisher
from .session import Endpoint

__all__ = ["SECTION", "SoxBridge", "SoxPublisher", "SoxfireSection", "create_sox_components"]


def endpoint_factory(section: SoxfireSection, tpm: TpmResolver | None = None) -> Callable[[], Endpoint]:
    """Builds the connection settings at each connect, so a rotated password file is picked up; a secret
    that cannot be read raises SecretError there, which the supervisor reports and retries."""

    def endpoint() -> Endpoint:
        return Endpoint(
            jid=section.bare_jid,
            password=resolve_secret(section.password, tpm=tpm).reveal() if section.password else None,
            host=section.server_host,
            port=section.port,
            tls=section.tls,
            ca_file=section.ca_file,
            pinned_cert=section.pinned_cert,
            connect_timeout=section.connect_timeout,
            iq_timeout=section.iq_timeout,
            client_cert=client_certificate(section, tpm),
            login=section.login,
        )

    return endpoint


def client_certificate(section: SoxfireSection, tpm: TpmResolver | None = None) -> ClientCertificate | None:
    if section.cert_file is None or section.key_file is None:
        return None
    password = section.key_password
    return ClientCertificate(
        section.cert_file,
        section.key_file,
        section.key,
        resolve_secret(password, tpm=tpm).reveal() if password else None,
    )


def create_sox_components(
    section: SoxfireSection,
    model: Model,
    outbox: Outbox,
    sealer: Sealer | None = None,
    *,
    tpm: TpmResolver | None = None,
) -> list[Component]:
    """The publisher (sink "soxfire" of the outbox) and, when devices are listed, the bridge."""
    if not section.enabled:
        return []
    endpoint = endpoint_factory(section, tpm)
    mirrored = [
        MirroredDevice(d.device, d.provider or model_name(d.device), d.pubsub or section.pubsub_service)
        for d in section.bridge
    ]
    policy = NodePolicy(
        max_payload_size=section.max_payload_size,
        data_access=section.data_access,
        data_members=tuple(section.data_members),
        data_publishers=tuple(section.actuation.allow) if section.actuation.enabled else (),
        data_max_items=section.data_max_items,
    )
    publisher = SoxPublisher(
        model,
        outbox,
        endpoint,
        service=section.pubsub_service,
        policy=policy,
        device_prefix=section.device_prefix,
        device_type=section.device_type,
        batch=section.batch,
        max_item_bytes=section.max_item_bytes,
        sealer=sealer,
        actuation_allow=section.actuation.allow if section.actuation.enabled else (),
        exclude={m.provider for m in mirrored},
        frames=section.frames,
    )
    components: list[Component] = [publisher]
    if mirrored:
        components.append(SoxBridge(model, endpoint, mirrored))
    return components
