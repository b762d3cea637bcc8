"""Recent values of numeric resources and the GPS track, for the status page's small charts.

A lossy model subscriber: it is a view, so under a flood it drops events (counted by the bus) rather than
slow anyone down. Points are thinned to one per resource per `resolution` seconds to bound memory.
"""

from __future__ import annotations

import collections
import threading
from typing import Any

from ...core.model import EventType, Model, ModelEvent

Point = tuple[float, float]  # (timestamp, value)


class History:
    def __init__(self, model: Model, *, seconds: int = 300, resolution: float = 1.0) -> None:
        self.seconds = seconds
        self.resolution = resolution
        points = max(2, int(seconds / resolution))
        self._series: dict[str, collections.deque[Point]] = collections.defaultdict(
            lambda: collections.deque(maxlen=points)
        )
        self._track: dict[str, collections.deque[Point]] = collections.defaultdict(
            lambda: collections.deque(maxlen=points)
        )
        self._lock = threading.Lock()
        self._subscription = model.subscribe(
            "status-history", maxsize=10_000, filter=lambda e: e.type is EventType.VALUE_UPDATED
        )
        self._thread = threading.Thread(target=self._consume, name="status-history", daemon=True)
        self._thread.start()

    def _consume(self) -> None:
        for event in self._subscription:
            self.record(event)

    def record(self, event: ModelEvent) -> None:
        value, timestamp = event.value, event.timestamp or 0.0
        if event.service == "admin" and event.resource == "location":
            point = _point_of(value)
            if point is not None:
                self._add(self._track[event.provider], timestamp, point)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            self._add(self._series[event.path], timestamp, float(value))

    def _add(self, series: collections.deque[Any], timestamp: float, value: Any) -> None:
        with self._lock:
            if series and timestamp - series[-1][0] < self.resolution:
                series[-1] = (series[-1][0], value)  # same slot: keep the latest
            else:
                series.append((timestamp, value))

    def series(self, path: str, since: float) -> list[Point]:
        with self._lock:
            return [p for p in self._series.get(path, ()) if p[0] >= since]

    def all_series(self, since: float) -> dict[str, list[Point]]:
        with self._lock:
            return {path: [p for p in points if p[0] >= since] for path, points in self._series.items()}

    def tracks(self, since: float) -> dict[str, list[tuple[float, list[float]]]]:
        with self._lock:
            return {p: [(t, list(xy)) for t, xy in points if t >= since] for p, points in self._track.items()}

    def close(self) -> None:
        self._subscription.close()
        self._thread.join(2)


def _point_of(geojson: Any) -> tuple[float, float] | None:
    if isinstance(geojson, dict) and geojson.get("type") == "Point":
        coordinates = geojson.get("coordinates")
        if isinstance(coordinates, list) and len(coordinates) >= 2:
            return float(coordinates[0]), float(coordinates[1])
    return None
