"""Server-Sent Events of the new generation: GET .../SUBSCRIBE streams a resource's changes.

`event: data` carries {provider, service, resource, timestamp, oldValue, newValue}; `event: lifecycle`
carries {provider, service, resource, timestamp, status, initialValue}. A comment `: liveness-check` goes
out when nothing happened for `stream_keepalive` seconds (it also finds closed clients), and
`: session-expired` just before the server ends a stream older than `stream_max_age`. Each stream holds a
server thread, so at most `max_streams` are open at once (503 beyond).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

from ...core.model import EventType, Model, ModelEvent, Subscription
from .describe import epoch_ms
from .envelopes import RestError, dumps

_STATUS = {
    EventType.PROVIDER_APPEARED: "PROVIDER_CREATED",
    EventType.PROVIDER_DISAPPEARED: "PROVIDER_DELETED",
    EventType.SERVICE_APPEARED: "SERVICE_CREATED",
    EventType.SERVICE_DISAPPEARED: "SERVICE_DELETED",
    EventType.RESOURCE_APPEARED: "RESOURCE_CREATED",
    EventType.RESOURCE_DISAPPEARED: "RESOURCE_DELETED",
}


def frame(event: ModelEvent) -> bytes | None:
    body = {
        "provider": event.provider,
        "service": event.service,
        "resource": event.resource,
        "timestamp": epoch_ms(event.timestamp),
    }
    if event.type is EventType.VALUE_UPDATED:
        name = "data"
        body.update(oldValue=event.old_value, newValue=event.value)
    elif event.type in _STATUS:
        name = "lifecycle"
        body.update(status=_STATUS[event.type], initialValue=event.value)
    else:
        return None
    return f"event: {name}\ndata: {dumps(body)}\n\n".encode()


class Streams:
    """The open SSE streams: bounded in number, all ended by close()."""

    def __init__(self, model: Model, limit: int, keepalive: float, max_age: float) -> None:
        self._model = model
        self._limit = limit
        self._keepalive = keepalive
        self._max_age = max_age
        self._lock = threading.Lock()
        self._open: set[Subscription] = set()
        self._closing = False

    def open(self, provider: str, service: str, resource: str) -> Iterator[bytes]:
        def wanted(event: ModelEvent) -> bool:
            # The resource's own events, and its provider's and service's appearing and disappearing.
            return event.provider == provider and (
                event.service is None or (event.service == service and event.resource in (None, resource))
            )

        with self._lock:
            if self._closing:
                raise RestError(503, "The REST facade is stopping")
            if len(self._open) >= self._limit:
                raise RestError(503, f"Too many event streams open (at most {self._limit})")
            subscription = self._model.subscribe(f"sse:{provider}/{service}/{resource}", filter=wanted)
            self._open.add(subscription)
        return self._run(subscription)

    def _run(self, subscription: Subscription) -> Iterator[bytes]:
        deadline = time.monotonic() + self._max_age
        try:
            yield b": stream opened\n\n"  # sends the headers now, so the client knows it is subscribed
            while True:
                left = deadline - time.monotonic()
                if left <= 0 or subscription.closed:
                    yield b": session-expired\n\n"
                    return
                event = subscription.get(timeout=min(self._keepalive, left))
                if event is None:
                    if not subscription.closed:
                        yield b": liveness-check\n\n"
                    continue
                data = frame(event)
                if data is not None:
                    yield data
        finally:
            subscription.close()
            with self._lock:
                self._open.discard(subscription)

    def close(self) -> None:
        with self._lock:
            self._closing = True
            open_now = list(self._open)
        for subscription in open_now:
            subscription.close()

    def __len__(self) -> int:
        return len(self._open)
