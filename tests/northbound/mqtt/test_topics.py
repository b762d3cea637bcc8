"""Topic templates and names: no wildcards, NUL, empty levels or '$' prefixes reach a PUBLISH."""

from __future__ import annotations

import pytest

from agent.northbound.mqtt.topics import TopicBuilder, TopicError, check_topic, status_topic


def test_default_layout_and_stream_template() -> None:
    assert (
        TopicBuilder("msec/{device}/{provider}/{service}/{resource}", "t1").topic("p/s/r") == "msec/t1/p/s/r"
    )
    assert TopicBuilder("fleet/{stream}/{device}", "t1").topic("p/s/r") == "fleet/p/s/r/t1"
    assert status_topic("msec/{device}/status", "t1") == "msec/t1/status"


@pytest.mark.parametrize("stream", ["p/s", "p/s/r/x", "p/s+/r", "p/#/r", "p/s/r\0", "p//r"])
def test_streams_that_cannot_make_a_topic(stream: str) -> None:
    with pytest.raises(TopicError):
        TopicBuilder("msec/{device}/{stream}", "t1").topic(stream)


@pytest.mark.parametrize(
    "topic", ["", "a/+/b", "a/#", "a\0b", "$SYS/x", "a//b", "a/", "x" * 65_536, "\ud800"]
)
def test_invalid_topic_names(topic: str) -> None:
    with pytest.raises(TopicError):
        check_topic(topic)


def test_device_names_are_checked_too() -> None:
    with pytest.raises(TopicError):
        TopicBuilder("msec/{device}/{stream}", "bad/device")
