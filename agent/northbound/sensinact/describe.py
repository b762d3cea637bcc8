"""The payloads of lists, descriptions, value responses and snapshots, built from model snapshots.

`Namer` prints value types the way the deployment's clients expect: `java` (java.lang.Integer, current
sensiNact) or `short` (int, the legacy gateway); the choice is `[rest] type_names`.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ...core.model import ProviderSnapshot, ResourceKind, ResourceSnapshot, ServiceSnapshot, ValueMode

NO_VALUE = "No value set"
_MODEL_PACKAGE = "https://eclipse.org/sensinact/"


def epoch_ms(seconds: float | None) -> int:
    return round((seconds if seconds is not None else time.time()) * 1000)


@dataclass(frozen=True, slots=True)
class Namer:
    java: bool = True

    def value_type(self, resource: ResourceSnapshot) -> str:
        return resource.type.java_name if self.java else resource.type.name

    def of(self, value: Any) -> str:
        """The type name of a free JSON value (metadata)."""
        if isinstance(value, bool):
            short, java = "boolean", "java.lang.Boolean"
        elif isinstance(value, int):
            short, java = (
                ("int", "java.lang.Integer") if -(2**31) <= value < 2**31 else ("long", "java.lang.Long")
            )
        elif isinstance(value, float):
            short, java = "double", "java.lang.Double"
        elif isinstance(value, str):
            short, java = "string", "java.lang.String"
        elif isinstance(value, Mapping):
            short, java = "object", "java.util.Map"
        elif isinstance(value, list | tuple):
            short, java = "array", "java.util.List"
        else:
            short, java = "object", "java.lang.Object"
        return java if self.java else short


# --- lists and descriptions ----------------------------------------------------------------------------


def resource_summary(resource: ResourceSnapshot) -> dict[str, Any]:
    summary: dict[str, Any] = {"name": resource.name, "type": str(resource.kind)}
    if resource.kind is not ResourceKind.ACTION:  # actions have no read/write mode
        summary["rws"] = resource.mode.rws
    return summary


def describe_service(service: ServiceSnapshot, resources: Collection[str] | None = None) -> dict[str, Any]:
    return {
        "name": service.name,
        "resources": [
            resource_summary(res)
            for name, res in service.resources.items()
            if resources is None or name in resources
        ],
    }


def describe_provider(provider: ProviderSnapshot, services: Iterable[str]) -> dict[str, Any]:
    return {"name": provider.name, "services": list(services), "linkedProviders": []}


def complete_entry(provider: ProviderSnapshot, attrs: Collection[str]) -> dict[str, Any]:
    """A COMPLETE_LIST item; `attrs` (icon, friendlyName, location) picks the admin values shown."""
    entry: dict[str, Any] = {"name": provider.name}
    admin = provider.services.get("admin")
    for attr in ("location", "icon", "friendlyName"):
        wanted = attr in attrs or (attr == "location" and not attrs)
        resource = admin.resources.get(attr) if admin is not None else None
        if wanted and resource is not None and resource.value is not None:
            entry[attr] = resource.value
    entry["services"] = [describe_service(service) for service in provider.services.values()]
    entry["linkedProviders"] = []
    return entry


def describe_resource(resource: ResourceSnapshot, namer: Namer) -> dict[str, Any]:
    attributes = [
        {"name": key, "value": value, "type": namer.of(value)}
        for key, value in resource.metadata.items()
        if key != "timestamp"
    ]
    if resource.kind is ResourceKind.ACTION:
        access = [
            {
                "name": "ACT",
                "parameters": [
                    {
                        "name": p.name,
                        "type": p.type.java_name if namer.java else p.type.name,
                        "fixed": False,
                        "constraints": [],
                    }
                    for p in resource.parameters
                ],
            }
        ]
    else:
        access = [
            {"name": "GET", "parameters": [_param("attributeName", "string", namer)]},
            {
                "name": "SUBSCRIBE",
                "parameters": [
                    _param("topics", "array", namer),
                    *(
                        _param(name, "boolean", namer)
                        for name in (
                            "isDataListener",
                            "isMetadataListener",
                            "isLifecycleListener",
                            "isActionListener",
                        )
                    ),
                ],
            },
            {"name": "UNSUBSCRIBE", "parameters": [_param("subscriptionId", "string", namer)]},
        ]
        if resource.mode is ValueMode.MODIFIABLE:
            access.append(
                {
                    "name": "SET",
                    "parameters": [
                        {
                            "name": "value",
                            "type": namer.value_type(resource),
                            "fixed": False,
                            "constraints": [],
                        }
                    ],
                }
            )
    return {
        "name": resource.name,
        "type": str(resource.kind),
        "valueType": namer.value_type(resource),
        "attributes": attributes,
        "accessMethods": access,
    }


_JAVA = {"string": "java.lang.String", "array": "java.util.List", "boolean": "boolean"}


def _param(name: str, short: str, namer: Namer) -> dict[str, Any]:
    return {"name": name, "type": _JAVA[short] if namer.java else short, "fixed": False, "constraints": []}


# --- values --------------------------------------------------------------------------------------------


def value_response(
    resource: ResourceSnapshot, namer: Namer, *, metadata: bool = False, attribute: str = "value"
) -> tuple[int, dict[str, Any], str | None]:
    """GET/SET payload: (statusCode, response, error). An unset value is 204 "No value set"."""
    if attribute != "value":
        if attribute not in resource.metadata:
            return 404, {}, f"Unknown attribute {attribute[:80]!r}"
        value = resource.metadata[attribute]
        body = {
            "name": attribute,
            "timestamp": epoch_ms(resource.timestamp),
            "type": namer.of(value),
            "value": value,
        }
        return 200, body, None
    body = {
        "name": resource.name,
        "timestamp": epoch_ms(resource.timestamp),
        "type": namer.value_type(resource),
        "value": resource.value,
    }
    if metadata:
        body["attributes"] = dict(resource.metadata)
    if not resource.has_value:
        return 204, body, NO_VALUE
    return 200, body, None


def snapshot_resource(resource: ResourceSnapshot, namer: Namer, metadata: bool) -> dict[str, Any]:
    body = {
        "name": resource.name,
        "timestamp": epoch_ms(resource.timestamp) if resource.has_value else 0,
        "type": namer.value_type(resource),
        "value": resource.value,
    }
    if metadata:
        body["attributes"] = dict(resource.metadata)
    return body


def snapshot_provider(
    provider: ProviderSnapshot,
    namer: Namer,
    metadata: bool,
    selected: Mapping[str, Collection[str]] | None = None,
) -> dict[str, Any]:
    """A provider of a SNAPSHOT_RESPONSE; `selected` (service -> resources) narrows it."""
    services = {}
    for service_name, service in provider.services.items():
        if selected is not None and service_name not in selected:
            continue
        wanted = selected[service_name] if selected is not None else None
        services[service_name] = {
            "name": service_name,
            "resources": {
                name: snapshot_resource(res, namer, metadata)
                for name, res in service.resources.items()
                if res.kind is not ResourceKind.ACTION and (wanted is None or name in wanted)
            },
        }
    return {
        "name": provider.name,
        "modelName": provider.name,
        "modelPackageUri": _MODEL_PACKAGE,
        "services": services,
        "linkedProviders": [],
    }
