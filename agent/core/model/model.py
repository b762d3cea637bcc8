"""The sensiNact-style model: providers -> services -> resources, the single source of truth.

Drivers write it (update), northbounds read it (snapshots), SET it (only MODIFIABLE resources) and ACT on
it, and everyone may subscribe to its change events. One lock guards the state; events are handed to the
bus in the order changes were made, outside that lock, so a subscriber applying backpressure never blocks
readers of the model.
"""

from __future__ import annotations

import collections
import copy
import importlib
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .errors import ActionFailed, InvalidValue, NotAnAction, ReadOnlyResource, ShapeConflict, UnknownElement
from .events import EventBus, EventType, ModelEvent
from .types import ResourceKind, ValueMode, ValueType, check_name, coerce_metadata, value_type

ADMIN = "admin"
_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Parameter:
    """A typed parameter of an ACTION."""

    name: str
    type: ValueType
    required: bool = True
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None

    def coerce(self, value: Any) -> Any:
        try:
            result = self.type(value)
        except InvalidValue as error:
            raise InvalidValue(f"parameter {self.name!r}: {error}") from None
        _check_bounds(f"parameter {self.name!r}", result, self.minimum, self.maximum)
        return result


@dataclass(frozen=True, slots=True)
class ResourceSpec:
    """The shape of a resource: what a declaration or a driver asks the model to hold."""

    type: ValueType
    kind: ResourceKind = ResourceKind.SENSOR
    mode: ValueMode = ValueMode.UPDATABLE
    metadata: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    parameters: tuple[Parameter, ...] = ()
    handler: str | Callable[[ActionCall], Any] | None = None

    def same_shape(self, other: ResourceSpec) -> bool:
        return (self.type, self.kind, self.mode, self.parameters) == (
            other.type,
            other.kind,
            other.mode,
            other.parameters,
        )


@dataclass(frozen=True, slots=True)
class ResourceSnapshot:
    """An immutable view of one resource at one moment."""

    provider: str
    service: str
    name: str
    type: ValueType
    kind: ResourceKind
    mode: ValueMode
    value: Any
    timestamp: float | None  # None: no value set yet
    metadata: Mapping[str, Any]
    parameters: tuple[Parameter, ...]

    @property
    def path(self) -> str:
        return f"{self.provider}/{self.service}/{self.name}"

    @property
    def has_value(self) -> bool:
        return self.timestamp is not None


@dataclass(frozen=True, slots=True)
class ServiceSnapshot:
    provider: str
    name: str
    resources: Mapping[str, ResourceSnapshot]


@dataclass(frozen=True, slots=True)
class ProviderSnapshot:
    name: str
    services: Mapping[str, ServiceSnapshot]

    @property
    def friendly_name(self) -> str:
        return self.services[ADMIN].resources["friendlyName"].value

    @property
    def location(self) -> Any:
        return self.services[ADMIN].resources["location"].value

    def resources(self) -> Iterator[ResourceSnapshot]:
        for service in self.services.values():
            yield from service.resources.values()


@dataclass(frozen=True, slots=True)
class ActionCall:
    """What an action handler receives: where it was called and its coerced parameters."""

    model: Model
    provider: str
    service: str
    resource: str
    params: Mapping[str, Any]


ActionHandler = Callable[[ActionCall], Any]


@dataclass(slots=True)
class _Resource:
    spec: ResourceSpec
    value: Any = None
    timestamp: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def snapshot(self, provider: str, service: str, name: str) -> ResourceSnapshot:
        return ResourceSnapshot(
            provider,
            service,
            name,
            self.spec.type,
            self.spec.kind,
            self.spec.mode,
            # Objects and arrays are copied: a reader mutating its snapshot must not change the model.
            copy.deepcopy(self.value) if isinstance(self.value, dict | list) else self.value,
            self.timestamp,
            MappingProxyType(dict(self.metadata)),
            self.spec.parameters,
        )


def _check_bounds(what: str, value: Any, minimum: float | None, maximum: float | None) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return
    if minimum is not None and value < minimum:
        raise InvalidValue(f"{what}: {value} is below the minimum {minimum}")
    if maximum is not None and value > maximum:
        raise InvalidValue(f"{what}: {value} is above the maximum {maximum}")


def _admin_specs() -> dict[str, ResourceSpec]:
    # Legacy M-Sec clients SET friendlyName and location (rws RW), so both are MODIFIABLE by default; a
    # model file makes location UPDATABLE when a GPS driver owns it.
    return {
        "friendlyName": ResourceSpec(value_type("string"), ResourceKind.PROPERTY, ValueMode.MODIFIABLE),
        "description": ResourceSpec(value_type("string"), ResourceKind.PROPERTY, ValueMode.MODIFIABLE),
        "location": ResourceSpec(value_type("geojson"), ResourceKind.PROPERTY, ValueMode.MODIFIABLE),
    }


class Model:
    """Thread-safe store of providers, services and resources, with change events."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.RLock()
        self._emit_lock = threading.Lock()
        self._providers: dict[str, dict[str, dict[str, _Resource]]] = {}
        self._handlers: dict[str, ActionHandler] = {}
        self._seq = 0
        self._pending: list[ModelEvent] = []  # events of the change being applied
        self._unpublished: collections.deque[ModelEvent] = collections.deque()  # applied, not yet published
        self.bus = EventBus()
        # subscribe(name, maxsize=, lossless=, block_timeout=, filter=): a new queue of every change from now
        # on (see events.Subscription).
        self.subscribe = self.bus.subscribe

    # --- events ------------------------------------------------------------------------------------

    def _event(
        self,
        type: EventType,
        provider: str,
        service: str | None = None,
        resource: str | None = None,
        **fields: Any,
    ) -> None:
        self._seq += 1
        self._pending.append(ModelEvent(type, self._seq, provider, service, resource, **fields))

    @contextmanager
    def _changing(self) -> Iterator[None]:
        """Applies a change under the state lock, then publishes its events in order.

        A change's events join the unpublished queue under the state lock, so in the order changes were
        applied; whoever holds the emit lock publishes everything queued, in that order. The state lock is
        released before the emit lock is awaited: a writer waiting behind another one, itself held up by a
        lossless subscriber, must not keep readers (or that subscriber's own consumer) out of the model.
        A writer returns only once its events were handed to the bus, by itself or by the writer before."""
        with self._lock:
            try:
                yield
            except BaseException:
                self._pending.clear()
                raise
            self._unpublished.extend(self._pending)
            self._pending.clear()
        with self._emit_lock:
            while self._unpublished:  # only the emit lock's holder takes from it: no race with the check
                self.bus.publish(self._unpublished.popleft())

    # --- shape -------------------------------------------------------------------------------------

    def add_provider(
        self,
        provider: str,
        *,
        friendly_name: str | None = None,
        description: str | None = None,
        location: Any = None,
        admin: Mapping[str, ResourceSpec] | None = None,
        admin_values: Mapping[str, Any] | None = None,
        source: str = "driver",
    ) -> bool:
        """Creates a provider with its admin service; False if it already existed (then nothing changes).

        `admin` adds or reshapes admin resources (a GPS-fed location is UPDATABLE); `admin_values` gives
        initial values to any of them."""
        check_name("provider", provider)
        specs = _admin_specs()
        for name, spec in (admin or {}).items():
            if name in specs and spec.type != specs[name].type:
                raise ShapeConflict(f"{provider}/admin/{name} must be of type {specs[name].type.name}")
            specs[name] = spec
        with self._changing():
            if provider in self._providers:
                return False
            now = self._clock()
            resources = {name: _Resource(spec, metadata=dict(spec.metadata)) for name, spec in specs.items()}
            initial = {**(admin_values or {})}
            # An explicit friendly_name wins over admin_values (a model file's admin resources); the id is
            # the last resort, so that every provider has one.
            initial["friendlyName"] = friendly_name or initial.get("friendlyName") or provider
            if description is not None:
                initial["description"] = description
            if location is not None:
                initial["location"] = location
            for name, value in initial.items():
                if name not in resources:
                    raise UnknownElement(f"unknown admin resource {name[:80]!r}")
                if value is not None:
                    try:
                        resources[name].value = resources[name].spec.type(value)
                    except InvalidValue as error:
                        raise InvalidValue(f"{provider}/admin/{name}: {error}") from None
                    resources[name].timestamp = now
            self._providers[provider] = {ADMIN: resources}
            self._event(EventType.PROVIDER_APPEARED, provider, source=source)
            self._event(EventType.SERVICE_APPEARED, provider, ADMIN, source=source)
            for name, res in resources.items():
                self._event(
                    EventType.RESOURCE_APPEARED,
                    provider,
                    ADMIN,
                    name,
                    kind=res.spec.kind,
                    value=res.value,
                    timestamp=res.timestamp,
                    source=source,
                )
            return True

    def ensure_resource(
        self,
        provider: str,
        service: str,
        resource: str,
        spec: ResourceSpec,
        *,
        value: Any = None,
        timestamp: float | None = None,
        source: str = "driver",
    ) -> bool:
        """Adds a resource (and its provider and service) unless an identical one exists.

        Returns True when it was created. A resource of another shape is a ShapeConflict: two drivers
        disagreeing about what a resource is must be caught, not silently merged."""
        for what, name in (("service", service), ("resource", resource)):
            check_name(what, name)
        if spec.kind is ResourceKind.ACTION and value is not None:
            raise InvalidValue(f"{provider}/{service}/{resource}: an ACTION has no value")
        if spec.kind is not ResourceKind.ACTION and (spec.parameters or spec.handler):
            raise ShapeConflict(
                f"{provider}/{service}/{resource}: only an ACTION has parameters or a handler"
            )
        initial = spec.type(value)
        metadata = coerce_metadata(spec.metadata)
        self.add_provider(provider, source=source)
        with self._changing():
            services = self._require_provider(provider)
            existing = services.get(service, {}).get(resource)
            if existing is not None:
                if not existing.spec.same_shape(spec):
                    raise ShapeConflict(
                        f"{provider}/{service}/{resource} already exists with another shape "
                        f"({existing.spec.kind} {existing.spec.type.name} {existing.spec.mode})"
                    )
                return False
            if service not in services:
                services[service] = {}
                self._event(EventType.SERVICE_APPEARED, provider, service, source=source)
            res = _Resource(spec, metadata=metadata)
            if initial is not None:
                res.value, res.timestamp = initial, timestamp if timestamp is not None else self._clock()
            services[service][resource] = res
            self._event(
                EventType.RESOURCE_APPEARED,
                provider,
                service,
                resource,
                kind=spec.kind,
                value=res.value,
                timestamp=res.timestamp,
                source=source,
            )
            return True

    def remove_provider(self, provider: str, *, source: str = "driver") -> None:
        with self._changing():
            services = self._require_provider(provider)
            for service in list(services):
                self._drop_service(provider, service, source)
            del self._providers[provider]
            self._event(EventType.PROVIDER_DISAPPEARED, provider, source=source)

    def remove_service(self, provider: str, service: str, *, source: str = "driver") -> None:
        if service == ADMIN:
            raise ShapeConflict("the admin service belongs to its provider and cannot be removed")
        with self._changing():
            self._require_service(provider, service)
            self._drop_service(provider, service, source)

    def remove_resource(self, provider: str, service: str, resource: str, *, source: str = "driver") -> None:
        if service == ADMIN:
            raise ShapeConflict("admin resources cannot be removed")
        with self._changing():
            resources = self._require_service(provider, service)
            self._require_resource(provider, service, resource)
            del resources[resource]
            self._event(EventType.RESOURCE_DISAPPEARED, provider, service, resource, source=source)

    def _drop_service(self, provider: str, service: str, source: str) -> None:
        resources = self._providers[provider].pop(service)
        for name in resources:
            self._event(EventType.RESOURCE_DISAPPEARED, provider, service, name, source=source)
        self._event(EventType.SERVICE_DISAPPEARED, provider, service, source=source)

    # --- values ------------------------------------------------------------------------------------

    def update(
        self,
        provider: str,
        service: str,
        resource: str,
        value: Any,
        *,
        timestamp: float | None = None,
        metadata: Mapping[str, Any] | None = None,
        source: str = "driver",
    ) -> ResourceSnapshot:
        """A driver's write: any non-ACTION resource, whatever its mode, except FIXED ones."""
        return self._write(provider, service, resource, value, timestamp, metadata, source, northbound=False)

    def set(
        self, provider: str, service: str, resource: str, value: Any, *, source: str = "northbound"
    ) -> ResourceSnapshot:
        """A northbound's SET: only MODIFIABLE resources, within their declared bounds."""
        return self._write(provider, service, resource, value, None, None, source, northbound=True)

    def _write(
        self,
        provider: str,
        service: str,
        resource: str,
        value: Any,
        timestamp: float | None,
        metadata: Mapping[str, Any] | None,
        source: str,
        *,
        northbound: bool,
    ) -> ResourceSnapshot:
        if timestamp is not None and (
            isinstance(timestamp, bool)
            or not isinstance(timestamp, int | float)
            or not 0 <= timestamp < 2**33
        ):
            raise InvalidValue(f"timestamp must be unix seconds, got {timestamp!r}")
        extra = coerce_metadata(metadata) if metadata else None
        with self._changing():
            res = self._require_resource(provider, service, resource)
            spec = res.spec
            path = f"{provider}/{service}/{resource}"
            if spec.kind is ResourceKind.ACTION:
                raise NotAnAction(f"{path} is an ACTION: it is acted on, not written")
            if spec.mode is ValueMode.FIXED:
                raise ReadOnlyResource(f"{path} is FIXED")
            if northbound and spec.mode is not ValueMode.MODIFIABLE:
                raise ReadOnlyResource(f"{path} is {spec.mode}: only its driver writes it")
            try:
                coerced = spec.type(value)
            except InvalidValue as error:
                raise InvalidValue(f"{path}: {error}") from None
            if northbound:
                _check_bounds(path, coerced, res.metadata.get("min"), res.metadata.get("max"))
            old = res.value
            res.value = coerced
            res.timestamp = float(timestamp) if timestamp is not None else self._clock()
            if extra:
                res.metadata.update(extra)
            snap = res.snapshot(provider, service, resource)
            self._event(
                EventType.VALUE_UPDATED,
                provider,
                service,
                resource,
                value=coerced,
                old_value=old,
                timestamp=res.timestamp,
                metadata=snap.metadata,
                kind=spec.kind,
                source=source,
            )
            return snap

    def update_metadata(
        self,
        provider: str,
        service: str,
        resource: str,
        metadata: Mapping[str, Any],
        *,
        source: str = "driver",
    ) -> ResourceSnapshot:
        extra = coerce_metadata(metadata)
        with self._changing():
            res = self._require_resource(provider, service, resource)
            res.metadata.update(extra)
            snap = res.snapshot(provider, service, resource)
            self._event(
                EventType.METADATA_UPDATED,
                provider,
                service,
                resource,
                metadata=snap.metadata,
                kind=res.spec.kind,
                timestamp=self._clock(),
                source=source,
            )
            return snap

    # --- actions -----------------------------------------------------------------------------------

    def register_action_handler(self, name: str, handler: ActionHandler) -> None:
        """Binds a handler name used in declarations (`handler = "name"`) to a callable."""
        check_name("handler", name)
        with self._lock:
            self._handlers[name] = handler

    def act(
        self,
        provider: str,
        service: str,
        resource: str,
        params: Mapping[str, Any] | None = None,
    ) -> Any:
        """Runs an ACTION's handler with its parameters checked and coerced; returns what it returns."""
        with self._lock:
            res = self._require_resource(provider, service, resource)
            spec = res.spec
        path = f"{provider}/{service}/{resource}"
        if spec.kind is not ResourceKind.ACTION:
            raise NotAnAction(f"{path} is not an ACTION")
        coerced = self._coerce_params(path, spec.parameters, params or {})
        handler = self._resolve_handler(path, spec.handler)
        call = ActionCall(self, provider, service, resource, MappingProxyType(coerced))
        try:
            return handler(call)  # outside the lock: a handler may update the model
        except Exception as error:
            raise ActionFailed(f"{path} failed: {type(error).__name__}") from error

    @staticmethod
    def _coerce_params(
        path: str, declared: tuple[Parameter, ...], given: Mapping[str, Any]
    ) -> dict[str, Any]:
        if not isinstance(given, Mapping):
            raise InvalidValue(f"{path}: parameters must be an object")
        known = {p.name for p in declared}
        unknown = sorted(set(given) - known)
        if unknown:
            raise InvalidValue(f"{path}: unknown parameter(s) {', '.join(map(repr, unknown))[:200]}")
        coerced = {}
        for parameter in declared:
            if parameter.name in given:
                coerced[parameter.name] = parameter.coerce(given[parameter.name])
            elif parameter.required:
                raise InvalidValue(f"{path}: missing parameter {parameter.name!r}")
            else:
                # Coerced like a given value: no int 5 for a double, no instant left unnormalised.
                coerced[parameter.name] = parameter.type(parameter.default)
        return coerced

    def _resolve_handler(self, path: str, handler: str | ActionHandler | None) -> ActionHandler:
        if callable(handler):
            return handler
        if handler is None:
            raise ActionFailed(f"{path} has no handler bound")
        with self._lock:
            bound = self._handlers.get(handler)
        if bound is not None:
            return bound
        if ":" in handler:
            return import_handler(handler)
        raise ActionFailed(f"{path}: handler {handler!r} is not registered")

    # --- reads -------------------------------------------------------------------------------------

    def get(self, provider: str, service: str, resource: str) -> ResourceSnapshot:
        with self._lock:
            return self._require_resource(provider, service, resource).snapshot(provider, service, resource)

    def provider(self, provider: str) -> ProviderSnapshot:
        with self._lock:
            return self._provider_snapshot(provider, self._require_provider(provider))

    def providers(self) -> list[ProviderSnapshot]:
        with self._lock:
            return [self._provider_snapshot(name, services) for name, services in self._providers.items()]

    def provider_names(self) -> list[str]:
        with self._lock:
            return list(self._providers)

    def __contains__(self, provider: object) -> bool:
        with self._lock:
            return provider in self._providers

    @staticmethod
    def _provider_snapshot(name: str, services: dict[str, dict[str, _Resource]]) -> ProviderSnapshot:
        return ProviderSnapshot(
            name,
            MappingProxyType(
                {
                    service: ServiceSnapshot(
                        name,
                        service,
                        MappingProxyType(
                            {
                                res_name: res.snapshot(name, service, res_name)
                                for res_name, res in resources.items()
                            }
                        ),
                    )
                    for service, resources in services.items()
                }
            ),
        )

    def _require_provider(self, provider: str) -> dict[str, dict[str, _Resource]]:
        try:
            return self._providers[provider]
        except (KeyError, TypeError):
            raise UnknownElement(f"unknown provider {str(provider)[:80]!r}") from None

    # The outer level is looked up outside the try: its UnknownElement is a KeyError too, and would otherwise
    # be reworded as a missing service or resource.
    def _require_service(self, provider: str, service: str) -> dict[str, _Resource]:
        services = self._require_provider(provider)
        try:
            return services[service]
        except (KeyError, TypeError):
            raise UnknownElement(f"unknown service {provider}/{str(service)[:80]}") from None

    def _require_resource(self, provider: str, service: str, resource: str) -> _Resource:
        resources = self._require_service(provider, service)
        try:
            return resources[resource]
        except (KeyError, TypeError):
            raise UnknownElement(f"unknown resource {provider}/{service}/{str(resource)[:80]}") from None


def import_handler(reference: str) -> ActionHandler:
    """Resolves 'package.module:function' to a callable, with a clear error when it cannot."""
    module_name, _, attribute = reference.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError, ValueError) as error:
        raise ActionFailed(f"handler {reference!r} cannot be imported: {error}") from None
    if not callable(target):
        raise ActionFailed(f"handler {reference!r} is not callable")
    return target
