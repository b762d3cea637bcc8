"""NMEA 0183 parser: GGA and RMC, checksums, ranges, and garbage that must never raise."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.drivers.common import Rejected
from agent.drivers.serial import nmea

# Real sentences from a u-blox receiver (checksums as sent).
GGA = b"$GPGGA,092750.000,5321.6802,N,00630.3372,W,1,8,1.03,61.7,M,55.2,M,,*76"
RMC = b"$GPRMC,092750.000,A,5321.6802,N,00630.3372,W,0.02,31.66,280511,,,A*43"


def test_parses_a_real_gga() -> None:
    fix = nmea.parse(GGA)
    assert isinstance(fix, nmea.Gga)
    assert fix.lat == pytest.approx(53.361337, abs=1e-6) and fix.lon == pytest.approx(-6.505620, abs=1e-6)
    assert (fix.quality, fix.satellites, fix.hdop, fix.altitude) == (1, 8, 1.03, 61.7)


def test_parses_a_real_rmc() -> None:
    fix = nmea.parse(RMC)
    assert isinstance(fix, nmea.Rmc) and fix.valid
    assert fix.speed_kmh == pytest.approx(0.02 * 1.852, abs=1e-3) and fix.heading == 31.66
    assert fix.date == "280511"


def test_encoder_round_trips_through_the_parser() -> None:
    fix = nmea.parse(nmea.gga("120000.00", 35.3389, 139.4871, satellites=7, talker="GN").strip())
    assert isinstance(fix, nmea.Gga) and fix.satellites == 7
    assert (round(fix.lat, 5), round(fix.lon, 5)) == (35.3389, 139.4871)
    south_west = nmea.parse(nmea.rmc("120000.00", -33.86, -151.2, 36.0, 359.9))
    assert isinstance(south_west, nmea.Rmc)
    assert (round(south_west.lat, 4), round(south_west.lon, 4)) == (-33.86, -151.2)
    assert south_west.speed_kmh == pytest.approx(36.0, abs=0.01)


def test_no_fix_has_no_position() -> None:
    no_fix = nmea.parse(nmea.sentence("GPGGA,120000.00,,,,,0,00,99.9,,M,,M,,"))
    assert isinstance(no_fix, nmea.Gga) and no_fix.quality == 0 and no_fix.lat is None
    void = nmea.parse(nmea.rmc("120000.00", 35.3, 139.4, 0, 0, valid=False))
    assert isinstance(void, nmea.Rmc) and not void.valid and void.lat is None


def test_other_sentences_are_ignored_not_rejected() -> None:
    assert nmea.parse(nmea.sentence("GPGSV,3,1,11,03,03,111,00,04,15,270,00,06,01,010,00")) is None
    assert nmea.parse(nmea.sentence("PUBX,00,whatever")) is None


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (GGA[:-2] + b"77", "checksum"),
        (GGA.replace(b"5321", b"5322"), "checksum"),
        (GGA[:-3], "format"),  # no checksum
        (GGA[1:], "format"),  # no '$'
        (b"$GPGGA,1*zz", "format"),
        (nmea.sentence("GPGGA,120000,20000.0000,N,13929.226,E,1,08,1.0,10,M,,M,,"), "range"),  # lat 200
        (nmea.sentence("GPGGA,120000,3520.0000,N,18100.000,E,1,08,1.0,10,M,,M,,"), "range"),  # lon 181
        (nmea.sentence("GPGGA,120000,3575.0000,N,13929.226,E,1,08,1.0,10,M,,M,,"), "range"),  # 75 minutes
        (nmea.sentence("GPGGA,120000,nan,N,inf,E,1,08,1.0,10,M,,M,,"), "format"),
        (nmea.sentence("GPGGA,120000,3520.0000,X,13929.226,E,1,08,1.0,10,M,,M,,"), "format"),
        (nmea.sentence("GPGGA,120000,3520.0000,N,13929.226,E,9,08,1.0,10,M,,M,,"), "range"),  # quality 9
        (nmea.sentence("GPGGA,120000,,,,,1,08,1.0,10,M,,M,,"), "format"),  # fix without position
        (nmea.sentence("GPGGA,120000,3520.0000,N"), "format"),  # truncated
        (nmea.sentence("GPRMC,120000,A,3520.0,N,13929.2,E,-5.0,10.0,010125,,,A"), "format"),  # negative
        (nmea.sentence("GPRMC,120000,A,3520.0,N,13929.2,E,5000,10.0,010125,,,A"), "range"),  # 9260 km/h
        (nmea.sentence("GPRMC,120000,A,3520.0,N,13929.2,E,5.0,400.0,010125,,,A"), "range"),
        (nmea.sentence("GPRMC,120000,Q,3520.0,N,13929.2,E,5.0,10.0,010125,,,A"), "format"),
        (b"$GPGGA,\xff\xfe*00", "encoding"),
    ],
)
def test_bad_sentences_are_rejected_with_a_reason(line: bytes, reason: str) -> None:
    result = nmea.parse(line)
    assert isinstance(result, Rejected), result
    assert result.reason == reason


@settings(max_examples=300, deadline=None, database=None)
@given(st.binary(max_size=120))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    assert nmea.parse(data) is None or isinstance(nmea.parse(data), nmea.Gga | nmea.Rmc | Rejected)


_FIELD = st.text(alphabet="0123456789.,-NSEWAV", max_size=12)


@settings(max_examples=300, deadline=None, database=None)
@given(st.sampled_from(["GPGGA", "GNRMC", "GPRMC", "GLGGA"]), st.lists(_FIELD, max_size=15))
def test_well_checksummed_nonsense_never_raises(address: str, fields: list[str]) -> None:
    result = nmea.parse(nmea.sentence(",".join([address, *fields])))
    assert result is None or isinstance(result, nmea.Gga | nmea.Rmc | Rejected)
    if isinstance(result, nmea.Gga | nmea.Rmc) and result.lat is not None:
        assert -90 <= result.lat <= 90 and -180 <= result.lon <= 180


@settings(max_examples=200, deadline=None, database=None)
@given(st.floats(-89.99, 89.99), st.floats(-179.99, 179.99), st.floats(0, 300), st.floats(0, 359.9))
def test_any_real_fix_round_trips(lat: float, lon: float, speed: float, heading: float) -> None:
    fix = nmea.parse(nmea.rmc("010203.00", lat, lon, speed, heading))
    assert isinstance(fix, nmea.Rmc)
    assert fix.lat == pytest.approx(lat, abs=1e-5) and fix.lon == pytest.approx(lon, abs=1e-5)
