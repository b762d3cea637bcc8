"""The `[rest]` configuration table of the sensiNact REST facade."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

from ...core.config.schema_base import PositiveFloat, Strict

MiB = 2**20
_HOST = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*\.?$")


def _check_allow_entry(value: str) -> str:
    """A host name, an IP address or a network in CIDR form (`10.0.0.0/8`)."""
    try:
        ipaddress.ip_network(value, strict=False)
        return value
    except ValueError:
        pass
    if not _HOST.fullmatch(value):
        raise PydanticCustomError("callback_host", "expected a host name, an IP address or a CIDR network")
    return value.lower().rstrip(".")


CallbackHost = Annotated[str, AfterValidator(_check_allow_entry)]


class RestSection(Strict):
    """`[rest]`: the sensiNact-compatible REST facade under /sensinact."""

    enabled: bool = True
    # `java` (java.lang.Integer, current sensiNact clients) or `short` (int, legacy M-Sec clients).
    type_names: Literal["short", "java"] = "java"
    # Bodies above this are answered 413 before they are parsed.
    max_body_bytes: int = Field(default=1 * MiB, ge=1024, le=4 * MiB)
    # Callback hosts a SUBSCRIBE may name. Empty: any host whose addresses are all public or private;
    # loopback, link-local, multicast and unspecified addresses are refused unless an entry here names
    # the host or covers the address (e.g. "127.0.0.1" for a consumer on the device itself).
    callback_allow: list[CallbackHost] = Field(default=[], max_length=256)
    # An empty allow-list accepts any safe host; set this to accept only the hosts listed.
    callback_allow_only_listed: bool = False
    callback_timeout: PositiveFloat = Field(default=5.0, le=60)
    callback_max_failures: int = Field(default=3, ge=1, le=1000)  # consecutive; then the subscription ends
    callback_queue: int = Field(default=1000, ge=1, le=100_000)  # per subscriber, oldest dropped first
    callback_workers: int = Field(default=4, ge=1, le=32)
    callback_batch: int = Field(default=100, ge=1, le=10_000)  # messages per CALLBACK POST at most
    max_subscriptions: int = Field(default=256, ge=1, le=10_000)
    default_lifetime: PositiveFloat = Field(default=3600.0, le=30 * 86400)  # seconds
    max_lifetime: PositiveFloat = Field(default=7 * 86400.0, le=365 * 86400)
    # SSE streams each hold a server thread for their whole life: keep them below the server's threads.
    max_streams: int = Field(default=4, ge=0, le=64)
    stream_keepalive: PositiveFloat = Field(default=15.0, le=300)
    stream_max_age: PositiveFloat = Field(default=3600.0, le=86400)
