"""Actuation from SOX: a <transducerSetValue> published on one of our `_data` nodes drives the model.

Off unless configured. Who asked is the item's `publisher`, stamped by the server (XEP-0060 itemreply;
Prosody: expose_publisher), never anything inside the payload. Only JIDs on the allow-list act; others are
ignored and logged. The node's publish_model=publishers already keeps strangers from publishing; the
allow-list is checked here as well, so an owner or admin of the service is not authorized by accident.
A MODIFIABLE resource is SET (within its bounds); an ACTION is acted on, typedValue holding its
parameters as a JSON object (empty: no parameters).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Collection
from typing import Any
from xml.etree import ElementTree as ET

from ...core.model import Model, ModelError, ResourceKind, ValueMode
from . import mapping
from .wire import TransducerSetValue, WireError, parse_data, parse_value

log = logging.getLogger("agent.northbound.soxfire.actuation")

SOURCE = "soxfire"


def _bare(jid: str) -> str:
    return jid.split("/", 1)[0].lower()


class Actuator:
    def __init__(
        self, model: Model, allow: Collection[str], provider_of: Callable[[str], str | None]
    ) -> None:
        self.model = model
        self.allow = frozenset(_bare(j) for j in allow)
        self.provider_of = provider_of
        self.applied = 0
        self.refused = 0
        self.failed = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def handle(self, service: str, node: str, payload: ET.Element | None, publisher: str | None) -> None:
        """An item event of the session; anything but a transducerSetValue is none of our business."""
        provider = self.provider_of(node)
        if provider is None or payload is None:
            return
        try:
            requests = parse_data(payload).set_values
        except WireError:
            return  # not a <data> item (or our own readings in an odd shape): nothing to actuate
        if not requests:
            return  # our own readings, echoed because we subscribe to our _data nodes
        if publisher is None or _bare(publisher) not in self.allow:
            self.refused += len(requests)
            log.warning(
                "transducerSetValue on %s from %s ignored: not on the actuation allow-list",
                node,
                publisher or "an unknown publisher (the server does not expose publishers)",
            )
            return
        # The model's writers may wait (a lossless subscriber's backpressure, an action's handler): not on
        # the event loop. One task per item keeps an item's requests in order.
        task = asyncio.ensure_future(asyncio.to_thread(self._apply_all, provider, requests, _bare(publisher)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _apply_all(self, provider: str, requests: tuple[TransducerSetValue, ...], who: str) -> None:
        for request in requests:
            try:
                self._apply(provider, request)
            except (ModelError, WireError, ValueError) as error:
                self.failed += 1
                log.warning("transducerSetValue %s/%s from %s failed: %s", provider, request.id, who, error)
            else:
                self.applied += 1
                log.info("transducerSetValue %s/%s applied for %s", provider, request.id, who)

    def _apply(self, provider: str, request: TransducerSetValue) -> None:
        service, resource = mapping.split_transducer_id(request.id)
        snapshot = self.model.get(provider, service, resource)
        if snapshot.kind is ResourceKind.ACTION:
            params: Any = json.loads(request.typed_value) if request.typed_value.strip() else {}
            self.model.act(provider, service, resource, params)
        elif snapshot.mode is ValueMode.MODIFIABLE:
            self.model.set(
                provider,
                service,
                resource,
                parse_value(request.typed_value, snapshot.type.name),
                source=SOURCE,
            )
        else:
            raise ValueError(f"{snapshot.path} is {snapshot.mode}: it cannot be set from SOX")

    async def drain(self) -> None:
        """Waits for requests being applied (tests, and a clean stop)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
