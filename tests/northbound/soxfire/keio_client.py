"""A SOX subscriber that behaves like Keio's client libraries (JSoxLib, soxjs2, cpslab-soxlib), written
against slixmpp alone, with its own lenient parsing: it checks what we publish from the outside.

Anonymous login on the anonymous virtual host, disco#items on pubsub.<domain> (devices = nodes ending in
_meta), the meta item read with items max_items=1, _data subscribed with the full JID.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from xml.etree import ElementTree as ET

from slixmpp import ClientXMPP

from agent.northbound.soxfire.session import release_stream


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1].lower()


def _attrs(element: ET.Element) -> dict[str, str]:
    return {_local(k): v for k, v in element.attrib.items()}


@dataclass
class Reading:
    device: str
    id: str
    typed: str
    raw: str | None
    timestamp: str

    @property
    def uid(self) -> str:
        return json.loads(self.raw or "{}").get("uid", "")


@dataclass
class KeioSubscriber:
    domain: str  # the anonymous host, e.g. anon.localhost
    pubsub: str
    host: str
    port: int
    ca_file: str
    readings: list[Reading] = field(default_factory=list)
    items: int = 0
    metas: list[ET.Element] = field(default_factory=list)

    async def connect(self) -> None:
        self.xmpp = ClientXMPP(self.domain, None)  # no localpart, no password: SASL ANONYMOUS
        for plugin in ("xep_0030", "xep_0004", "xep_0060"):
            self.xmpp.register_plugin(plugin)
        self.xmpp.enable_direct_tls = False
        self.xmpp.ca_certs = self.ca_file
        started = asyncio.get_running_loop().create_future()
        self.xmpp.add_event_handler("session_start", lambda _: started.done() or started.set_result(None))
        self.xmpp.add_event_handler("pubsub_publish", self._on_publish)
        self.xmpp.connect(self.host, self.port)
        await asyncio.wait_for(started, 10)

    async def devices(self) -> list[str]:
        result = await self.xmpp.plugin["xep_0030"].get_items(jid=self.pubsub, timeout=10)
        nodes = [node for _, node, _ in result["disco_items"]["items"] if node]
        return [n[: -len("_meta")] for n in nodes if n.endswith("_meta")]

    async def meta(self, device: str) -> ET.Element:
        result = await self.xmpp.plugin["xep_0060"].get_items(
            self.pubsub, device + "_meta", max_items=1, timeout=10
        )
        return next(iter(result["pubsub"]["items"]))["payload"]

    async def subscribe(self, device: str, suffix: str = "_data") -> None:
        await self.xmpp.plugin["xep_0060"].subscribe(self.pubsub, device + suffix, bare=False, timeout=10)

    def _on_publish(self, message) -> None:  # type: ignore[no-untyped-def]
        node = message["pubsub_event"]["items"]["node"]
        # .iterables, not the stanza itself: slixmpp is iterating that stanza while it calls us.
        for item in list(message["pubsub_event"]["items"].iterables):
            payload = item["payload"]
            if payload is None:
                continue
            if node.endswith("_meta"):
                self.metas.append(payload)
                continue
            self.items += 1
            for value in payload:
                if _local(value.tag) == "transducervalue":
                    a = _attrs(value)
                    self.readings.append(
                        Reading(
                            node[: -len("_data")], a["id"], a["typedvalue"], a.get("rawvalue"), a["timestamp"]
                        )
                    )

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self.xmpp.disconnect(wait=1), 3)
        finally:
            release_stream(self.xmpp)


def transducers(meta: ET.Element) -> dict[str, dict[str, str]]:
    return {_attrs(t)["id"]: _attrs(t) for t in meta if _local(t.tag) == "transducer"}
