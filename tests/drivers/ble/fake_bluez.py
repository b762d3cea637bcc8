"""Drives python-dbusmock's simulated BlueZ for bleak's real BlueZ backend (see conftest.py)."""

from __future__ import annotations

import dbus
import dbusmock
from dbusmock.testcase import BusType, SpawnedMock

from agent.drivers.ble.bthome import BTHOME_UUID
from agent.drivers.ble.gatt import CHARACTERISTICS, ESS_SERVICE

DEVICE = "org.bluez.Device1"
CHARACTERISTIC = "org.bluez.GattCharacteristic1"

CONNECT = (
    "self.UpdateProperties('org.bluez.Device1', {'Connected': dbus.Boolean(True)})\n"
    "self.UpdateProperties('org.bluez.Device1', {'ServicesResolved': dbus.Boolean(True)})"
)
DISCONNECT = (
    "self.UpdateProperties('org.bluez.Device1', "
    "{'ServicesResolved': dbus.Boolean(False), 'Connected': dbus.Boolean(False)})"
)
# Runs in the mock: while discovering, every known device "advertises" (an RSSI change) every 50 ms, so
# bleak's find-by-address (inside BleakClient.connect) sees it. `objects` is dbusmock's registry.
START_DISCOVERY = """
from gi.repository import GLib
self.UpdateProperties('org.bluez.Adapter1', {'Discovering': dbus.Boolean(True)})
def _advertise(adapter=self):
    if not adapter.props['org.bluez.Adapter1']['Discovering']:
        return False
    for path, obj in list(objects.items()):
        if path.startswith(adapter.path + '/dev_') and 'org.bluez.Device1' in obj.props:
            obj.UpdateProperties('org.bluez.Device1', {'RSSI': dbus.Int16(-60)})
    return True
GLib.timeout_add(50, _advertise)
"""
OLD_BLUEZ_MONITOR = (
    "raise dbus.exceptions.DBusException('no monitor', name='org.freedesktop.DBus.Error.UnknownMethod')"
)


class FakeBlueZ:
    """Drives the mock: adapters, advertisements, GATT peripherals, dropped links."""

    def __init__(self, mock: SpawnedMock) -> None:
        self.mock = mock
        self.bus = BusType.SYSTEM.get_connection()  # dbus-python, on the private bus
        self.control = dbus.Interface(mock.obj, "org.bluez.Mock")
        self.root = dbus.Interface(mock.obj, dbusmock.MOCK_IFACE)  # the ObjectManager at "/"
        self.adapter_path = self.control.AddAdapter("hci0", "msec-test")
        self.adapter = self._mock(self.adapter_path)

    def _mock(self, path: str):
        return dbus.Interface(self.bus.get_object("org.bluez", path), dbusmock.MOCK_IFACE)

    def without_passive_scanning(self) -> None:
        """Behave as BlueZ < 5.56 (or without --experimental): no advertisement monitor."""
        self.adapter.AddMethod(
            "org.bluez.AdvertisementMonitorManager1", "RegisterMonitor", "o", "", OLD_BLUEZ_MONITOR
        )

    def add_device(self, address: str, name: str = "sensor") -> str:
        path = self.control.AddDevice("hci0", address, name)
        # The template types these as arrays of dicts; bleak needs dicts (gotcha 1 of ble_testing.md).
        self._mock(path).UpdateProperties(
            DEVICE,
            {
                "ManufacturerData": dbus.Dictionary({}, signature="qv"),
                "ServiceData": dbus.Dictionary({}, signature="sv"),
                "AdvertisingData": dbus.Dictionary({}, signature="yv"),
                "AdvertisingFlags": dbus.Array([], signature="y"),
            },
        )
        return path

    def advertise(self, device_path: str, service_data: bytes, rssi: int = -55) -> None:
        """A BTHome advertisement: what BlueZ reports when one is heard (Device1 PropertiesChanged)."""
        self._mock(device_path).UpdateProperties(
            DEVICE,
            {
                "RSSI": dbus.Int16(rssi),
                "ServiceData": dbus.Dictionary(
                    {BTHOME_UUID: dbus.Array(service_data, signature="y")}, signature="sv"
                ),
            },
        )

    def add_ess_peripheral(self, address: str) -> dict[str, str]:
        """A device with the Environmental Sensing Service and its three characteristics.

        Returns characteristic UUID -> object path (for notify)."""
        device = self.add_device(address, "ess")
        mock = self._mock(device)
        mock.AddMethod(DEVICE, "Connect", "", "", CONNECT)
        mock.AddMethod(DEVICE, "Disconnect", "", "", DISCONNECT)
        self.adapter.AddMethod("org.bluez.Adapter1", "StartDiscovery", "", "", START_DISCOVERY)
        service = f"{device}/service000c"
        self._add(
            service,
            "org.bluez.GattService1",
            {"UUID": ESS_SERVICE, "Device": dbus.ObjectPath(device), "Primary": True},
            [],
        )
        paths = {}
        for handle, uuid in enumerate(CHARACTERISTICS, start=0x0D):
            path = f"{service}/char{handle:04x}"
            self._add(
                path,
                CHARACTERISTIC,
                {
                    "UUID": uuid,
                    "Service": dbus.ObjectPath(service),
                    "Flags": dbus.Array(["read", "notify"], signature="s"),
                    "Notifying": False,
                    "Value": dbus.Array(b"", signature="y"),
                },
                [
                    ("ReadValue", "a{sv}", "ay", f"ret = self.Get('{CHARACTERISTIC}', 'Value')"),
                    (
                        "StartNotify",
                        "",
                        "",
                        f"self.UpdateProperties('{CHARACTERISTIC}', {{'Notifying': dbus.Boolean(True)}})",
                    ),
                    (
                        "StopNotify",
                        "",
                        "",
                        f"self.UpdateProperties('{CHARACTERISTIC}', {{'Notifying': dbus.Boolean(False)}})",
                    ),
                ],
            )
            paths[uuid] = path
        return paths

    def _add(self, path: str, interface: str, props: dict, methods: list) -> None:
        self.root.AddObject(path, interface, props, methods)
        self.root.EmitSignal(
            "org.freedesktop.DBus.ObjectManager",
            "InterfacesAdded",
            "oa{sa{sv}}",
            [
                dbus.ObjectPath(path),
                dbus.Dictionary({interface: dbus.Dictionary(props, signature="sv")}, signature="sa{sv}"),
            ],
        )

    def notify(self, characteristic_path: str, value: bytes) -> None:
        self._mock(characteristic_path).UpdateProperties(
            CHARACTERISTIC, {"Value": dbus.Array(value, signature="y")}
        )

    def drop(self, device_path: str) -> None:
        """The peripheral goes out of range: BlueZ reports the link down."""
        self._mock(device_path).UpdateProperties(
            DEVICE, {"ServicesResolved": dbus.Boolean(False), "Connected": dbus.Boolean(False)}
        )
