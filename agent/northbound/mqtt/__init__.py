"""MQTT northbound: the outbox's readings published to a broker (MQTT 5 or 3.1.1), QoS 1, over TLS.

Assembly (agent/app.py): register `MqttSection` as the `[mqtt]` table, and when it is present add
`create_mqtt_publisher(section, device_id, outbox, sealer, profile=...)` to the supervisor. See docs/mqtt.md.
"""

from __future__ import annotations

from ...core.config.errors import ConfigError
from ...core.outbox import Outbox
from ...security.sealer import Sealer
from ...security.secrets import TpmResolver
from .config import MqttSection, MqttTls, profile_problems
from .payload import Received, read_message
from .publisher import MqttPublisher

SECTION = "mqtt"


def create_mqtt_publisher(
    section: MqttSection,
    device_id: str,
    outbox: Outbox,
    sealer: Sealer | None = None,
    *,
    profile: str = "production",
    tpm: TpmResolver | None = None,
) -> MqttPublisher:
    """The publisher component; ConfigError if the profile refuses the settings (e.g. tls.insecure)."""
    problems = profile_problems(section, profile, SECTION)
    if problems:
        raise ConfigError(SECTION, problems)
    return MqttPublisher(section, device_id, outbox, sealer, tpm=tpm)


__all__ = [
    "SECTION",
    "MqttPublisher",
    "MqttSection",
    "MqttTls",
    "Received",
    "create_mqtt_publisher",
    "profile_problems",
    "read_message",
]
