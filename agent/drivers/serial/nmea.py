"""NMEA 0183: the GGA and RMC sentences of a GPS receiver, checksum verified, and their encoder.

`parse(line)` never raises: it returns a `Gga`, an `Rmc`, None for a well-formed sentence this driver does
not use (GSV, GSA, VTG...: a receiver sends many), or a `Rejected` with the reason. Numbers are matched by
pattern before conversion, because float() also accepts 'nan', 'inf' and '1_0'.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import reduce

from ..common import Rejected

KNOTS_TO_KMH = 1.852
MAX_SPEED_KMH = 2000.0  # faster than any vehicle this rides on: a corrupt field

_UNSIGNED = re.compile(r"\d+(?:\.\d+)?")
_SIGNED = re.compile(r"-?\d+(?:\.\d+)?")
_TIME = re.compile(r"\d{6}(?:\.\d+)?")
_CHECKSUM = re.compile(r"[0-9A-Fa-f]{2}")


@dataclass(frozen=True, slots=True)
class Gga:
    """Fix data. `lat`/`lon` are None without a fix (quality 0)."""

    time: str  # hhmmss.ss, UTC
    lat: float | None
    lon: float | None
    quality: int  # 0 none, 1 GPS, 2 DGPS, 4 RTK fixed, 5 RTK float, 6 dead reckoning...
    satellites: int | None
    hdop: float | None
    altitude: float | None  # metres above mean sea level


@dataclass(frozen=True, slots=True)
class Rmc:
    """Recommended minimum data. `valid` is the status flag (A); without it the position means nothing."""

    time: str
    valid: bool
    lat: float | None
    lon: float | None
    speed_kmh: float | None
    heading: float | None  # course over ground, degrees true
    date: str  # ddmmyy


def checksum(body: str) -> str:
    """The XOR of the characters between '$' and '*', as two hex digits."""
    return f"{reduce(lambda acc, ch: acc ^ ord(ch), body, 0):02X}"


def sentence(body: str) -> bytes:
    """A complete sentence with checksum and CR LF, e.g. sentence('GPGGA,...')."""
    return f"${body}*{checksum(body)}\r\n".encode("ascii")


def parse(line: bytes) -> Gga | Rmc | Rejected | None:
    try:
        text = line.decode("ascii")
    except UnicodeDecodeError:
        return Rejected("encoding", "not ASCII")
    text = text.strip()
    if not text.startswith("$"):
        return Rejected("format", "no leading '$'")
    body, star, given = text[1:].rpartition("*")
    if not star:
        return Rejected("format", "no checksum")
    if not _CHECKSUM.fullmatch(given):
        return Rejected("format", "checksum is not two hex digits")
    if checksum(body) != given.upper():
        return Rejected("checksum", f"{body[:6]}: expected {checksum(body)}, got {given[:2]}")
    fields = body.split(",")
    address = fields[0]
    if len(address) != 5 or not address.isalnum():
        return None  # proprietary ($PUBX...) or unknown: well-formed, not ours
    kind = address[2:]
    try:
        if kind == "GGA":
            return _gga(fields)
        if kind == "RMC":
            return _rmc(fields)
    except _Bad as bad:
        return bad.rejected
    return None


class _Bad(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        self.rejected = Rejected(reason, detail)


def _gga(f: list[str]) -> Gga:
    if len(f) < 10:
        raise _Bad("format", f"GGA with {len(f)} fields")
    quality = _int(f[6], "quality", 0, 8)
    if quality is None:
        raise _Bad("format", "GGA without fix quality")
    lat, lon = _position(f[2], f[3], f[4], f[5])
    if quality > 0 and lat is None:
        raise _Bad("format", "GGA fix without a position")
    return Gga(
        time=_time(f[1]),
        lat=lat if quality > 0 else None,
        lon=lon if quality > 0 else None,
        quality=quality,
        satellites=_int(f[7], "satellites", 0, 99),
        hdop=_float(f[8], "hdop", 0.0, 99.99),
        altitude=_float(f[9], "altitude", -1000.0, 100_000.0, signed=True),
    )


def _rmc(f: list[str]) -> Rmc:
    if len(f) < 10:
        raise _Bad("format", f"RMC with {len(f)} fields")
    if f[2] not in ("A", "V"):
        raise _Bad("format", "RMC status is not A or V")
    valid = f[2] == "A"
    lat, lon = _position(f[3], f[4], f[5], f[6])
    if valid and lat is None:
        raise _Bad("format", "valid RMC without a position")
    knots = _float(f[7], "speed", 0.0, MAX_SPEED_KMH / KNOTS_TO_KMH)
    heading = _float(f[8], "heading", 0.0, 360.0)
    if f[9] and not (len(f[9]) == 6 and f[9].isdigit()):
        raise _Bad("format", "RMC date is not ddmmyy")
    return Rmc(
        time=_time(f[1]),
        valid=valid,
        lat=lat if valid else None,
        lon=lon if valid else None,
        speed_kmh=None if knots is None else round(knots * KNOTS_TO_KMH, 3),
        heading=None if heading is None else heading % 360.0,
        date=f[9],
    )


def _time(value: str) -> str:
    if value and not _TIME.fullmatch(value):
        raise _Bad("format", "time is not hhmmss")
    return value


def _int(value: str, what: str, low: int, high: int) -> int | None:
    if not value:
        return None
    if not value.isascii() or not value.isdigit():
        raise _Bad("format", f"{what} is not a number")
    number = int(value)
    if not low <= number <= high:
        raise _Bad("range", f"{what} {number} outside [{low}, {high}]")
    return number


def _float(value: str, what: str, low: float, high: float, *, signed: bool = False) -> float | None:
    if not value:
        return None
    if not (_SIGNED if signed else _UNSIGNED).fullmatch(value):
        raise _Bad("format", f"{what} is not a number")
    number = float(value)
    if not low <= number <= high:
        raise _Bad("range", f"{what} {number} outside [{low}, {high}]")
    return number


def _position(lat: str, ns: str, lon: str, ew: str) -> tuple[float | None, float | None]:
    if not lat and not lon:
        return None, None
    if ns not in ("N", "S") or ew not in ("E", "W"):
        raise _Bad("format", "hemisphere is not N/S or E/W")
    latitude = _angle(lat, "latitude", 90)
    longitude = _angle(lon, "longitude", 180)
    return (-latitude if ns == "S" else latitude), (-longitude if ew == "W" else longitude)


def _angle(value: str, what: str, limit: int) -> float:
    """'3520.334' (ddmm.mmm) -> 35.338900; degrees and minutes checked separately (minutes < 60)."""
    if not _UNSIGNED.fullmatch(value):
        raise _Bad("format", f"{what} is not a number")
    number = float(value)
    degrees = int(number // 100)
    minutes = number - degrees * 100
    result = degrees + minutes / 60
    if minutes >= 60 or result > limit:
        raise _Bad("range", f"{what} {value} is impossible")
    return round(result, 7)


# --- encoding (the simulator and tests speak the same protocol) -----------------------------------------


def _ddmm(value: float, width: int) -> str:
    value = abs(value)
    degrees = int(value)
    minutes = (value - degrees) * 60
    return f"{degrees:0{width}d}{minutes:07.4f}"


def gga(time: str, lat: float, lon: float, *, quality: int = 1, satellites: int = 9, hdop: float = 0.9,
        altitude: float = 12.0, talker: str = "GP") -> bytes:  # fmt: skip
    return sentence(
        f"{talker}GGA,{time},{_ddmm(lat, 2)},{'N' if lat >= 0 else 'S'},{_ddmm(lon, 3)},"
        f"{'E' if lon >= 0 else 'W'},{quality},{satellites:02d},{hdop:.1f},{altitude:.1f},M,39.5,M,,"
    )


def rmc(time: str, lat: float, lon: float, speed_kmh: float, heading: float, *, date: str = "010125",
        valid: bool = True, talker: str = "GP") -> bytes:  # fmt: skip
    return sentence(
        f"{talker}RMC,{time},{'A' if valid else 'V'},{_ddmm(lat, 2)},{'N' if lat >= 0 else 'S'},"
        f"{_ddmm(lon, 3)},{'E' if lon >= 0 else 'W'},{speed_kmh / KNOTS_TO_KMH:.2f},{heading:.1f},{date},,,A"
    )
