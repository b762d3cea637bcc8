"""Building blocks shared by every configuration schema: strict models and common field types."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError


class Strict(BaseModel):
    """A config table: unknown keys are errors (typos), and no silent conversion ("5" is not 5)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")


def _check_name(value: str) -> str:
    # fullmatch, not match: '$' also matches before a final newline, so "truck\n" would pass.
    if not _NAME.fullmatch(value):
        raise PydanticCustomError("name", "expected 1-64 letters, digits, '_', '.', ':' or '-'")
    return value


Name = Annotated[str, AfterValidator(_check_name)]
PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]


def _check_listen(value: str) -> str:
    host, sep, port = value.rpartition(":")
    bracketed = host.startswith("[") and host.endswith("]")
    name = host[1:-1] if bracketed else host
    if (
        not sep
        or not name
        or "[" in name
        or "]" in name
        # An IPv6 host needs brackets: in '::1:8080' (or '::1') the port cannot be told from the address.
        or (":" in name) != bracketed
        # isascii(): str.isdigit() is true for '²', which int() refuses.
        or not (port.isascii() and port.isdigit())
        or not 0 <= int(port) <= 65535
    ):
        raise PydanticCustomError("listen", "expected 'host:port' or '[ipv6]:port', e.g. '127.0.0.1:8080'")
    return value


ListenAddress = Annotated[str, AfterValidator(_check_listen)]


def split_listen(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host.strip("[]"), int(port)


JsonValue = Any


def is_loopback_host(host: str) -> bool:
    """`localhost` or a loopback address: where plain text never leaves the machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
