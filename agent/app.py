"""Assembles an agent from a validated configuration: the model, the outbox, the recorder, the drivers and
the web endpoints, supervised by one runtime. Assembly only: each part does its own job."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from flask import Flask

from . import __version__
from .anonymizer import SECTION as ANONYMIZER
from .anonymizer import AnonymizerFactory, AnonymizerSection, FrameAnonymizer
from .anonymizer.metrics import AnonymizerCollector
from .core.config import AgentConfig, ConfigError, Extensions, Problem, resolve_secret
from .core.config.schema_base import split_listen
from .core.logs import installed_recent_logs
from .core.metrics import AgentCollector, build_registry
from .core.model import Model, ResourceKind
from .core.model.declaration import apply_declaration
from .core.outbox import Outbox
from .core.recorder import Recorder
from .core.runtime import Backoff, Component, Runtime
from .drivers import DRIVERS, DriverPlugin
from .drivers.camera import CameraDriver
from .integrity_setup import SECTION as INTEGRITY
from .integrity_setup import IntegritySection, check_integrity
from .keys_cli import CONFIG_SECTIONS as KEY_SECTIONS
from .northbound.image_api import create_image_app
from .northbound.metrics import PublisherCollector
from .northbound.mqtt import SECTION as MQTT
from .northbound.mqtt import MqttSection, create_mqtt_publisher
from .northbound.sensinact import RestSection, close_sensinact_app, create_sensinact_app
from .northbound.soxfire import SECTION as SOX
from .northbound.soxfire import SoxfireSection, create_sox_components
from .northbound.status import StatusSection, StatusSources, install_status_page
from .northbound.status.oidc_login import OidcSignIn
from .sealing_setup import SealingSetup, setup_sealing
from .security.authcode import authorization_code_login
from .security.config import SecuritySection
from .security.policy import SecurityPolicy
from .web import WsgiServer, create_ops_app
from .web.dispatch import WsgiApp, route_by_prefix

log = logging.getLogger("agent")


def extensions(drivers: Mapping[str, DriverPlugin] = DRIVERS) -> Extensions:
    """The config tables this build of the agent understands, beyond the core's own."""
    return Extensions(
        sections={
            "status": StatusSection,
            "rest": RestSection,
            "security": SecuritySection,
            MQTT: MqttSection,
            SOX: SoxfireSection,
            ANONYMIZER: AnonymizerSection,
            INTEGRITY: IntegritySection,
            **KEY_SECTIONS,
        },
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
    wsgi: WsgiApp | None = None  # everything the HTTP server serves (web + the REST facade)

    async def run(self, install_signals: bool = True) -> None:
        await self.runtime.run(install_signals=install_signals)


def build_agent(config: AgentConfig, drivers: Mapping[str, DriverPlugin] = DRIVERS) -> Agent:
    check_integrity(config)  # first: nothing starts from files that fail the signed image manifest
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

    sealing = setup_sealing(config)
    components: list[Component] = [recorder]
    for driver in config.drivers:
        if driver.enabled:
            components.append(drivers[driver.type].create(driver, model))
    streams = build_anonymizer_streams(config, model, outbox, components)
    components[1:1] = streams  # before the cameras: started first, stopped after them
    components += build_publishers(config, model, outbox, sealing)

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
    registry.register(PublisherCollector(runtime.supervisor))
    registry.register(AnonymizerCollector(lambda: streams))
    web = create_ops_app(runtime.health_report, registry)
    install_status(web, config, model, runtime, outbox, sealing, streams)
    app: WsgiApp = web
    routes: dict[str, WsgiApp] = {}
    rest = build_rest(config, model, runtime)
    if rest is not None:
        routes.update({"/sensinact": rest, "/ws/sensinact": rest})
    image_api = build_image_api(config)
    if image_api is not None:
        routes["/image"] = image_api
    if routes:
        app = route_by_prefix(web, routes)
    if config.http.enabled:
        host, port = split_listen(config.http.listen)
        runtime.supervisor.add(WsgiServer(app, host, port, threads=config.http.threads))

    async def close_outbox() -> None:
        await asyncio.to_thread(outbox.close)
        sealing.close()

    runtime.on_stopped(close_outbox)
    return Agent(config, model, outbox, recorder, runtime, web, components, app)


def build_publishers(
    config: AgentConfig, model: Model, outbox: Outbox, sealing: SealingSetup
) -> list[Component]:
    """The northbound publishers configured (SOXFire, MQTT), each on its own outbox sink."""
    publishers: list[Component] = []
    sox = config.section(SOX)
    if isinstance(sox, SoxfireSection):
        if sox.enabled and sox.key_file is not None and sox.key == "tpm":
            sealing.enable_tpm_tls()  # process-wide and idempotent (MQTT may ask for it too)
        publishers += create_sox_components(sox, model, outbox, sealing.sealer, tpm=sealing.tpm_resolver)
    mqtt = config.section(MQTT)
    if isinstance(mqtt, MqttSection):
        if mqtt.tls is not None and mqtt.tls.key == "tpm":
            sealing.enable_tpm_tls()  # process-wide, before any TPM-keyed TLS context is made
        publishers.append(
            create_mqtt_publisher(
                mqtt,
                config.agent.device_id,
                outbox,
                sealing.sealer,
                profile=config.agent.profile,
                tpm=sealing.tpm_resolver,
            )
        )
    return publishers


def install_status(
    web: Flask,
    config: AgentConfig,
    model: Model,
    runtime: Runtime,
    outbox: Outbox,
    sealing: SealingSetup,
    streams: list[FrameAnonymizer],
) -> None:
    status = config.section("status")
    if not isinstance(status, StatusSection) or not status.enabled:
        return
    sources = StatusSources(
        device_id=config.agent.device_id,
        version=__version__,
        profile=config.agent.profile,
        model=model,
        runtime=runtime,
        state_dir=config.state_dir,
        outbox=outbox,
        recent_logs=installed_recent_logs(),
        keystore=sealing.info,
        anonymizers=streams,  # read-only: counters for the privacy panel; frames come from the model
    )
    security = config.section("security")
    users = security.users if isinstance(security, SecuritySection) else []
    sign_in = status_sign_in(config, status, security) if status.oidc_login else None
    if not users and sign_in is None:
        log.warning("nobody can log in to the status page: no [[security.users]] configured")
    install_status_page(web, sources, status, [(u.name, u.password_hash, u.roles) for u in users], sign_in)


def status_sign_in(config: AgentConfig, status: StatusSection, security: object) -> OidcSignIn:
    """The page's "Sign in with <IdP>" ([status] oidc_login): the [security.oidc] provider and client."""
    oidc = security.oidc if isinstance(security, SecuritySection) else None
    if oidc is None or not oidc.client_id or status.oidc_redirect_uri is None:
        problem = Problem("status.oidc_login", "needs [security.oidc] with client_id, and oidc_redirect_uri")
        raise ConfigError(str(config.source), [problem])
    client_secret = resolve_secret(oidc.client_secret).reveal() if oidc.client_secret else None
    flow = authorization_code_login(
        oidc,
        client_secret=client_secret,
        redirect_uri=status.oidc_redirect_uri,
        clock=time.time,
        ttl=status.oidc_login_seconds,
    )
    issuer = oidc.issuer or oidc.discovery_url.removesuffix("/.well-known/openid-configuration")
    return OidcSignIn(flow, issuer)


def build_rest(config: AgentConfig, model: Model, runtime: Runtime) -> Flask | None:
    """The sensiNact REST facade, guarded by the [security] policy; none without a [security] table
    (there is no unauthenticated default: anonymous access is something to switch on explicitly)."""
    rest = config.section("rest")
    rest = rest if isinstance(rest, RestSection) else RestSection()
    security = config.section("security")
    if not rest.enabled:
        return None
    if not isinstance(security, SecuritySection):
        log.warning("the REST facade is off: it needs a [security] table (who may do what)")
        return None
    app = create_sensinact_app(model, security_policy(security), rest)

    async def close_rest() -> None:
        await asyncio.to_thread(close_sensinact_app, app)

    runtime.on_stopped(close_rest)
    return app


def security_policy(security: SecuritySection) -> SecurityPolicy:
    client_secret = None
    if security.oidc is not None and security.oidc.client_secret:
        client_secret = resolve_secret(security.oidc.client_secret).reveal()
    return SecurityPolicy(security, client_secret=client_secret)


def build_anonymizer_streams(
    config: AgentConfig, model: Model, outbox: Outbox, components: list[Component]
) -> list[FrameAnonymizer]:
    """One anonymizer stream per camera, fed by the camera's delivery thread. Without an [anonymizer]
    table a camera has no consumer and drops every frame (fail-closed)."""
    section = config.section(ANONYMIZER)
    if not isinstance(section, AnonymizerSection) or not section.enabled:
        return []
    streams = []
    for camera in (c for c in components if isinstance(c, CameraDriver)):
        stream = FrameAnonymizer(
            section,
            AnonymizerFactory(section),
            camera_id=camera.config.id,
            provider=camera.config.provider,
            service=camera.config.service,
            model=model,
            outbox=outbox,
        )
        camera.set_consumer(
            lambda frame, stream=stream: stream.submit(frame.image, seq=frame.seq, timestamp=frame.timestamp)
        )
        streams.append(stream)
    return streams


def build_image_api(config: AgentConfig) -> Flask | None:
    """`POST /image`, when the anonymizer and its API are on; it needs a [security] table (Basic users)."""
    section = config.section(ANONYMIZER)
    if not isinstance(section, AnonymizerSection) or not section.enabled or not section.api.enabled:
        return None
    security = config.section("security")
    if not isinstance(security, SecuritySection):
        log.warning("POST /image is off: it needs a [security] table (who may use it)")
        return None
    factory = AnonymizerFactory(section)
    return create_image_app(
        security_policy(security), factory.create, section.api, jpeg_quality=section.jpeg_quality
    )
