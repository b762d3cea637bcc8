"""Translation between the model and SOX objects, both ways; no I/O.

A provider is a SOX device; each of its resources outside `admin` is a transducer whose id is
`<service>/<resource>` ('/' never appears in a model name, so the id splits back unambiguously). The admin
resources become <property> elements. A reading's transducerValue carries the value as text (typedValue) and,
in rawValue, an envelope with the outbox uid and seq (so a consumer drops duplicates after a reconnect) and
the sealed record (what a consumer verifies once the sealer signs).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from ...core.model import ADMIN, ProviderSnapshot, ResourceKind, ResourceSpec, ValueMode, value_type
from ...core.model.types import VALUE_TYPES
from ...core.outbox import Record
from .wire import DeviceMeta, Property, Transducer, TransducerValue, format_value

# Units of SOX readers are free strings in practice; JSoxLib's own example uses "string" for text.
_UNITLESS = {"string": "string", "boolean": "boolean"}
_NAME_SAFE = re.compile(r"[^A-Za-z0-9_.:-]")


def transducer_id(service: str, resource: str) -> str:
    return f"{service}/{resource}"


def split_transducer_id(transducer: str, default_service: str = "sox") -> tuple[str, str]:
    """(service, resource) of a transducer id: ours split at '/', anyone else's go to `default_service`."""
    service, sep, resource = transducer.partition("/")
    if sep and "/" not in resource:
        return model_name(service), model_name(resource)
    return default_service, model_name(transducer)


def model_name(text: str) -> str:
    """A valid model name for a SOX name (which may hold spaces, '/', non-ASCII): readable where it can be,
    with a short hash when characters had to be replaced, so two different names never collide."""
    safe = _NAME_SAFE.sub("_", text).strip("_.:-") or "x"
    if safe == text and len(safe) <= 64:
        return safe
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return f"{safe[:55]}-{digest}"


def device_meta(
    provider: ProviderSnapshot, device: str, device_type: str, now: float, properties: Mapping[str, str]
) -> DeviceMeta:
    transducers = []
    for service_name, service in provider.services.items():
        if service_name == ADMIN:
            continue
        for res in service.resources.values():
            unit = res.metadata.get("unit")
            transducers.append(
                Transducer(
                    id=transducer_id(service_name, res.name),
                    name=res.name,
                    units=str(unit) if unit else _UNITLESS.get(res.type.name, "none"),
                    type_name=res.type.name,
                    min_value=_bound(res.metadata.get("min")),
                    max_value=_bound(res.metadata.get("max")),
                    can_actuate=res.kind is ResourceKind.ACTION or res.mode is ValueMode.MODIFIABLE,
                )
            )
    admin = {name: r.value for name, r in provider.services[ADMIN].resources.items() if r.value is not None}
    props = [Property(name, format_value(value)) for name, value in admin.items()]
    props += [Property(name, value) for name, value in properties.items()]
    return DeviceMeta(
        name=device,
        id=device,
        type=device_type,
        timestamp=now,
        description=str(admin.get("description") or admin.get("friendlyName") or "") or None,
        transducers=tuple(transducers),
        properties=tuple(props),
    )


def _bound(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def decode_reading(record: Record) -> dict[str, Any]:
    """The recorder's JSON payload of a record (see agent.core.recorder.encode_reading)."""
    reading = json.loads(record.payload)
    if not isinstance(reading, dict) or not {"provider", "service", "resource"} <= reading.keys():
        raise ValueError("not a reading")
    return reading


def reading_value(
    record: Record, reading: Mapping[str, Any], sealed: bytes, *, encrypted: bool
) -> TransducerValue:
    sealed_text = sealed.decode("utf-8", "replace")
    envelope = json.dumps(
        {"uid": record.uid, "seq": record.seq, "sealed": sealed_text}, separators=(",", ":")
    )
    timestamp = reading.get("timestamp")
    return TransducerValue(
        id=transducer_id(reading["service"], reading["resource"]),
        # An encrypted record must not leak its value in clear text next to the ciphertext.
        typed_value=sealed_text if encrypted else format_value(reading.get("value")),
        timestamp=float(timestamp) if isinstance(timestamp, int | float) else record.created,
        raw_value=envelope,
    )


def resource_spec(transducer: Transducer) -> ResourceSpec:
    """How a remote transducer is held in the model: a read-only sensor of its declared type (text when
    the publisher did not say, as JSoxLib devices do not)."""
    type_name = transducer.type_name if transducer.type_name in VALUE_TYPES else "string"
    metadata: dict[str, Any] = {"unit": transducer.units[:32]} if transducer.units else {}
    if transducer.min_value is not None:
        metadata["min"] = transducer.min_value
    if transducer.max_value is not None:
        metadata["max"] = transducer.max_value
    return ResourceSpec(value_type(type_name), ResourceKind.SENSOR, ValueMode.UPDATABLE, metadata)
