"""Assembles an agent from a validated configuration: the model, the outbox, the recorder, the drivers and
the web endpoints, supervised by one runtime. Assembly only: each part does its own job."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from flask import Flask

from . import __version__
from .core.config import AgentConfig, Extensions
from .core.config.schema_base import split_listen
from .core.logs import installed_recent_logs
from .core.metrics import AgentCollector, build_registry
from .core.model import Model, ResourceKind
from .core.model.declaration import apply_declaration
from .core.outbox import Outbox
from .core.recorder import Recorder
from .core.runtime import Backoff, Component, Runtime
from .drivers import DRIVERS, DriverPlugin
from .northbound.status import StatusSection, StatusSources, install_status_page
from .web import WsgiServer, create_ops_app

log = logging.getLogger("agent")


def extensions(drivers: Mapping[str, DriverPlugin] = DRIVERS) -> Extensions:
    """The config tables this build of the agent understands, beyond the core's own."""
    return Extensions(
        sections={"status": StatusSection},
        drivers={name: plugin.config for name, plugin in drivers.items()},
    )


@dataclass
class Agent:
    config: AgentConfig
    model: Model
    outbox: Outbox
    recorder: Recorder
    runtime: Runtime
    web: Flask
    components: list[Component] = field(default_factory=list)

    async def run(self, install_signals: bool = True) -> None:
        await self.runtime.run(install_signals=install_signals)


def build_agent(config: AgentConfig, drivers: Mapping[str, DriverPlugin] = DRIVERS) -> Agent:
    model = Model()
    for declaration in (config.model, *(decl for _, decl in config.model_files)):
        apply_declaration(model, declaration)  # type: ignore[arg-type]  (ModelSection has the same shape)

    outbox = Outbox(
        config.outbox_path,
        max_bytes=config.outbox.max_bytes,
        max_records=config.outbox.max_records,
        on_full=config.outbox.on_full,
        synchronous=config.outbox.synchronous,
    )
    if outbox.recovered_from is not None:
        log.error(
            "the outbox database was unreadable and was set aside",
            extra={"set_aside": str(outbox.recovered_from)},
        )
    recorder = Recorder(model, outbox, kinds=[ResourceKind(k) for k in config.outbox.record_kinds])

    components: list[Component] = [recorder]
    for driver in config.drivers:
        if driver.enabled:
            components.append(drivers[driver.type].create(driver, model))

    runtime = Runtime(
        components,
        backoff=Backoff(config.runtime.restart_initial, config.runtime.restart_max),
        stop_timeout=config.runtime.stop_timeout,
        watchdog_grace=config.runtime.watchdog_grace,
    )
    registry = build_registry(
        AgentCollector(
            model=model,
            outbox=outbox,
            recorder=recorder,
            supervisor=runtime.supervisor,
            started=lambda: runtime.started_at,
        )
    )
    web = create_ops_app(runtime.health_report, registry)
    status = config.section("status")
    if isinstance(status, StatusSection) and status.enabled:
        sources = StatusSources(
            device_id=config.agent.device_id,
            version=__version__,
            profile=config.agent.profile,
            model=model,
            runtime=runtime,
            state_dir=config.state_dir,
            outbox=outbox,
            recent_logs=installed_recent_logs(),
        )
        install_status_page(web, sources, status)
    if config.http.enabled:
        host, port = split_listen(config.http.listen)
        runtime.supervisor.add(WsgiServer(web, host, port, threads=config.http.threads))

    async def close_outbox() -> None:
        await asyncio.to_thread(outbox.close)

    runtime.on_stopped(close_outbox)
    return Agent(config, model, outbox, recorder, runtime, web, components)
