"""The agent's own configuration tables. Drivers and northbounds bring their own (see loader.Extensions)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from ..model.declaration import ProviderDecl
from .schema_base import ListenAddress, Name, PositiveFloat, Strict

MiB = 2**20


class AgentSection(Strict):
    device_id: Name
    # production refuses development shortcuts (the insecure software keystore, ...); demo is `build.sh run`.
    profile: Literal["production", "development", "demo"] = "production"
    state_dir: str = "/var/lib/msec-agent"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "text"] = "json"

    @field_validator("state_dir")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("expected an absolute path")
        return value


class ModelSection(Strict):
    files: list[str] = Field(default=[], max_length=64)  # relative to the config file's folder
    providers: dict[Name, ProviderDecl] = {}


class OutboxSection(Strict):
    path: str = Field(default="outbox.db", min_length=1)  # relative to agent.state_dir
    max_bytes: int = Field(default=256 * MiB, ge=1 * MiB, le=2**40)
    max_records: int | None = Field(default=None, ge=1)
    on_full: Literal["refuse", "evict_oldest"] = "evict_oldest"
    # FULL survives power loss (a truck's ignition); NORMAL only a crash of the agent.
    synchronous: Literal["FULL", "NORMAL"] = "FULL"
    record_kinds: list[Literal["SENSOR", "STATE_VARIABLE", "PROPERTY"]] = ["SENSOR", "STATE_VARIABLE"]


class HttpSection(Strict):
    enabled: bool = True
    listen: ListenAddress = "127.0.0.1:8080"
    threads: int = Field(default=24, ge=2, le=128)  # each open SSE stream holds one


class RuntimeSection(Strict):
    restart_initial: PositiveFloat = 0.5
    restart_max: PositiveFloat = 60.0
    stop_timeout: float = Field(default=10.0, gt=0, le=60, allow_inf_nan=False)
    # How long a component may stay unhealthy before systemd's watchdog is no longer fed.
    watchdog_grace: float = Field(default=30.0, ge=0, le=3600, allow_inf_nan=False)


class DriverConfig(Strict):
    """Base of every driver's table in `[[drivers]]`; `type` picks the driver."""

    type: str
    id: Name
    enabled: bool = True
