"""XEP-0363 HTTP File Upload: ask the XMPP server for a slot, PUT the bytes over verified HTTPS.

Prosody's mod_http_file_share (and Openfire's HTTP File Upload plugin) answer a slot request with a PUT URL
(plus headers to send with it, e.g. an Authorization token) and a GET URL to publish. The PUT is done here
with the standard library rather than slixmpp's plugin, which needs aiohttp: one small, bounded request in
a worker thread, with the same trust anchors as the XMPP session, a timeout and only the headers XEP-0363
allows the server to ask for (§4.1: Authorization, Cookie, Expires).
"""

from __future__ import annotations

import asyncio
import http.client
import ssl
import urllib.parse
from dataclasses import dataclass, field
from xml.etree import ElementTree as ET

from .session import PubsubError, SoxError, SoxSession

NS = "urn:xmpp:http:upload:0"
_ALLOWED_HEADERS = {"authorization", "cookie", "expires"}
_MAX_URL = 2048


class UploadError(SoxError):
    """The upload service refused the slot or the PUT; the message is fit for health/logs. `permanent`:
    asking again cannot help (too large, not allowed), so the frame is skipped rather than retried."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


# Slot refusals that will not change on a retry (XEP-0363 §5: file-too-large comes as not-acceptable).
_PERMANENT_CONDITIONS = {"not-acceptable", "not-allowed", "forbidden", "policy-violation", "bad-request"}
_PERMANENT_STATUS = {400, 401, 403, 405, 411, 413, 415}


@dataclass(frozen=True)
class UploadService:
    jid: str
    max_size: int | None  # from the service's disco#info form, when it says


@dataclass(frozen=True)
class Slot:
    put_url: str
    get_url: str
    headers: dict[str, str] = field(repr=False)  # may hold a bearer token


async def find_service(session: SoxSession, domain: str) -> UploadService | None:
    """The first item of `domain` (or `domain` itself) that advertises XEP-0363, with its size limit."""
    for jid in [domain, *await session.disco_items(domain)]:
        try:
            info = await session.disco_info(jid)
        except SoxError:
            continue  # a component that does not answer disco is not our upload service
        features = {f.get("var") for f in info.iter("{http://jabber.org/protocol/disco#info}feature")}
        if NS in features:
            return UploadService(jid, _max_size(info))
    return None


def _max_size(info: ET.Element) -> int | None:
    for form in info.iter("{jabber:x:data}x"):
        fields = {f.get("var"): f for f in form.iter("{jabber:x:data}field")}
        form_type = fields.get("FORM_TYPE")
        if form_type is None or form_type.findtext("{jabber:x:data}value") != NS:
            continue
        size = fields.get("max-file-size")
        text = size.findtext("{jabber:x:data}value") if size is not None else None
        if text and text.isdigit():
            return int(text)
    return None


async def request_slot(
    session: SoxSession, service: str, filename: str, size: int, content_type: str
) -> Slot:
    request = ET.Element(
        f"{{{NS}}}request", {"filename": filename, "size": str(size), "content-type": content_type}
    )
    try:
        result = await session.iq_get(service, request, "request upload slot from")
    except PubsubError as error:
        raise UploadError(str(error), permanent=error.condition in _PERMANENT_CONDITIONS) from None
    slot = result.find(f"{{{NS}}}slot")
    put = slot.find(f"{{{NS}}}put") if slot is not None else None
    get = slot.find(f"{{{NS}}}get") if slot is not None else None
    if put is None or get is None:
        raise UploadError(f"upload service {service} answered without a slot", permanent=True)
    headers = {
        name: (header.text or "").strip()
        for header in put.findall(f"{{{NS}}}header")
        if (name := header.get("name", "")).lower() in _ALLOWED_HEADERS and "\n" not in (header.text or "")
    }
    return Slot(_https_url(put.get("url"), "put"), _https_url(get.get("url"), "get"), headers)


def _https_url(url: str | None, which: str) -> str:
    if not url or len(url) > _MAX_URL:
        raise UploadError(f"upload slot has no usable {which} URL", permanent=True)
    parts = urllib.parse.urlsplit(url)
    # XEP-0363 §4: HTTPS only. A frame must never cross the network in clear because a server said so.
    if parts.scheme != "https" or not parts.hostname:
        raise UploadError(f"upload slot's {which} URL is not https://", permanent=True)
    return url


async def put(slot: Slot, body: bytes, content_type: str, context: ssl.SSLContext, timeout: float) -> None:
    await asyncio.to_thread(_put, slot, body, content_type, context, timeout)


def _put(slot: Slot, body: bytes, content_type: str, context: ssl.SSLContext, timeout: float) -> None:
    parts = urllib.parse.urlsplit(slot.put_url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    connection = http.client.HTTPSConnection(
        parts.hostname or "", parts.port or 443, timeout=timeout, context=context
    )
    headers = {**slot.headers, "Content-Type": content_type, "Content-Length": str(len(body))}
    try:
        connection.request("PUT", path or "/", body=body, headers=headers)
        response = connection.getresponse()
        response.read(4096)  # drain a little; the status is what matters
    except ssl.SSLError as error:
        raise UploadError(f"upload TLS to {parts.hostname} failed ({error.reason or error})") from None
    except (OSError, http.client.HTTPException) as error:
        raise UploadError(f"upload to {parts.hostname} failed ({type(error).__name__})") from None
    finally:
        connection.close()
    if response.status not in (200, 201):
        raise UploadError(
            f"upload to {parts.hostname} refused: HTTP {response.status} {response.reason}",
            permanent=response.status in _PERMANENT_STATUS,
        )
