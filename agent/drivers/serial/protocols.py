"""From bytes to model updates: one adapter per protocol, each pairing a framer with its parser.

An adapter declares the resources it writes (`specs`) and turns received bytes into `Reading`s (the
updates of one sentence, frame or line, applied together) or `Rejected`s. It knows nothing of ports or
threads, so the benchmark and the tests drive it with plain bytes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ...core.model import ResourceKind, ResourceSpec, ValueMode, value_type
from ..common import Rejected
from . import lines, nmea, pms5003
from .config import SerialConfig
from .framing import LineFramer

ADMIN_LOCATION = ("admin", "location")


@dataclass(frozen=True, slots=True)
class Reading:
    updates: tuple[tuple[str, str, Any], ...]  # (service, resource, value)


def _spec(kind: str, unit: str | None = None, **metadata: Any) -> ResourceSpec:
    if unit:
        metadata["unit"] = unit
    return ResourceSpec(value_type(kind), ResourceKind.SENSOR, ValueMode.UPDATABLE, metadata)


class Protocol:
    specs: Mapping[tuple[str, str], ResourceSpec]  # what start() declares (admin/location excepted)
    owns_location = False

    def feed(self, data: bytes) -> Iterator[Reading | Rejected]:
        raise NotImplementedError

    def reset(self) -> Rejected | None:
        """The port went away: drop (and report) what was half received."""
        raise NotImplementedError


class NmeaProtocol(Protocol):
    def __init__(self, config: SerialConfig) -> None:
        service = config.service or "gps"
        self.service = service
        self.location = config.location
        self.owns_location = config.location
        self.framer = LineFramer(config.max_line)
        self.ignored = 0  # well-formed sentences of other types (GSV, GSA, ...)
        self._last_fix: tuple[str, float, float] | None = None
        self.specs = {
            (service, "position"): _spec("geojson", description="GPS position, GeoJSON [lon, lat]"),
            (service, "fix_quality"): _spec("int", description="GGA fix quality: 0 none, 1 GPS, 2 DGPS"),
            (service, "satellites"): _spec("int"),
            (service, "hdop"): _spec("double"),
            (service, "altitude"): _spec("double", "m"),
            (service, "speed"): _spec("double", "km/h"),
            (service, "heading"): _spec("double", "deg"),
        }

    def feed(self, data: bytes) -> Iterator[Reading | Rejected]:
        for line in self.framer.feed(data):
            result = line if isinstance(line, Rejected) else nmea.parse(line)
            if result is None:
                self.ignored += 1
            elif isinstance(result, Rejected):
                yield result
            else:
                yield Reading(tuple(self._updates(result)))

    def _updates(self, s: nmea.Gga | nmea.Rmc) -> Iterator[tuple[str, str, Any]]:
        svc = self.service
        if isinstance(s, nmea.Gga):
            yield svc, "fix_quality", s.quality
            for name in ("satellites", "hdop", "altitude"):
                if (value := getattr(s, name)) is not None:
                    yield svc, name, value
        else:
            if s.speed_kmh is not None:
                yield svc, "speed", s.speed_kmh
            if s.heading is not None:
                yield svc, "heading", s.heading
        if s.lat is None or s.lon is None:
            return
        # GGA and RMC of one epoch carry the same fix: write it once, not twice per second.
        fix = (s.time, s.lat, s.lon)
        if fix == self._last_fix and s.time:
            return
        self._last_fix = fix
        point = {"type": "Point", "coordinates": [round(s.lon, 7), round(s.lat, 7)]}
        yield svc, "position", point
        if self.location:
            yield (*ADMIN_LOCATION, point)

    def reset(self) -> Rejected | None:
        return self.framer.reset()


class PmsProtocol(Protocol):
    def __init__(self, config: SerialConfig) -> None:
        self.service = config.service or "air"
        self.framer = pms5003.PmsFramer()
        # double, as every PM source of the model: two drivers must agree on a resource's shape.
        self.specs = {
            (self.service, name): _spec("double", "ug/m3", sensor="PMS5003")
            for name in ("pm1", "pm25", "pm10")
        } | {
            (self.service, f"particles_{size}"): _spec("int", "/0.1L", sensor="PMS5003")
            for size in pms5003.COUNT_SIZES
        }

    def feed(self, data: bytes) -> Iterator[Reading | Rejected]:
        svc = self.service
        for frame in self.framer.feed(data):
            if isinstance(frame, Rejected):
                yield frame
                continue
            updates = [(svc, "pm1", float(frame.pm1)), (svc, "pm25", float(frame.pm25))]
            updates.append((svc, "pm10", float(frame.pm10)))
            updates += [
                (svc, f"particles_{s}", n) for s, n in zip(pms5003.COUNT_SIZES, frame.counts, strict=True)
            ]
            yield Reading(tuple(updates))

    def reset(self) -> Rejected | None:
        return self.framer.reset()


class LinesProtocol(Protocol):
    def __init__(self, config: SerialConfig) -> None:
        self.fields = config.fields
        self.line_format = config.line_format
        self.framer = LineFramer(config.max_line)
        self.specs = {
            (f.service, f.resource): _spec(
                f.type, f.unit, **{k: v for k, v in (("min", f.min), ("max", f.max)) if v is not None}
            )
            for f in config.fields.values()
        }

    def feed(self, data: bytes) -> Iterator[Reading | Rejected]:
        for line in self.framer.feed(data):
            if isinstance(line, Rejected):
                yield line
                continue
            values = lines.parse(line, self.fields, self.line_format)
            if isinstance(values, Rejected):
                yield values
                continue
            yield Reading(
                tuple((self.fields[k].service, self.fields[k].resource, v) for k, v in values.items())
            )

    def reset(self) -> Rejected | None:
        return self.framer.reset()


PROTOCOLS: dict[str, type[Protocol]] = {"nmea": NmeaProtocol, "pms5003": PmsProtocol, "lines": LinesProtocol}


def make_protocol(config: SerialConfig) -> Protocol:
    return PROTOCOLS[config.protocol](config)  # type: ignore[call-arg]
