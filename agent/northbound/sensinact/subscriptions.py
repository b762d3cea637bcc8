"""Callback subscriptions (legacy POST .../SUBSCRIBE): model events -> CALLBACK POSTs to subscribers.

One model subscription feeds a router thread, which applies each subscriber's conditions and appends the
message to that subscriber's own bounded queue (oldest dropped and counted when full). A small pool of
delivery workers POSTs queued messages, batched, to the callbacks; a subscriber is served by one worker at
a time, so its messages stay in order, and a slow one never holds up the others. A subscriber that fails
`callback_max_failures` times in a row (or once, with policy STOP) is dropped; so is one whose lifetime
ran out.
"""

from __future__ import annotations

import collections
import logging
import queue
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ...core.model import EventType, Model, ModelEvent
from .callbacks import CallbackClient, CallbackTarget, callback_path
from .conditions import NO_PREVIOUS, Condition, all_hold
from .config import RestSection
from .describe import epoch_ms
from .envelopes import RestError, dumps

log = logging.getLogger("agent.northbound.sensinact")
SWEEP_EVERY = 1.0


@dataclass(eq=False)
class CallbackSubscription:
    id: str
    owner: str
    provider: str
    service: str
    resource: str
    type_name: str
    target: CallbackTarget
    conditions: tuple[Condition, ...]
    policy: str
    expires_at: float  # time.monotonic()
    client: CallbackClient
    messages: collections.deque[dict[str, Any]] = field(default_factory=collections.deque)
    previous: Any = NO_PREVIOUS  # the last notified value, for abs/diff/changed
    delivered: int = 0
    dropped: int = 0  # queue full
    failed: int = 0  # messages of POSTs that failed
    failures: int = 0  # consecutive failed POSTs
    scheduled: bool = False
    closed: bool = False

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.provider, self.service, self.resource)


class CallbackHub:
    def __init__(
        self, model: Model, settings: RestSection, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._model = model
        self._settings = settings
        self._clock = clock
        self._lock = threading.Lock()
        self._subscriptions: dict[str, CallbackSubscription] = {}
        # Read by the model's publishing thread (in the event filter) without the lock: it is replaced,
        # never mutated, so a reader sees one consistent version.
        self._by_key: dict[tuple[str, str, str], tuple[CallbackSubscription, ...]] = {}
        self._ready: queue.SimpleQueue[CallbackSubscription | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._events = None

    # --- subscribers -------------------------------------------------------------------------------

    def subscribe(
        self,
        owner: str,
        provider: str,
        service: str,
        resource: str,
        type_name: str,
        target: CallbackTarget,
        conditions: tuple[Condition, ...],
        policy: str,
        lifetime: float | None,
    ) -> CallbackSubscription:
        lifetime = min(lifetime or self._settings.default_lifetime, self._settings.max_lifetime)
        sub = CallbackSubscription(
            id=secrets.token_hex(16),
            owner=owner,
            provider=provider,
            service=service,
            resource=resource,
            type_name=type_name,
            target=target,
            conditions=conditions,
            policy=policy,
            expires_at=self._clock() + lifetime,
            client=CallbackClient(target, self._settings.callback_timeout),
        )
        with self._lock:
            if self._stopping.is_set():
                raise RestError(503, "The REST facade is stopping")
            if len(self._subscriptions) >= self._settings.max_subscriptions:
                raise RestError(429, f"Too many subscriptions (at most {self._settings.max_subscriptions})")
            self._subscriptions[sub.id] = sub
            self._by_key = {**self._by_key, sub.key: (*self._by_key.get(sub.key, ()), sub)}
            self._start_locked()
        return sub

    def unsubscribe(self, subscription_id: str, owner: str) -> bool:
        with self._lock:
            sub = self._subscriptions.get(subscription_id)
            if sub is None or sub.owner != owner:
                return False
            self._remove_locked(sub, "unsubscribed")
        return True

    def get(self, subscription_id: str) -> CallbackSubscription | None:
        return self._subscriptions.get(subscription_id)

    def __len__(self) -> int:
        return len(self._subscriptions)

    def _remove_locked(self, sub: CallbackSubscription, reason: str) -> None:
        if sub.closed:
            return
        sub.closed = True
        self._subscriptions.pop(sub.id, None)
        rest = tuple(s for s in self._by_key.get(sub.key, ()) if s is not sub)
        by_key = dict(self._by_key)
        if rest:
            by_key[sub.key] = rest
        else:
            by_key.pop(sub.key, None)
        self._by_key = by_key
        if not sub.scheduled:  # else the worker holding it closes the client when it is done
            sub.client.close()
        log.info("callback subscription %s ended: %s", sub.id, reason)

    # --- threads -----------------------------------------------------------------------------------

    def _start_locked(self) -> None:
        if self._threads:
            return
        self._events = self._model.subscribe(
            "rest-callbacks",
            maxsize=max(10_000, self._settings.callback_queue * 10),
            filter=lambda event: (
                event.type is EventType.VALUE_UPDATED
                and (event.provider, event.service, event.resource) in self._by_key
            ),
        )
        self._threads.append(threading.Thread(target=self._route, name="rest-callback-router", daemon=True))
        for index in range(self._settings.callback_workers):
            name = f"rest-callback-{index}"
            self._threads.append(threading.Thread(target=self._deliver, name=name, daemon=True))
        for thread in self._threads:
            thread.start()

    def close(self, timeout: float = 5.0) -> None:
        with self._lock:
            self._stopping.set()
            for sub in list(self._subscriptions.values()):
                self._remove_locked(sub, "facade stopped")
            threads = self._threads
        if self._events is not None:
            self._events.close()
        for _ in range(self._settings.callback_workers):
            self._ready.put(None)
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    @property
    def events_dropped(self) -> int:
        """Events the router itself lost because it fell behind (its model queue is lossy)."""
        return self._events.dropped if self._events is not None else 0

    # --- the router --------------------------------------------------------------------------------

    def _route(self) -> None:
        events = self._events
        assert events is not None
        next_sweep = self._clock() + SWEEP_EVERY
        while not self._stopping.is_set():
            batch = events.get_batch(1000, timeout=SWEEP_EVERY / 2)
            if not batch and events.closed:
                return
            for event in batch:
                for sub in self._by_key.get((event.provider, event.service, event.resource), ()):  # type: ignore[arg-type]
                    self._offer(sub, event)
            now = self._clock()
            if now >= next_sweep:
                next_sweep = now + SWEEP_EVERY
                with self._lock:
                    for sub in [s for s in self._subscriptions.values() if s.expires_at <= now]:
                        self._remove_locked(sub, "lifetime expired")

    def _offer(self, sub: CallbackSubscription, event: ModelEvent) -> None:
        try:
            if sub.conditions and not all_hold(sub.conditions, event.value, sub.previous):
                return
        except Exception:  # a condition must never stop the router for everyone else
            log.exception("condition of subscription %s failed", sub.id)
            return
        sub.previous = event.value
        message = {
            "notification": {
                "timestamp": epoch_ms(event.timestamp),
                "name": sub.resource,
                "value": event.value,
                "type": sub.type_name,
            },
            "type": "ATTRIBUTE_VALUE_UPDATED",
            "uri": f"/{sub.provider}/{sub.service}/{sub.resource}/value",
        }
        with self._lock:
            if sub.closed:
                return
            if len(sub.messages) >= self._settings.callback_queue:
                sub.messages.popleft()
                sub.dropped += 1
            sub.messages.append(message)
            if not sub.scheduled:
                sub.scheduled = True
                self._ready.put(sub)

    # --- delivery ----------------------------------------------------------------------------------

    def _deliver(self) -> None:
        while True:
            sub = self._ready.get()
            if sub is None:
                return
            with self._lock:
                batch = [
                    sub.messages.popleft()
                    for _ in range(min(len(sub.messages), self._settings.callback_batch))
                ]
            if batch and not sub.closed:
                body = dumps({"type": "CALLBACK", "callbackId": sub.id, "messages": batch}).encode()
                ok = sub.client.post(callback_path(sub.target, sub.id), body)
                self._account(sub, ok, len(batch))
            with self._lock:
                if sub.messages and not sub.closed:
                    self._ready.put(sub)  # more came meanwhile: back of the line, fair to the others
                else:
                    sub.scheduled = False
                    if sub.closed:
                        sub.client.close()

    def _account(self, sub: CallbackSubscription, ok: bool, count: int) -> None:
        with self._lock:
            if ok:
                sub.delivered += count
                sub.failures = 0
                return
            sub.failed += count
            sub.failures += 1
            if "STOP" in sub.policy.split("|") or sub.failures >= self._settings.callback_max_failures:
                self._remove_locked(sub, f"callback failed {sub.failures} time(s) in a row")
        log.warning("callback of subscription %s failed (%d in a row)", sub.id, sub.failures)
