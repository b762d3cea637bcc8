"""The pubsub nodes of one SOX device: `<device>_meta` and `<device>_data`, configured as SOX readers expect.

Configuration after shared/reference/sox.md §1.6/§4: both persistent with one item (a reader wants the
latest), publish_model=publishers (only us and those we name), max_payload_size always sent (Openfire, hence
SOXFire, defaults to 5 KB); `_meta` open and sent to every new subscriber; `_data` open or whitelist.
An existing node is reused and brought back to this configuration.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from .session import PubsubError, SoxSession
from .wire import data_node, meta_node

log = logging.getLogger("agent.northbound.soxfire.nodes")


@dataclass(frozen=True)
class NodePolicy:
    max_payload_size: int = 300_000
    data_access: Literal["open", "whitelist"] = "open"
    data_members: tuple[str, ...] = ()  # may subscribe to a whitelisted _data
    data_publishers: tuple[str, ...] = ()  # may publish transducerSetValue items to _data (actuation)
    data_max_items: int = 1

    def meta_config(self) -> dict[str, str]:
        return {**self._common(), "pubsub#access_model": "open", "pubsub#send_last_published_item": "on_sub"}

    def data_config(self) -> dict[str, str]:
        # itemreply=publisher: the server stamps who published an item, which actuation authorizes on.
        return {
            **self._common(),
            "pubsub#access_model": self.data_access,
            "pubsub#itemreply": "publisher",
            "pubsub#max_items": str(self.data_max_items),
        }

    def _common(self) -> dict[str, str]:
        return {
            "pubsub#publish_model": "publishers",
            "pubsub#persist_items": "1",
            "pubsub#max_items": "1",
            "pubsub#max_payload_size": str(self.max_payload_size),
        }

    def data_affiliations(self) -> list[tuple[str, str]]:
        members = [(jid, "member") for jid in self.data_members] if self.data_access == "whitelist" else []
        return members + [(jid, "publisher") for jid in self.data_publishers]


async def ensure_node(session: SoxSession, service: str, node: str, config: dict[str, str]) -> bool:
    """Creates the node, or reconfigures the existing one; True if it was created."""
    if await session.create_node(service, node, config):
        return True
    try:
        await session.configure_node(service, node, config)
    except PubsubError as error:
        # Not ours to configure (another owner): publishing may still be allowed, so go on and say so.
        log.warning("node %s exists and could not be reconfigured: %s", node, error)
    return False


async def ensure_device(session: SoxSession, service: str, device: str, policy: NodePolicy) -> None:
    """Both nodes of a device exist with our configuration and affiliations."""
    await ensure_node(session, service, meta_node(device), policy.meta_config())
    await ensure_node(session, service, data_node(device), policy.data_config())
    affiliations = policy.data_affiliations()
    if affiliations:
        await session.set_affiliations(service, data_node(device), affiliations)


def device_names(nodes: Iterable[str]) -> list[str]:
    """SOX discovery: the devices of a service are its node names ending in _meta (JSoxLib, cpslab)."""
    return [node[: -len("_meta")] for node in nodes if node.endswith("_meta")]
