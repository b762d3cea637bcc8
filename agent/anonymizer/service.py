"""A camera's anonymizer stream: frames in (from the camera's delivery thread), anonymized JPEGs out.

Fail-closed: a frame leaves only as the output of `Anonymizer.process`. When the anonymizer is unavailable
(models refused), overloaded (the queue is full: the oldest waiting frame goes), fails on a frame, or is
stopping, the frame is dropped and counted by reason. Logs name a failure's type, never its message (which
could quote pixel data); metrics are counts and durations only.

Out: the camera's `frame` resource in the model (a PROPERTY, so the recorder does not copy it) every
`model_interval`, and the outbox stream `camera/<id>/frame` every `outbox_interval` (record.py).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.model import Model, ResourceKind, ResourceSpec, ValueMode, value_type
from ..core.outbox import Outbox
from ..core.runtime import Component, State
from .codec import fit_jpeg
from .config import AnonymizerSection
from .models import AnonymizerUnavailable
from .pipeline import Anonymizer, AnonymizerFactory
from .record import MAX_JPEG_BYTES, FrameRecord, frame_stream

log = logging.getLogger("agent.anonymizer")

FRAME_RESOURCE = "frame"
FRAME_SPEC = ResourceSpec(value_type("object"), ResourceKind.PROPERTY, ValueMode.UPDATABLE)
STAGES = ("queue", "detect", "mask", "inpaint", "encode", "total")
DROP_REASONS = ("unavailable", "overloaded", "error", "stopped")


@dataclass(slots=True, eq=False)
class _Pending:
    seq: int
    timestamp: float
    received: float
    image: Any = field(repr=False)


class FrameAnonymizer(Component):
    critical = False  # the agent still collects and publishes its other data without a camera

    def __init__(
        self,
        section: AnonymizerSection,
        factory: AnonymizerFactory,
        *,
        camera_id: str,
        provider: str,
        service: str,
        model: Model,
        outbox: Outbox | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(f"anonymizer:{camera_id}")
        self.section, self.factory = section, factory
        self.camera_id, self.provider, self.service = camera_id, provider, service
        self.model, self.outbox, self.clock = model, outbox, clock
        self.stream = frame_stream(camera_id)
        self.anonymizer: Anonymizer | None = None
        self.problem: str | None = None
        self.unavailable: str | None = None  # why the models were refused; None once they loaded
        # Counters are monotonic totals, read live by the metrics collector.
        self.frames_in = 0
        self.frames_out = 0
        self.dropped: Counter[str] = Counter({reason: 0 for reason in DROP_REASONS})
        self.to_model = 0
        self.to_outbox = 0
        self.stage_seconds: Counter[str] = Counter({stage: 0.0 for stage in STAGES})
        self.latencies: deque[float] = deque(maxlen=512)  # recent end-to-end seconds, for p95 in health
        self.inpainters: Counter[str] = Counter()
        self._queue: deque[_Pending] = deque()
        self._cond = threading.Condition()
        self._lock = threading.Lock()  # counters written by two threads
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._next_model = 0.0
        self._next_outbox = 0.0

    # --- input (the camera's delivery thread) ------------------------------------------------------

    def submit(self, image: np.ndarray, *, seq: int, timestamp: float) -> None:
        """Queue a frame; never blocks. Dropped (and counted) when it cannot be anonymized now."""
        with self._cond:
            self.frames_in += 1
            if self.anonymizer is None or self._worker is None or self._stop.is_set():
                self._drop("unavailable" if self.unavailable is not None else "stopped")
                return
            if len(self._queue) >= self.section.queue_depth:
                self._queue.popleft()  # the oldest goes: the newest is what a viewer wants
                self._drop("overloaded")
            self._queue.append(_Pending(seq, timestamp, self.clock(), image))
            self._cond.notify()

    def _drop(self, reason: str, count: int = 1) -> None:
        with self._lock:
            self.dropped[reason] += count

    # --- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        self._stop.clear()
        self.model.add_provider(self.provider)
        self.model.ensure_resource(self.provider, self.service, FRAME_RESOURCE, FRAME_SPEC)
        try:
            anonymizer = await asyncio.to_thread(self.factory.create)
        except AnonymizerUnavailable as error:
            self.problem = self.unavailable = str(error)
            self.set_health(State.FAILED, f"anonymizer unavailable, frames dropped: {error}")
            log.error("%s: anonymizer unavailable, frames are dropped: %s", self.camera_id, error)
            raise
        self.problem, self.unavailable = self.factory.problem, None
        self.anonymizer = anonymizer
        self._worker = threading.Thread(target=self._work, name=f"{self.name}-worker", daemon=True)
        self._worker.start()
        self._refresh_health()

    async def run(self) -> None:
        while not await self.wait_stopping(1.0):
            worker = self._worker
            if worker is not None and not worker.is_alive() and not self.stopping:
                raise RuntimeError("anonymizer worker ended")
            self._refresh_health()

    async def stop(self) -> None:
        await super().stop()
        with self._cond:
            self._stop.set()
            self._drop("stopped", len(self._queue))
            self._queue.clear()
            self._cond.notify_all()
        worker, self._worker = self._worker, None
        if worker is not None:
            await asyncio.to_thread(worker.join, 10)
        self.anonymizer = None

    # --- worker ------------------------------------------------------------------------------------

    def _take(self) -> _Pending | None:
        with self._cond:
            self._cond.wait_for(lambda: bool(self._queue) or self._stop.is_set(), 0.5)
            return self._queue.popleft() if self._queue and not self._stop.is_set() else None

    def _work(self) -> None:
        while not self._stop.is_set():
            pending = self._take()
            anonymizer = self.anonymizer
            if pending is None or anonymizer is None:
                continue
            try:
                self._anonymize(anonymizer, pending)
            except Exception as error:
                # Only the type: a message or a traceback could quote the frame.
                self._drop("error")
                log.error("%s: frame %d dropped: anonymizer failed (%s)", self.camera_id, pending.seq,
                          type(error).__name__)  # fmt: skip
            finally:
                del pending

    def _anonymize(self, anonymizer: Anonymizer, pending: _Pending) -> None:
        started = self.clock()
        result = anonymizer.process(pending.image)
        pending.image = None  # the raw pixels are not needed any more
        now = self.clock()
        publish_model = now >= self._next_model
        publish_outbox = self.outbox is not None and now >= self._next_outbox
        encode_start = time.perf_counter()
        record = None
        if publish_model or publish_outbox:
            jpeg, width, height = fit_jpeg(result.image, self.section.jpeg_quality, MAX_JPEG_BYTES)
            record = FrameRecord(
                camera=self.camera_id,
                seq=pending.seq,
                ts=pending.timestamp,
                width=width,
                height=height,
                masked_ratio=result.masked_ratio,
                detections=len(result.detections),
                jpeg=jpeg,
                provider=self.provider,
                service=self.service,
            )
        encode = time.perf_counter() - encode_start
        if record is not None and publish_outbox and self.outbox is not None:
            self.outbox.append(self.stream, record.encode())
            self._next_outbox = now + self.section.outbox_interval
            self.to_outbox += 1
        if record is not None and publish_model:
            self.model.update(
                self.provider, self.service, FRAME_RESOURCE, record.to_json(), timestamp=pending.timestamp
            )
            self._next_model = now + self.section.model_interval
            self.to_model += 1
        finished = self.clock()
        with self._lock:
            self.frames_out += 1
            self.inpainters[result.inpainter] += 1
            for stage, seconds in result.timings.items():
                self.stage_seconds[stage] += seconds
            self.stage_seconds["queue"] += max(started - pending.received, 0.0)
            self.stage_seconds["encode"] += encode
            self.stage_seconds["total"] += max(finished - pending.received, 0.0)
            self.latencies.append(max(finished - pending.received, 0.0))

    # --- health ------------------------------------------------------------------------------------

    def p95_latency(self) -> float | None:
        recent = sorted(self.latencies)
        return recent[min(len(recent) - 1, int(0.95 * len(recent)))] if recent else None

    def stats(self) -> dict[str, object]:
        with self._lock:
            return {
                "frames_in": self.frames_in,
                "frames_out": self.frames_out,
                "dropped": dict(self.dropped),
                "to_model": self.to_model,
                "to_outbox": self.to_outbox,
                "inpainters": dict(self.inpainters),
                "p95_latency": self.p95_latency(),
                "problem": self.problem,
            }

    def _refresh_health(self) -> None:
        if self.anonymizer is None:
            return
        p95 = self.p95_latency()
        detail = (
            f"{self.frames_out} frames anonymized, {sum(self.dropped.values())} dropped"
            + (f", p95 {p95 * 1000:.0f} ms" if p95 is not None else "")
            + (f"; {self.problem}" if self.problem else "")
        )
        self.set_health(State.DEGRADED if self.problem else State.OK, detail)
