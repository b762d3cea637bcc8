"""The camera driver: captures frames on a thread and hands them, in memory only, to one consumer.

Two threads: capture (reads the source as fast as it delivers, puts the latest frame in a one-slot
mailbox) and delivery (takes it and calls the consumer, normally the anonymizer). A slow consumer therefore
costs dropped frames, counted, never a stalled camera or a queue growing in memory. Only counters reach the
model (frame rate, captured, dropped): the pixels never do, nor any log line, nor the disk.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter

from ...core.model import Model, ResourceKind, ResourceSpec, ValueMode, value_type
from ...core.runtime import Component
from ...core.runtime.component import State
from ..common import Backoff
from .config import CameraConfig
from .frames import Frame, FrameConsumer, Mailbox
from .sources import FrameSource, make_source

log = logging.getLogger("agent.drivers.camera")

_SPECS = {
    "fps": ResourceSpec(value_type("double"), ResourceKind.SENSOR, ValueMode.UPDATABLE, {"unit": "1/s"}),
    "captured": ResourceSpec(value_type("long")),
    "delivered": ResourceSpec(value_type("long")),
    "dropped": ResourceSpec(value_type("long")),
    "connected": ResourceSpec(value_type("boolean"), ResourceKind.STATE_VARIABLE),
}


class CameraDriver(Component):
    critical = False

    def __init__(self, config: CameraConfig, model: Model, source: FrameSource | None = None) -> None:
        super().__init__(f"driver:{config.id}")
        self.config = config
        self.model = model
        self.source = source or make_source(
            config.source, config.uri, fps=config.fps, width=config.width, height=config.height
        )
        self.consumer: FrameConsumer | None = None
        self.mailbox = Mailbox()
        # Metrics-friendly counters: monotonic totals, read live (no copies to keep in sync).
        self.captured = 0
        self.delivered = 0
        self.dropped: Counter[str] = Counter()  # reason -> frames: busy, no_consumer, consumer_error
        self.read_failures = 0
        self.reconnects = 0
        self.fps = 0.0
        self.connected = False
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._link = "starting"

    def set_consumer(self, consumer: FrameConsumer | None) -> None:
        """Who receives frames (the anonymizer). Without one every frame is dropped: fail closed."""
        self.consumer = consumer

    # --- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        p, s = self.config.provider, self.config.service
        self.model.add_provider(p)
        for name, spec in _SPECS.items():
            self.model.ensure_resource(p, s, name, spec)
        self._stop.clear()
        self.mailbox.open()
        self._threads = [
            threading.Thread(target=self._capture, name=f"{self.config.id}-capture", daemon=True),
            threading.Thread(target=self._deliver, name=f"{self.config.id}-deliver", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    async def run(self) -> None:
        last_time, last_count = time.monotonic(), self.captured
        while not await self.wait_stopping(self.config.stats_interval):
            now = time.monotonic()
            self.fps = round((self.captured - last_count) / max(now - last_time, 1e-6), 2)
            last_time, last_count = now, self.captured
            self._publish_stats()
            threads = self._threads  # emptied by stop(): a stopping driver has none to check
            if threads and not self.stopping and not any(t.is_alive() for t in threads):
                raise RuntimeError("camera threads ended")

    async def stop(self) -> None:
        await super().stop()
        self._stop.set()
        self.mailbox.close()
        threads, self._threads = self._threads, []
        for thread in threads:
            await asyncio.to_thread(thread.join, 5)

    # --- capture thread ----------------------------------------------------------------------------

    def _capture(self) -> None:
        backoff = Backoff(self.config.reconnect_initial, self.config.reconnect_max)
        seq = 0
        while not self._stop.is_set():
            try:
                self.source.open()
            except OSError as error:
                delay = backoff.next_delay()
                self._set_link(False, f"{error}; retry {backoff.attempts} in {delay:.1f}s")
                self._stop.wait(delay)
                continue
            self._set_link(True, f"capturing from {self.source.describe()}")
            try:
                while not self._stop.is_set():
                    image = self.source.read()
                    if image is None:
                        break
                    backoff.reset()
                    seq += 1
                    self.captured += 1
                    self.mailbox.put(Frame(seq, time.time(), image))
            finally:
                self.source.close()
            if self._stop.is_set():
                break
            if self.source.ended:
                self._set_link(False, f"{self.source.describe()} ended")
                return
            self.read_failures += 1
            self.reconnects += 1
            delay = backoff.next_delay()
            self._set_link(False, f"{self.source.describe()} lost; reconnecting in {delay:.1f}s")
            self._stop.wait(delay)

    def _set_link(self, connected: bool, detail: str) -> None:
        self.connected = connected
        self._link = detail
        (log.info if connected else log.warning)("%s: %s", self.config.id, detail)
        self._refresh_health()

    # --- delivery thread ---------------------------------------------------------------------------

    def _deliver(self) -> None:
        while not self._stop.is_set():
            frame = self.mailbox.take(timeout=0.5)
            if frame is None:
                continue
            consumer = self.consumer
            if consumer is None:
                self.dropped["no_consumer"] += 1
                continue
            try:
                consumer(frame)
            except Exception as error:
                # Only the type: a message or a traceback could quote the frame (its pixels).
                self.dropped["consumer_error"] += 1
                log.error(
                    "%s: consumer failed on frame %d: %s", self.config.id, frame.seq, type(error).__name__
                )
            else:
                self.delivered += 1
            finally:
                del frame  # the pixels are gone as soon as the consumer is done

    # --- stats -------------------------------------------------------------------------------------

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values()) + self.mailbox.replaced

    def stats(self) -> dict[str, object]:
        return {
            "captured": self.captured,
            "delivered": self.delivered,
            "dropped": {**self.dropped, "busy": self.mailbox.replaced},
            "read_failures": self.read_failures,
            "reconnects": self.reconnects,
            "fps": self.fps,
            "connected": self.connected,
        }

    def _publish_stats(self) -> None:
        p, s = self.config.provider, self.config.service
        for name, value in (
            ("fps", float(self.fps)),
            ("captured", self.captured),
            ("delivered", self.delivered),
            ("dropped", self.dropped_total),
            ("connected", self.connected),
        ):
            self.model.update(p, s, name, value)
        self._refresh_health()

    def _refresh_health(self) -> None:
        detail = f"{self._link}; {self.fps:.1f} fps, {self.dropped_total} dropped"
        if self.consumer is None:
            detail += " (no consumer: frames discarded)"
        self.set_health(State.OK if self.connected else State.DEGRADED, detail)
