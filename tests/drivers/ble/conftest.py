"""A simulated BlueZ on a private D-Bus, for bleak's real BlueZ backend (no radio, no system bus).

`PrivateDBus` starts a dbus-daemon of our own and points DBUS_SYSTEM_BUS_ADDRESS at it; python-dbusmock's
`bluez5` template owns org.bluez there. What the template lacks, this adds (see
shared/reference/ble_testing.md): dictionary-typed advertisement properties, ServicesResolved after Connect,
GATT service and characteristic objects (with InterfacesAdded), and re-advertising while discovering so
that connecting by address finds the device. Bus and mock are function-scoped, like pytest-asyncio's event
loop: bleak keeps one BlueZ manager per loop, bound to the bus it first met.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .fake_bluez import FakeBlueZ


@pytest.fixture
def bluez() -> Iterator[FakeBlueZ]:
    # Imported here, not at the top: the other BLE tests need neither D-Bus nor the mock. A missing
    # python-dbusmock / dbus-python / dbus-daemon fails these tests loudly rather than skipping them.
    from dbusmock.testcase import BusType, PrivateDBus, SpawnedMock

    from .fake_bluez import FakeBlueZ

    if shutil.which("dbus-daemon") is None:
        pytest.fail("dbus-daemon is missing: install Debian's 'dbus' package (see docs/ble.md)")
    with PrivateDBus(BusType.SYSTEM), SpawnedMock.spawn_with_template("bluez5") as mock:
        yield FakeBlueZ(mock)
