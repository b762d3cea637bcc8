"""The anonymizer's Prometheus metrics: counts and durations per camera, never pixel data."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from agent.anonymizer.metrics import AnonymizerCollector

from .kit import person_image, section
from .test_service import running, until


async def test_metrics_count_frames_drops_and_stage_time(models_dir: Path, tmp_path: Path) -> None:
    async with running(section(models_dir, queue_depth=1), tmp_path) as (stream, _, _):
        for seq in range(10):
            stream.submit(person_image(), seq=seq, timestamp=0.0)
        await until(lambda: stream.frames_out + sum(stream.dropped.values()) == 10)
        registry = CollectorRegistry()
        registry.register(AnonymizerCollector(lambda: [stream]))
        text = generate_latest(registry).decode()
    assert 'msec_anonymizer_frames_in_total{camera="cam0"} 10.0' in text
    assert f'msec_anonymizer_frames_out_total{{camera="cam0"}} {float(stream.frames_out)}' in text
    assert f'reason="overloaded"}} {float(stream.dropped["overloaded"])}' in text
    assert 'msec_anonymizer_stage_seconds_total{camera="cam0",stage="detect"}' in text
    assert 'msec_anonymizer_available{camera="cam0"} 1.0' in text
    assert 'msec_anonymizer_inpainted_total{backend="telea",camera="cam0"}' in text
    assert "msec_anonymizer_latency_p95_seconds" in text


def test_no_streams_no_samples() -> None:
    registry = CollectorRegistry()
    registry.register(AnonymizerCollector(list))
    assert "camera=" not in generate_latest(registry).decode()
