"""The simulated vehicle behind the demo profile.

It adds its resources to the model at run time, as a real driver does, and produces plausible readings at
a configured rate: temperature and humidity drift with noise, PM2.5 spikes now and then, and the truck
drives a closed route (a garbage collection loop in Fujisawa, the M-Sec pilot city). The `beacon/switch`
action is an actuator: it sets the `beacon/on` state, as a GPIO output would.
"""

from __future__ import annotations

import math
import random
import time
from typing import Literal

from pydantic import Field

from ...core.config import DriverConfig
from ...core.config.schema_base import Name
from ...core.model import ActionCall, Model, Parameter, ResourceKind, ResourceSpec, ValueMode, value_type
from ...core.runtime import Component
from ..base import DriverPlugin

# (lat, lon) corners of the collection loop around Fujisawa station.
ROUTE = [
    (35.3389, 139.4871),
    (35.3421, 139.4912),
    (35.3398, 139.4980),
    (35.3352, 139.4949),
    (35.3339, 139.4885),
]


class SimulatedConfig(DriverConfig):
    type: Literal["simulated"]
    provider: Name = "truck"
    rate_hz: float = Field(default=2.0, gt=0, le=1000, allow_inf_nan=False)
    gps: bool = True
    seed: int | None = None


def _double(unit: str, kind: ResourceKind = ResourceKind.SENSOR) -> ResourceSpec:
    return ResourceSpec(value_type("double"), kind, ValueMode.UPDATABLE, {"unit": unit})


SENSORS = {
    ("environment", "temperature"): _double("Cel"),
    ("environment", "humidity"): _double("%RH"),
    ("air", "pm25"): _double("ug/m3"),
    ("gps", "speed"): _double("km/h"),
    ("gps", "heading"): _double("deg"),
}


class SimulatedVehicle(Component):
    critical = False

    def __init__(self, config: SimulatedConfig, model: Model) -> None:
        super().__init__(f"driver:{config.id}")
        self.config = config
        self.model = model
        self.random = random.Random(config.seed)
        self.distance = 0.0  # metres along the route

    async def start(self) -> None:
        provider = self.config.provider
        self.model.add_provider(
            provider,
            friendly_name=f"Simulated truck ({self.config.id})",
            admin={
                "location": ResourceSpec(value_type("geojson"), ResourceKind.PROPERTY, ValueMode.UPDATABLE)
            },
        )
        for (service, resource), spec in SENSORS.items():
            if service == "gps" and not self.config.gps:
                continue
            self.model.ensure_resource(provider, service, resource, spec)
        handler = f"{self.config.id}.beacon"
        self.model.register_action_handler(handler, self._switch_beacon)
        self.model.ensure_resource(
            provider,
            "beacon",
            "on",
            ResourceSpec(value_type("boolean"), ResourceKind.STATE_VARIABLE),
            value=False,
        )
        self.model.ensure_resource(
            provider,
            "beacon",
            "switch",
            ResourceSpec(
                value_type("boolean"),
                ResourceKind.ACTION,
                parameters=(Parameter("on", value_type("boolean")),),
                handler=handler,
            ),
        )

    def _switch_beacon(self, call: ActionCall) -> bool:
        on = bool(call.params["on"])
        self.model.update(call.provider, "beacon", "on", on)
        return on

    async def run(self) -> None:
        period = 1.0 / self.config.rate_hz
        start = time.monotonic()
        tick = 0
        while not self.stopping:
            self.step(time.time())
            tick += 1
            # Sleep to the next slot of a fixed schedule, so the rate does not drift with work done.
            await self.wait_stopping(max(0.0, start + tick * period - time.monotonic()))

    def step(self, now: float) -> None:
        p, rnd = self.config.provider, self.random
        self.model.update(
            p,
            "environment",
            "temperature",
            round(18 + 4 * math.sin(now / 600) + rnd.gauss(0, 0.1), 2),
            timestamp=now,
        )
        self.model.update(
            p,
            "environment",
            "humidity",
            round(min(100, max(0, 60 + 10 * math.cos(now / 900) + rnd.gauss(0, 0.5))), 1),
            timestamp=now,
        )
        spike = 40 if rnd.random() < 0.02 else 0
        self.model.update(p, "air", "pm25", round(max(0.0, 12 + spike + rnd.gauss(0, 2)), 1), timestamp=now)
        if self.config.gps:
            self._drive(now)

    def _drive(self, now: float) -> None:
        speed = max(0.0, 25 + 10 * math.sin(now / 40) + self.random.gauss(0, 1))  # km/h
        self.distance += speed / 3.6 / self.config.rate_hz
        (lat1, lon1), (lat2, lon2), fraction = _position_on_route(self.distance)
        lat, lon = lat1 + (lat2 - lat1) * fraction, lon1 + (lon2 - lon1) * fraction
        heading = math.degrees(math.atan2((lon2 - lon1) * math.cos(math.radians(lat)), lat2 - lat1)) % 360
        p = self.config.provider
        self.model.update(p, "gps", "speed", round(speed, 1), timestamp=now)
        self.model.update(p, "gps", "heading", round(heading, 1), timestamp=now)
        self.model.update(
            p,
            "admin",
            "location",
            {"type": "Point", "coordinates": [round(lon, 6), round(lat, 6)]},
            timestamp=now,
        )


def _leg_length(a: tuple[float, float], b: tuple[float, float]) -> float:
    dlat = (b[0] - a[0]) * 111_320
    dlon = (b[1] - a[1]) * 111_320 * math.cos(math.radians(a[0]))
    return math.hypot(dlat, dlon)


def _position_on_route(distance: float) -> tuple[tuple[float, float], tuple[float, float], float]:
    legs = [(ROUTE[i], ROUTE[(i + 1) % len(ROUTE)]) for i in range(len(ROUTE))]
    total = sum(_leg_length(a, b) for a, b in legs)
    left = distance % total
    for a, b in legs:
        length = _leg_length(a, b)
        if left <= length:
            return a, b, left / length
        left -= length
    return legs[-1][0], legs[-1][1], 1.0


PLUGIN = DriverPlugin(
    "simulated",
    SimulatedConfig,
    SimulatedVehicle,  # type: ignore[arg-type]
    "a simulated truck (environment, air quality, GPS, beacon)",
)
