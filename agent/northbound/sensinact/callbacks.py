"""Callback URLs, checked against SSRF, and the HTTP client that POSTs to them.

A callback names a host; every address it resolves to is checked (a name with one public and one loopback
address is refused) and the connection then goes to the checked address, never to a second resolution,
so DNS rebinding cannot redirect it. Loopback, link-local, multicast, unspecified and reserved addresses
are refused unless `[rest] callback_allow` names the host or covers the address.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_URL = 2048


class CallbackRefused(ValueError):
    """A callback URL this device will not call; the message says why."""


@dataclass(frozen=True)
class AllowList:
    hosts: frozenset[str]
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    only_listed: bool = False

    @classmethod
    def of(cls, entries: Sequence[str], only_listed: bool = False) -> AllowList:
        hosts, networks = set(), []
        for entry in entries:
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                hosts.add(entry.lower().rstrip("."))
        return cls(frozenset(hosts), tuple(networks), only_listed)

    def names(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.hosts

    def covers(self, address: IpAddress) -> bool:
        return any(address in network for network in self.networks)


@dataclass(frozen=True)
class CallbackTarget:
    url: str
    scheme: str
    host: str  # as written, for the Host header and TLS server name
    port: int
    path: str  # the callback's path; the subscription id is appended to it
    address: str  # the checked address the connection goes to


def _dangerous(address: IpAddress) -> str | None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for attribute, what in (
        ("is_loopback", "loopback"),
        ("is_link_local", "link-local"),
        ("is_multicast", "multicast"),
        ("is_unspecified", "unspecified"),
        ("is_reserved", "reserved"),
    ):
        if getattr(address, attribute):
            return what
    return None


def resolve(host: str, port: int) -> list[IpAddress]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        raise CallbackRefused(f"callback host {host[:80]!r} does not resolve") from error
    return [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]


def check(url: str, allow: AllowList) -> CallbackTarget:
    """The target to POST to, or CallbackRefused."""
    if not isinstance(url, str) or len(url) > MAX_URL:
        raise CallbackRefused(f"callback must be a URL of at most {MAX_URL} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise CallbackRefused("callback is not a valid URL") from None
    if parts.scheme not in {"http", "https"}:
        raise CallbackRefused("callback must be an http:// or https:// URL")
    if parts.username is not None or parts.password is not None:
        raise CallbackRefused("callback must not carry credentials")
    host = parts.hostname
    if not host:
        raise CallbackRefused("callback has no host")
    if any(char in url for char in "\r\n\t "):
        raise CallbackRefused("callback must not contain spaces or line breaks")
    port = port or (443 if parts.scheme == "https" else 80)
    named = allow.names(host)
    addresses = resolve(host, port)
    if not addresses:
        raise CallbackRefused(f"callback host {host[:80]!r} has no address")
    for address in addresses:
        listed = named or allow.covers(address)
        if allow.only_listed and not listed:
            raise CallbackRefused(f"callback host {host[:80]!r} is not in the allow-list")
        danger = _dangerous(address)
        if danger and not listed:
            raise CallbackRefused(f"callback address {address} is {danger}; not allowed")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return CallbackTarget(url, parts.scheme, host, port, path, str(addresses[0]))


def callback_path(target: CallbackTarget, callback_id: str) -> str:
    """Legacy: notifications go to <callback>/<callbackId>, with no second '/'."""
    path, _, query = target.path.partition("?")
    path = path if path.endswith("/") else path + "/"
    return path + callback_id + ("?" + query if query else "")


class _PinnedHTTPS(http.client.HTTPSConnection):
    """HTTPS to a checked address, verifying the certificate against the host name."""

    def __init__(self, host: str, address: str, port: int, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, host: str, address: str, port: int, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class CallbackClient:
    """One keep-alive connection to one subscriber; used by one delivery worker at a time."""

    def __init__(self, target: CallbackTarget, timeout: float) -> None:
        self.target = target
        self.timeout = timeout
        self._connection: http.client.HTTPConnection | None = None

    def _connect(self) -> http.client.HTTPConnection:
        if self._connection is None:
            kind = _PinnedHTTPS if self.target.scheme == "https" else _PinnedHTTP
            self._connection = kind(self.target.host, self.target.address, self.target.port, self.timeout)
        return self._connection

    def post(self, path: str, body: bytes) -> bool:
        """True when the subscriber answered 2xx. A reused keep-alive connection the subscriber closed
        meanwhile is retried once on a fresh one."""
        for attempt in (1, 2):
            reused = self._connection is not None
            connection = self._connect()
            try:
                connection.request(
                    "POST", path, body, {"Content-Type": "application/json", "Connection": "keep-alive"}
                )
                response = connection.getresponse()
                response.read(65536)  # drain (bounded) so the connection can be reused
                if response.will_close or not response.isclosed():
                    self.close()
                return 200 <= response.status < 300
            except (OSError, http.client.HTTPException):
                self.close()
                if attempt == 2 or not reused:
                    return False
        return False

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
