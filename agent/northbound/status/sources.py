"""What the status page shows, gathered from the live agent: identity, sensors, connections, system."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...core.logs import RecentLogs
from ...core.model import Model, ResourceKind, ResourceSnapshot, ValueMode
from ...core.outbox import Outbox
from ...core.runtime import Runtime
from ..publisher import OutboxPublisher
from .privacy import AnonymizerStream, PrivacyPanel, page_value
from .system import SystemProbe

InfoSource = Callable[[], dict[str, Any]]


@dataclass
class StatusSources:
    device_id: str
    version: str
    profile: str
    model: Model
    runtime: Runtime
    state_dir: Path
    outbox: Outbox | None = None
    recent_logs: RecentLogs | None = None
    keystore: InfoSource | None = None  # None: no keystore configured (the TPM issue adds it)
    anonymizers: Sequence[AnonymizerStream] = ()  # one per camera; none: no camera anonymizer configured
    system: SystemProbe = field(init=False)
    privacy_panel: PrivacyPanel = field(init=False)

    def __post_init__(self) -> None:
        self.system = SystemProbe(self.state_dir if self.state_dir.exists() else Path("/"))
        self.privacy_panel = PrivacyPanel(self.anonymizers, self.model)

    # --- parts of the page ---------------------------------------------------------------------------

    def identity(self) -> dict[str, Any]:
        keystore = self.keystore() if self.keystore else {"configured": False}
        return {
            "device_id": self.device_id,
            "version": self.version,
            "profile": self.profile,
            "keystore": keystore,
        }

    def providers(self, now: float | None = None) -> list[dict[str, Any]]:
        now = now or time.time()
        return [
            {
                "name": provider.name,
                "friendlyName": provider.friendly_name,
                "location": provider.location,
                "services": [
                    {
                        "name": service.name,
                        "resources": [resource_view(r, now) for r in service.resources.values()],
                    }
                    for service in provider.services.values()
                ],
            }
            for provider in self.model.providers()
        ]

    def connections(self) -> dict[str, Any]:
        stats = self.outbox.stats() if self.outbox else None
        sinks = {s.name: s for s in stats.sinks} if stats else {}
        publishers = []
        for name, record in self.runtime.supervisor.records.items():
            component = record.component
            if not isinstance(component, OutboxPublisher):
                continue
            sink = sinks.get(component.sink)
            health = self.runtime.supervisor.health_of(name)
            publishers.append(
                {
                    "name": name,
                    "state": str(health.state),
                    "detail": health.detail,
                    "published": component.published,
                    "last_ack": component.last_ack,
                    "depth": sink.depth if sink else None,
                    "lag_s": sink.oldest_unsent_age if sink else None,
                    "signed": component.sealer.signed,
                    "encrypted": component.sealer.encrypted,
                }
            )
        outbox = None
        if stats is not None:
            outbox = {
                "records": stats.records,
                "bytes": stats.bytes,
                "evicted": stats.evicted_total,
                "refused": stats.refused_total,
                "oldest_age_s": stats.oldest_age,
                "recovered_from": str(stats.recovered_from) if stats.recovered_from else None,
            }
        return {"publishers": publishers, "outbox": outbox}

    def privacy(self) -> dict[str, Any]:
        return self.privacy_panel.view()

    def logs(self, limit: int = 50) -> list[str]:
        if self.recent_logs is None:
            return []
        return list(self.recent_logs.lines)[-limit:]

    def status(self) -> dict[str, Any]:
        """Everything but the sensors, which stream as they change."""
        health = self.runtime.health_report()
        return {
            "identity": self.identity(),
            "health": {"status": health["status"], "ready": health["ready"]},
            "components": health["components"],
            "connections": self.connections(),
            "privacy": self.privacy(),
            "system": self.system.read(),
            "logs": self.logs(),
            "time": time.time(),
        }


def resource_view(resource: ResourceSnapshot, now: float) -> dict[str, Any]:
    return {
        "path": resource.path,
        "name": resource.name,
        "kind": str(resource.kind),
        "type": resource.type.name,
        "mode": str(resource.mode) if resource.kind is not ResourceKind.ACTION else None,
        "value": page_value(resource.value),  # a camera frame: a summary and a link, not the JPEG
        "unit": resource.metadata.get("unit"),
        "timestamp": resource.timestamp,
        "age_s": round(now - resource.timestamp, 1) if resource.timestamp else None,
        "settable": resource.kind is not ResourceKind.ACTION and resource.mode is ValueMode.MODIFIABLE,
        "parameters": [
            {"name": p.name, "type": p.type.name, "required": p.required} for p in resource.parameters
        ],
    }
