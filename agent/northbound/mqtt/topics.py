"""MQTT topic names: built from a configured template, checked before anything is published.

A topic *name* (what a PUBLISH carries) may not contain the wildcards '+' and '#' nor NUL, must be
1..65535 bytes of UTF-8, and should not start with '$' (reserved for the broker, e.g. $SYS). Templates are
checked once at configuration time; each stream's topic is built (and checked) once, then cached.
"""

from __future__ import annotations

import string

DEFAULT_TOPIC_TEMPLATE = "msec/{device}/{provider}/{service}/{resource}"
DEFAULT_STATUS_TEMPLATE = "msec/{device}/status"
MAX_TOPIC_BYTES = 65_535  # the length prefix of an MQTT UTF-8 string is 16 bits

DATA_FIELDS = frozenset({"device", "provider", "service", "resource", "stream"})
STATUS_FIELDS = frozenset({"device"})
_FORBIDDEN = ("+", "#", "\0")
_CACHE_LIMIT = 10_000  # streams are the model's resources: a few hundred; the cap only bounds a runaway


class TopicError(ValueError):
    """A topic (or a template, or a name substituted into one) that MQTT would refuse."""


def check_topic(topic: str) -> str:
    """Raises TopicError unless `topic` is a valid MQTT topic name to publish on."""
    if not topic:
        raise TopicError("topic is empty")
    for char in _FORBIDDEN:
        if char in topic:
            raise TopicError(f"topic contains {char!r}, which is not allowed in a topic name")
    if topic.startswith("$"):
        raise TopicError("topic starts with '$', which is reserved for the broker")
    try:
        size = len(topic.encode("utf-8"))
    except UnicodeEncodeError:
        raise TopicError("topic is not valid UTF-8 text") from None
    if size > MAX_TOPIC_BYTES:
        raise TopicError(f"topic is {size} bytes long, more than MQTT's {MAX_TOPIC_BYTES}")
    if "" in topic.split("/"):
        # Legal in MQTT, but "a//b" or a trailing '/' is nearly always a template mistake or an empty name.
        raise TopicError("topic has an empty level ('//', or a leading or trailing '/')")
    return topic


def template_fields(template: str) -> set[str]:
    """The placeholders of a template; TopicError for format specs, conversions or unbalanced braces."""
    fields = set()
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as error:
        raise TopicError(f"bad template: {error}") from None
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if spec or conversion or not name.isidentifier():
            raise TopicError("placeholders are plain names in braces, like {device}")
        fields.add(name)
    return fields


def check_template(template: str, *, data: bool) -> str:
    """A data template must tell streams apart: {stream}, or all of {provider} {service} {resource}."""
    allowed = DATA_FIELDS if data else STATUS_FIELDS
    fields = template_fields(template)
    unknown = fields - allowed
    if unknown:
        raise TopicError(
            f"unknown placeholder(s) {', '.join(sorted(unknown))}; expected: {', '.join(sorted(allowed))}"
        )
    if data and "stream" not in fields and not {"provider", "service", "resource"} <= fields:
        raise TopicError("a data topic needs {stream} or all of {provider}, {service} and {resource}")
    # Check the literal parts by rendering with a harmless name in every placeholder.
    check_topic(template.format(**dict.fromkeys(fields, "x")))
    return template


def check_name(kind: str, value: str) -> str:
    """A name put into a topic level: no wildcards, NUL or '/', not empty."""
    if not value:
        raise TopicError(f"{kind} name is empty")
    for char in (*_FORBIDDEN, "/"):
        if char in value:
            raise TopicError(f"{kind} name {value[:64]!r} contains {char!r}, not allowed in a topic level")
    return value


class TopicBuilder:
    """Maps an outbox stream ("provider/service/resource") to its topic, once per stream."""

    def __init__(self, template: str, device: str) -> None:
        self.template = check_template(template, data=True)
        self.device = check_name("device", device)
        self._cache: dict[str, str] = {}

    def topic(self, stream: str) -> str:
        topic = self._cache.get(stream)
        if topic is None:
            topic = self._build(stream)
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[stream] = topic
        return topic

    def _build(self, stream: str) -> str:
        parts = stream.split("/")
        if len(parts) != 3:
            raise TopicError(f"stream {stream[:200]!r} is not 'provider/service/resource'")
        provider, service, resource = (
            check_name(kind, part)
            for kind, part in zip(("provider", "service", "resource"), parts, strict=True)
        )
        return check_topic(
            self.template.format(
                device=self.device, provider=provider, service=service, resource=resource, stream=stream
            )
        )


def status_topic(template: str, device: str) -> str:
    return check_topic(check_template(template, data=False).format(device=check_name("device", device)))
