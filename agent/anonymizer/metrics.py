"""Prometheus metrics of the anonymizer streams: counts and durations only, never pixel data."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from .service import FrameAnonymizer


class AnonymizerCollector(Collector):
    def __init__(self, streams: Callable[[], Iterable[FrameAnonymizer]]) -> None:
        self.streams = streams

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        frames_in = CounterMetricFamily(
            "msec_anonymizer_frames_in", "Camera frames handed to the anonymizer", labels=["camera"]
        )
        frames_out = CounterMetricFamily("msec_anonymizer_frames_out", "Frames anonymized", labels=["camera"])
        dropped = CounterMetricFamily(
            "msec_anonymizer_frames_dropped",
            "Frames dropped, never published: unavailable, overloaded, error, stopped",
            labels=["camera", "reason"],
        )
        published = CounterMetricFamily(
            "msec_anonymizer_frames_published",
            "Anonymized frames written to the model or the outbox",
            labels=["camera", "target"],
        )
        seconds = CounterMetricFamily(
            "msec_anonymizer_stage_seconds",
            "Time spent per stage (queue, detect, mask, inpaint, encode, total), all frames",
            labels=["camera", "stage"],
        )
        inpainted = CounterMetricFamily(
            "msec_anonymizer_inpainted", "Frames filled per inpainting backend", labels=["camera", "backend"]
        )
        available = GaugeMetricFamily(
            "msec_anonymizer_available", "1 when the models verified and loaded", labels=["camera"]
        )
        p95 = GaugeMetricFamily(
            "msec_anonymizer_latency_p95_seconds",
            "95th percentile of recent end-to-end latencies",
            labels=["camera"],
        )
        for stream in self.streams():
            camera = stream.camera_id
            stats = stream.stats()
            frames_in.add_metric([camera], stream.frames_in)
            frames_out.add_metric([camera], stream.frames_out)
            for reason, count in dict(stream.dropped).items():
                dropped.add_metric([camera, reason], count)
            published.add_metric([camera, "model"], stream.to_model)
            published.add_metric([camera, "outbox"], stream.to_outbox)
            for stage, total in dict(stream.stage_seconds).items():
                seconds.add_metric([camera, stage], total)
            for backend, count in dict(stream.inpainters).items():
                inpainted.add_metric([camera, backend], count)
            available.add_metric([camera], 1.0 if stream.anonymizer is not None else 0.0)
            if stats["p95_latency"] is not None:
                p95.add_metric([camera], float(stats["p95_latency"]))  # type: ignore[arg-type]
        yield from (frames_in, frames_out, dropped, published, seconds, inpainted, available, p95)
