"""The model: its shape, writes by drivers and northbounds, actions, snapshots and thread safety."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import defaultdict

import pytest

from agent.core.model import (
    ADMIN,
    ActionCall,
    ActionFailed,
    EventType,
    InvalidName,
    InvalidValue,
    Model,
    ModelEvent,
    NotAnAction,
    Parameter,
    ReadOnlyResource,
    ResourceKind,
    ResourceSpec,
    ShapeConflict,
    UnknownElement,
    ValueMode,
    value_type,
)

NOW = 1_714_564_800.0
JOIN = 10.0  # generous bound for a thread that should finish at once; only reached when a test fails

SENSOR = ResourceSpec(value_type("double"), ResourceKind.SENSOR, ValueMode.UPDATABLE, {"unit": "degC"})
SETPOINT = ResourceSpec(
    value_type("double"), ResourceKind.PROPERTY, ValueMode.MODIFIABLE, {"min": 0, "max": 100}
)
SERIAL = ResourceSpec(value_type("string"), ResourceKind.PROPERTY, ValueMode.FIXED)
CONFIG = ResourceSpec(value_type("object"), ResourceKind.STATE_VARIABLE, ValueMode.MODIFIABLE)
POINT = {"type": "Point", "coordinates": [139.69, 35.69]}


def record_call(call: ActionCall) -> dict:
    """An action handler found by its import path."""
    return {"at": f"{call.provider}/{call.service}/{call.resource}", "params": dict(call.params)}


def drive_spec(handler: object = "drive") -> ResourceSpec:
    return ResourceSpec(
        value_type("string"),
        ResourceKind.ACTION,
        parameters=(
            Parameter("speed", value_type("double"), minimum=0, maximum=10),
            Parameter("mode", value_type("string"), required=False, default="eco"),
        ),
        handler=handler,  # type: ignore[arg-type]
    )


@pytest.fixture
def model() -> Model:
    return Model(clock=lambda: NOW)


def events_of(sub) -> list[tuple[EventType, str]]:
    return [(e.type, e.path) for e in sub.get_batch(timeout=0)]


def start(target, *args) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


# --- providers and their admin service -------------------------------------------------------------


def test_add_provider_creates_its_admin_service_with_defaults(model: Model) -> None:
    assert model.add_provider("truck-7") is True
    provider = model.provider("truck-7")
    admin = provider.services[ADMIN].resources
    assert list(provider.services) == [ADMIN]
    assert list(admin) == ["friendlyName", "description", "location"]
    assert provider.friendly_name == "truck-7"
    assert (admin["friendlyName"].value, admin["friendlyName"].timestamp) == ("truck-7", NOW)
    assert (admin["description"].value, admin["description"].has_value) == (None, False)
    assert provider.location is None and not admin["location"].has_value
    assert {r.name: (r.type.name, r.kind, r.mode) for r in admin.values()} == {
        "friendlyName": ("string", ResourceKind.PROPERTY, ValueMode.MODIFIABLE),
        "description": ("string", ResourceKind.PROPERTY, ValueMode.MODIFIABLE),
        "location": ("geojson", ResourceKind.PROPERTY, ValueMode.MODIFIABLE),
    }


def test_add_provider_is_idempotent_and_changes_nothing_the_second_time(model: Model) -> None:
    with model.subscribe("all") as sub:
        assert model.add_provider("p", friendly_name="First", source="declaration") is True
        assert events_of(sub) == [
            (EventType.PROVIDER_APPEARED, "p"),
            (EventType.SERVICE_APPEARED, "p/admin"),
            (EventType.RESOURCE_APPEARED, "p/admin/friendlyName"),
            (EventType.RESOURCE_APPEARED, "p/admin/description"),
            (EventType.RESOURCE_APPEARED, "p/admin/location"),
        ]
        assert model.add_provider("p", friendly_name="Second", location=POINT) is False
        assert sub.pending == 0
    assert model.provider("p").friendly_name == "First" and model.provider("p").location is None


def test_add_provider_takes_admin_values(model: Model) -> None:
    model.add_provider("p", friendly_name="Truck 7", description="garbage truck", location=POINT)
    provider = model.provider("p")
    assert provider.friendly_name == "Truck 7"
    assert provider.services[ADMIN].resources["description"].value == "garbage truck"
    assert provider.location == POINT


def test_admin_values_may_set_the_friendly_name(model: Model) -> None:
    model.add_provider("p", admin_values={"friendlyName": "Truck 7", "description": "d"})
    assert model.provider("p").friendly_name == "Truck 7"
    model.add_provider("q", friendly_name="Named", admin_values={"friendlyName": "ignored"})
    assert model.provider("q").friendly_name == "Named"  # the explicit argument wins


def test_admin_resources_may_be_reshaped_and_added(model: Model) -> None:
    gps_location = ResourceSpec(value_type("geojson"), ResourceKind.SENSOR, ValueMode.UPDATABLE)
    vin = ResourceSpec(value_type("string"), ResourceKind.PROPERTY, ValueMode.FIXED)
    model.add_provider("p", admin={"location": gps_location, "vin": vin}, admin_values={"vin": "JH4"})
    admin = model.provider("p").services[ADMIN].resources
    assert admin["location"].mode is ValueMode.UPDATABLE and admin["location"].kind is ResourceKind.SENSOR
    assert admin["vin"].value == "JH4"
    with pytest.raises(ReadOnlyResource):
        model.set("p", ADMIN, "location", POINT)
    assert model.update("p", ADMIN, "location", POINT).value == POINT


def test_admin_resources_keep_their_type(model: Model) -> None:
    with pytest.raises(ShapeConflict) as caught:
        model.add_provider("p", admin={"location": SENSOR})
    assert str(caught.value) == "p/admin/location must be of type geojson"
    assert "p" not in model


def test_bad_admin_values_create_nothing(model: Model) -> None:
    with model.subscribe("all") as sub:
        with pytest.raises(InvalidValue) as caught:
            model.add_provider("p", location={"type": "Point", "coordinates": [0, 100]})
        assert str(caught.value).startswith("p/admin/location: expected longitude in [-180, 180]")
        with pytest.raises(UnknownElement) as unknown:
            model.add_provider("p", admin_values={"colour": "red"})
        assert str(unknown.value) == "unknown admin resource 'colour'"
        assert sub.pending == 0
    assert model.provider_names() == []


@pytest.mark.parametrize("name", ["", "a/b", "a b", "x" * 65, None])
def test_provider_names_are_checked(model: Model, name: object) -> None:
    with pytest.raises(InvalidName, match=r"^invalid provider name "):
        model.add_provider(name)  # type: ignore[arg-type]


# --- resources -------------------------------------------------------------------------------------


def test_ensure_resource_creates_provider_service_and_resource(model: Model) -> None:
    with model.subscribe("all") as sub:
        assert model.ensure_resource("p", "env", "temp", SENSOR, value=21, timestamp=NOW - 5) is True
        assert events_of(sub)[-2:] == [
            (EventType.SERVICE_APPEARED, "p/env"),
            (EventType.RESOURCE_APPEARED, "p/env/temp"),
        ]
    snap = model.get("p", "env", "temp")
    assert (snap.path, snap.value, snap.timestamp, snap.kind, snap.mode) == (
        "p/env/temp",
        21.0,
        NOW - 5,
        ResourceKind.SENSOR,
        ValueMode.UPDATABLE,
    )
    assert dict(snap.metadata) == {"unit": "degC"}
    assert model.ensure_resource("p", "env", "hum", SENSOR, value=40) is True
    assert model.get("p", "env", "hum").timestamp == NOW  # no timestamp given: the model's clock


def test_ensure_resource_is_idempotent_for_the_same_shape(model: Model) -> None:
    model.ensure_resource("p", "env", "temp", SENSOR, value=21)
    with model.subscribe("all") as sub:
        assert model.ensure_resource("p", "env", "temp", SENSOR, value=99) is False
        relabelled = dataclasses.replace(SENSOR, metadata={"unit": "K"})
        assert model.ensure_resource("p", "env", "temp", relabelled) is False
        assert sub.pending == 0
    snap = model.get("p", "env", "temp")
    assert (snap.value, dict(snap.metadata)) == (21.0, {"unit": "degC"})  # nothing changed


@pytest.mark.parametrize(
    ("other", "found"),
    [
        (dataclasses.replace(SENSOR, type=value_type("int")), "(SENSOR double UPDATABLE)"),
        (dataclasses.replace(SENSOR, kind=ResourceKind.STATE_VARIABLE), "(SENSOR double UPDATABLE)"),
        (dataclasses.replace(SENSOR, mode=ValueMode.MODIFIABLE), "(SENSOR double UPDATABLE)"),
    ],
)
def test_ensure_resource_refuses_another_shape(model: Model, other: ResourceSpec, found: str) -> None:
    model.ensure_resource("p", "env", "temp", SENSOR)
    with pytest.raises(ShapeConflict) as caught:
        model.ensure_resource("p", "env", "temp", other)
    assert str(caught.value) == f"p/env/temp already exists with another shape {found}"


def test_ensure_resource_refuses_an_action_with_another_signature(model: Model) -> None:
    model.ensure_resource("p", "s", "drive", drive_spec())
    fewer = dataclasses.replace(drive_spec(), parameters=drive_spec().parameters[:1])
    with pytest.raises(ShapeConflict, match=r"^p/s/drive already exists with another shape \(ACTION"):
        model.ensure_resource("p", "s", "drive", fewer)


def test_ensure_resource_checks_its_arguments(model: Model) -> None:
    with pytest.raises(InvalidName, match=r"^invalid service name 'a b'"):
        model.ensure_resource("p", "a b", "r", SENSOR)
    with pytest.raises(InvalidName, match=r"^invalid resource name 'r/1'"):
        model.ensure_resource("p", "s", "r/1", SENSOR)
    with pytest.raises(InvalidValue, match=r"^expected a number, got str 'warm'"):
        model.ensure_resource("p", "s", "r", SENSOR, value="warm")
    with pytest.raises(InvalidValue) as caught:
        model.ensure_resource("p", "s", "go", drive_spec(), value="x")
    assert str(caught.value) == "p/s/go: an ACTION has no value"
    with pytest.raises(ShapeConflict) as conflict:
        model.ensure_resource("p", "s", "r", dataclasses.replace(SENSOR, handler="drive"))
    assert str(conflict.value) == "p/s/r: only an ACTION has parameters or a handler"
    with pytest.raises(InvalidName, match=r"^invalid metadata name 'bad key'"):
        model.ensure_resource("p", "s", "r", dataclasses.replace(SENSOR, metadata={"bad key": 1}))
    assert "p" not in model  # every check runs before anything is created


def test_remove_resource_and_its_event(model: Model) -> None:
    model.ensure_resource("p", "env", "temp", SENSOR)
    model.ensure_resource("p", "env", "hum", SENSOR)
    with model.subscribe("all") as sub:
        model.remove_resource("p", "env", "temp", source="declaration")
        events = sub.get_batch(timeout=0)
    assert [(e.type, e.path, e.source) for e in events] == [
        (EventType.RESOURCE_DISAPPEARED, "p/env/temp", "declaration")
    ]
    assert list(model.provider("p").services["env"].resources) == ["hum"]
    with pytest.raises(UnknownElement) as caught:
        model.remove_resource("p", "env", "temp")
    assert str(caught.value) == "unknown resource p/env/temp"


def test_remove_service_removes_its_resources_first(model: Model) -> None:
    model.ensure_resource("p", "env", "temp", SENSOR)
    model.ensure_resource("p", "env", "hum", SENSOR)
    with model.subscribe("all") as sub:
        model.remove_service("p", "env")
        assert events_of(sub) == [
            (EventType.RESOURCE_DISAPPEARED, "p/env/temp"),
            (EventType.RESOURCE_DISAPPEARED, "p/env/hum"),
            (EventType.SERVICE_DISAPPEARED, "p/env"),
        ]
    assert list(model.provider("p").services) == [ADMIN]
    with pytest.raises(UnknownElement) as caught:
        model.remove_service("p", "env")
    assert str(caught.value) == "unknown service p/env"


def test_remove_provider_removes_everything_it_holds(model: Model) -> None:
    model.ensure_resource("p", "env", "temp", SENSOR)
    model.ensure_resource("q", "env", "temp", SENSOR)
    with model.subscribe("all") as sub:
        model.remove_provider("p")
        events = events_of(sub)
    assert events == [
        (EventType.RESOURCE_DISAPPEARED, "p/admin/friendlyName"),
        (EventType.RESOURCE_DISAPPEARED, "p/admin/description"),
        (EventType.RESOURCE_DISAPPEARED, "p/admin/location"),
        (EventType.SERVICE_DISAPPEARED, "p/admin"),
        (EventType.RESOURCE_DISAPPEARED, "p/env/temp"),
        (EventType.SERVICE_DISAPPEARED, "p/env"),
        (EventType.PROVIDER_DISAPPEARED, "p"),
    ]
    assert "p" not in model and model.provider_names() == ["q"]
    with pytest.raises(UnknownElement) as caught:
        model.remove_provider("p")
    assert str(caught.value) == "unknown provider 'p'"
    assert model.add_provider("p") is True  # it may come back


def test_the_admin_service_cannot_be_removed(model: Model) -> None:
    model.add_provider("p")
    with pytest.raises(ShapeConflict, match="cannot be removed"):
        model.remove_service("p", ADMIN)
    with pytest.raises(ShapeConflict) as caught:
        model.remove_resource("p", ADMIN, "friendlyName")
    assert str(caught.value) == "admin resources cannot be removed"
    assert list(model.provider("p").services[ADMIN].resources) == ["friendlyName", "description", "location"]


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (("nope", "env", "temp"), "unknown provider 'nope'"),
        (("p", "nope", "temp"), "unknown service p/nope"),
        (("p", "env", "nope"), "unknown resource p/env/nope"),
        ((["p"], "env", "temp"), "unknown provider \"['p']\""),
        (("p", ["env"], "temp"), "unknown service p/['env']"),
    ],
)
def test_unknown_elements_are_named_plainly(model: Model, path: tuple, message: str) -> None:
    model.ensure_resource("p", "env", "temp", SENSOR)
    with pytest.raises(UnknownElement) as caught:
        model.get(*path)
    assert str(caught.value) == message  # not the repr() a KeyError would give
    with pytest.raises(KeyError):  # generic code may still treat it as a missing key
        model.update(*path, 1.0)


# --- update (drivers) and set (northbounds) --------------------------------------------------------


def test_update_writes_a_coerced_value_with_its_time_and_event(model: Model) -> None:
    model.ensure_resource("p", "env", "temp", SENSOR)
    with model.subscribe("all") as sub:
        snap = model.update("p", "env", "temp", 21, timestamp=NOW - 1)
        later = model.update("p", "env", "temp", 22.5)
        events = sub.get_batch(timeout=0)
    assert (snap.value, snap.timestamp) == (21.0, NOW - 1) and type(snap.value) is float
    assert (later.value, later.timestamp) == (22.5, NOW)
    assert [(e.value, e.old_value, e.timestamp, e.source) for e in events] == [
        (21.0, None, NOW - 1, "driver"),
        (22.5, 21.0, NOW, "driver"),
    ]
    assert model.get("p", "env", "temp") == later


def test_update_may_write_none_to_clear_a_value(model: Model) -> None:
    model.ensure_resource("p", "env", "temp", SENSOR, value=1)
    assert model.update("p", "env", "temp", None).value is None


def test_update_merges_metadata(model: Model) -> None:
    model.ensure_resource("p", "env", "temp", SENSOR)
    with model.subscribe("all") as sub:
        snap = model.update("p", "env", "temp", 1.0, metadata={"accuracy": 0.5})
        event = sub.get(timeout=0)
    assert dict(snap.metadata) == {"unit": "degC", "accuracy": 0.5}
    assert dict(event.metadata) == {"unit": "degC", "accuracy": 0.5}  # type: ignore[union-attr]


def test_update_ignores_bounds_a_driver_reports_what_it_measures(model: Model) -> None:
    model.ensure_resource("p", "heating", "setpoint", SETPOINT)
    assert model.update("p", "heating", "setpoint", 150).value == 150.0


def test_update_refuses_a_value_of_the_wrong_type_and_keeps_the_old_one(model: Model) -> None:
    model.ensure_resource("p", "env", "temp", SENSOR, value=20)
    with model.subscribe("all") as sub:
        with pytest.raises(InvalidValue) as caught:
            model.update("p", "env", "temp", "hot")
        assert sub.pending == 0
    assert str(caught.value) == "p/env/temp: expected a number, got str 'hot'"
    assert model.get("p", "env", "temp").value == 20.0


@pytest.mark.parametrize("timestamp", [True, -1, 2**33, float("nan"), float("inf"), "1714564800"])
def test_update_refuses_a_bad_timestamp(model: Model, timestamp: object) -> None:
    model.ensure_resource("p", "env", "temp", SENSOR)
    with pytest.raises(InvalidValue) as caught:
        model.update("p", "env", "temp", 1.0, timestamp=timestamp)  # type: ignore[arg-type]
    assert str(caught.value) == f"timestamp must be unix seconds, got {timestamp!r}"


def test_set_writes_only_modifiable_resources(model: Model) -> None:
    model.ensure_resource("p", "env", "temp", SENSOR)
    model.ensure_resource("p", "heating", "setpoint", SETPOINT)
    with model.subscribe("all") as sub:
        snap = model.set("p", "heating", "setpoint", 21)
        event = sub.get(timeout=0)
    assert (snap.value, snap.timestamp) == (21.0, NOW)
    assert (event.source, event.value) == ("northbound", 21.0)  # type: ignore[union-attr]
    with pytest.raises(ReadOnlyResource) as caught:
        model.set("p", "env", "temp", 30)
    assert str(caught.value) == "p/env/temp is UPDATABLE: only its driver writes it"
    assert model.update("p", "heating", "setpoint", 22).value == 22.0  # drivers may write it too


@pytest.mark.parametrize(
    ("value", "message"), [(-1, "-1.0 is below the minimum 0"), (101, "101.0 is above the maximum 100")]
)
def test_set_stays_within_the_metadata_bounds(model: Model, value: float, message: str) -> None:
    model.ensure_resource("p", "heating", "setpoint", SETPOINT, value=20)
    with pytest.raises(InvalidValue) as caught:
        model.set("p", "heating", "setpoint", value)
    assert str(caught.value) == f"p/heating/setpoint: {message}"
    assert model.set("p", "heating", "setpoint", 0).value == 0.0
    assert model.set("p", "heating", "setpoint", 100).value == 100.0


def test_set_honours_bounds_changed_at_run_time(model: Model) -> None:
    model.ensure_resource("p", "heating", "setpoint", SETPOINT)
    model.update_metadata("p", "heating", "setpoint", {"max": 30})
    with pytest.raises(InvalidValue, match="above the maximum 30"):
        model.set("p", "heating", "setpoint", 31)


def test_fixed_resources_are_written_by_nobody(model: Model) -> None:
    model.ensure_resource("p", "info", "serial", SERIAL, value="SN-1")
    for write in (model.update, model.set):
        with pytest.raises(ReadOnlyResource) as caught:
            write("p", "info", "serial", "SN-2")
        assert str(caught.value) == "p/info/serial is FIXED"
    assert model.get("p", "info", "serial").value == "SN-1"


def test_actions_are_not_written(model: Model) -> None:
    model.ensure_resource("p", "s", "drive", drive_spec())
    for write in (model.update, model.set):
        with pytest.raises(NotAnAction) as caught:
            write("p", "s", "drive", "x")
        assert str(caught.value) == "p/s/drive is an ACTION: it is acted on, not written"


def test_legacy_clients_may_set_the_location_as_text(model: Model) -> None:
    model.add_provider("p")
    snap = model.set("p", ADMIN, "location", '{"type": "Point", "coordinates": [139.69, 35.69]}')
    assert snap.value == POINT and model.provider("p").location == POINT


def test_update_metadata_merges_and_emits(model: Model) -> None:
    model.ensure_resource("p", "env", "temp", SENSOR, value=20)
    with model.subscribe("all") as sub:
        snap = model.update_metadata("p", "env", "temp", {"unit": "K", "accuracy": 0.1}, source="northbound")
        event = sub.get(timeout=0)
    assert dict(snap.metadata) == {"unit": "K", "accuracy": 0.1}
    assert snap.value == 20.0  # the value is untouched
    assert (event.type, event.timestamp, event.source, event.kind) == (  # type: ignore[union-attr]
        EventType.METADATA_UPDATED,
        NOW,
        "northbound",
        ResourceKind.SENSOR,
    )
    assert dict(event.metadata) == {"unit": "K", "accuracy": 0.1}  # type: ignore[union-attr]
    with pytest.raises(InvalidName):
        model.update_metadata("p", "env", "temp", {"no spaces": 1})
    with pytest.raises(InvalidValue):
        model.update_metadata("p", "env", "temp", {"max": float("nan")})
    assert dict(model.get("p", "env", "temp").metadata) == {"unit": "K", "accuracy": 0.1}


# --- actions ---------------------------------------------------------------------------------------


def test_act_runs_the_registered_handler_with_coerced_parameters(model: Model) -> None:
    calls: list[ActionCall] = []
    model.register_action_handler("drive", lambda call: calls.append(call) or "driving")
    model.ensure_resource("p", "motion", "drive", drive_spec())
    assert model.act("p", "motion", "drive", {"speed": 3}) == "driving"
    (call,) = calls
    assert (call.model, call.provider, call.service, call.resource) == (model, "p", "motion", "drive")
    assert dict(call.params) == {"speed": 3.0, "mode": "eco"} and type(call.params["speed"]) is float
    with pytest.raises(TypeError):
        call.params["speed"] = 11  # type: ignore[index]


def test_act_passes_given_optional_parameters(model: Model) -> None:
    model.ensure_resource("p", "motion", "drive", drive_spec(record_call))
    result = model.act("p", "motion", "drive", {"speed": 10, "mode": "sport"})
    assert result == {"at": "p/motion/drive", "params": {"speed": 10.0, "mode": "sport"}}


def test_parameter_defaults_are_coerced_like_given_values(model: Model) -> None:
    spec = ResourceSpec(
        value_type("string"),
        ResourceKind.ACTION,
        parameters=(
            Parameter("when", value_type("instant"), required=False, default="2024-05-01T14:00:00+02:00"),
            Parameter("gain", value_type("double"), required=False, default=2),
            Parameter("note", value_type("string"), required=False),
        ),
        handler=record_call,
    )
    model.ensure_resource("p", "s", "go", spec)
    params = model.act("p", "s", "go")["params"]
    assert params == {"when": "2024-05-01T12:00:00.000Z", "gain": 2.0, "note": None}
    assert type(params["gain"]) is float


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "p/motion/drive: missing parameter 'speed'"),
        (None, "p/motion/drive: missing parameter 'speed'"),
        ({"speed": 1, "turbo": True, "nitro": 1}, "p/motion/drive: unknown parameter(s) 'nitro', 'turbo'"),
        ({"speed": "fast"}, "parameter 'speed': expected a number, got str 'fast'"),
        ({"speed": True}, "parameter 'speed': expected a number, got bool True"),
        ({"speed": 11}, "parameter 'speed': 11.0 is above the maximum 10"),
        ({"speed": -0.5}, "parameter 'speed': -0.5 is below the minimum 0"),
        ({"speed": 1, "mode": 5}, "parameter 'mode': expected a string, got int 5"),
        ([("speed", 1)], "p/motion/drive: parameters must be an object"),
    ],
)
def test_act_checks_its_parameters_before_calling(model: Model, params: object, message: str) -> None:
    calls: list[ActionCall] = []
    model.register_action_handler("drive", calls.append)
    model.ensure_resource("p", "motion", "drive", drive_spec())
    with pytest.raises(InvalidValue) as caught:
        model.act("p", "motion", "drive", params)  # type: ignore[arg-type]
    assert str(caught.value) == message
    assert calls == []


def test_act_on_what_is_not_an_action(model: Model) -> None:
    model.ensure_resource("p", "env", "temp", SENSOR)
    with pytest.raises(NotAnAction) as caught:
        model.act("p", "env", "temp")
    assert str(caught.value) == "p/env/temp is not an ACTION"
    with pytest.raises(UnknownElement):
        model.act("p", "env", "nope")


def test_act_finds_a_handler_by_import_path(model: Model) -> None:
    model.ensure_resource("p", "motion", "drive", drive_spec(f"{__name__}:record_call"))
    assert model.act("p", "motion", "drive", {"speed": 1}) == {
        "at": "p/motion/drive",
        "params": {"speed": 1.0, "mode": "eco"},
    }


def test_a_registered_handler_is_found_when_acting_not_when_declaring(model: Model) -> None:
    model.ensure_resource("p", "motion", "drive", drive_spec("later"))
    with pytest.raises(ActionFailed) as caught:
        model.act("p", "motion", "drive", {"speed": 1})
    assert str(caught.value) == "p/motion/drive: handler 'later' is not registered"
    model.register_action_handler("later", lambda call: "bound now")
    assert model.act("p", "motion", "drive", {"speed": 1}) == "bound now"


@pytest.mark.parametrize(
    ("handler", "message"),
    [
        (None, "p/motion/drive has no handler bound"),
        (
            "no_such_module_xyz:run",
            "handler 'no_such_module_xyz:run' cannot be imported: No module named 'no_such_module_xyz'",
        ),
        ("json:nope", "handler 'json:nope' cannot be imported: module 'json' has no attribute 'nope'"),
        (":run", "handler ':run' cannot be imported: Empty module name"),
        ("os:sep", "handler 'os:sep' is not callable"),
    ],
)
def test_a_missing_handler_is_an_action_failure(model: Model, handler: str | None, message: str) -> None:
    model.ensure_resource("p", "motion", "drive", drive_spec(handler))
    with pytest.raises(ActionFailed) as caught:
        model.act("p", "motion", "drive", {"speed": 1})
    assert str(caught.value) == message


def test_handler_names_are_checked(model: Model) -> None:
    with pytest.raises(InvalidName, match=r"^invalid handler name 'a b'"):
        model.register_action_handler("a b", record_call)


def test_a_raising_handler_is_an_action_failure_that_keeps_its_cause(model: Model) -> None:
    def broken(call: ActionCall) -> None:
        raise ZeroDivisionError("secret internals")

    model.ensure_resource("p", "motion", "drive", drive_spec(broken))
    with pytest.raises(ActionFailed) as caught:
        model.act("p", "motion", "drive", {"speed": 1})
    assert str(caught.value) == "p/motion/drive failed: ZeroDivisionError"  # no internals to a client
    assert isinstance(caught.value.__cause__, ZeroDivisionError)
    model.ensure_resource("p", "env", "temp", SENSOR)
    assert model.update("p", "env", "temp", 1).value == 1.0  # the model is still usable


def test_a_handler_may_update_the_model_from_any_thread(model: Model) -> None:
    model.ensure_resource("p", "motion", "speed", SENSOR)

    def drive(call: ActionCall) -> bool:
        # A driver thread writes the new state while the handler waits for it: this deadlocks if act()
        # held the model's lock around the handler.
        writer = start(call.model.update, call.provider, call.service, "speed", call.params["speed"])
        writer.join(JOIN)
        call.model.update(call.provider, call.service, "speed", call.params["speed"] + 1)
        return not writer.is_alive()

    model.register_action_handler("drive", drive)
    model.ensure_resource("p", "motion", "drive", drive_spec())
    with model.subscribe("values", filter=lambda e: e.type is EventType.VALUE_UPDATED) as sub:
        assert model.act("p", "motion", "drive", {"speed": 4}) is True
        assert [e.value for e in sub.get_batch(timeout=0)] == [4.0, 5.0]
    assert model.get("p", "motion", "speed").value == 5.0


# --- reads and snapshots ---------------------------------------------------------------------------


def test_reads_list_providers_in_creation_order(model: Model) -> None:
    model.ensure_resource("b", "env", "temp", SENSOR, value=1)
    model.add_provider("a", friendly_name="A")
    assert model.provider_names() == ["b", "a"]
    assert [p.name for p in model.providers()] == ["b", "a"]
    assert "a" in model and "c" not in model
    assert [r.path for r in model.provider("b").resources()] == [
        "b/admin/friendlyName",
        "b/admin/description",
        "b/admin/location",
        "b/env/temp",
    ]
    assert model.provider("b").services["env"].provider == "b"


def test_snapshots_are_immutable(model: Model) -> None:
    model.ensure_resource("p", "env", "temp", SENSOR, value=1)
    snap = model.get("p", "env", "temp")
    provider = model.provider("p")
    with pytest.raises(dataclasses.FrozenInstanceError):
        snap.value = 2  # type: ignore[misc]
    with pytest.raises(TypeError):
        snap.metadata["unit"] = "K"  # type: ignore[index]
    with pytest.raises(TypeError):
        provider.services["x"] = provider.services["env"]  # type: ignore[index]
    with pytest.raises(TypeError):
        provider.services["env"].resources["temp"] = snap  # type: ignore[index]


def test_snapshots_are_isolated_from_later_changes(model: Model) -> None:
    model.ensure_resource("p", "env", "temp", SENSOR, value=1)
    snap = model.get("p", "env", "temp")
    provider = model.provider("p")
    model.update("p", "env", "temp", 2, metadata={"accuracy": 0.5})
    model.update_metadata("p", "env", "temp", {"unit": "K"})
    model.ensure_resource("p", "env", "hum", SENSOR)
    model.remove_provider("p")
    assert (snap.value, dict(snap.metadata)) == (1.0, {"unit": "degC"})
    assert list(provider.services["env"].resources) == ["temp"]
    assert provider.services["env"].resources["temp"].value == 1.0


def test_values_passed_in_are_copied(model: Model) -> None:
    model.ensure_resource("p", "state", "config", CONFIG)
    given = {"mode": "eco", "zones": [1, 2]}
    metadata = {"schema": {"version": 1}}
    snap = model.update("p", "state", "config", given, metadata=metadata)
    given["mode"] = "sport"
    given["zones"].append(3)
    metadata["schema"]["version"] = 2
    assert model.get("p", "state", "config").value == {"mode": "eco", "zones": [1, 2]}
    assert snap.value == {"mode": "eco", "zones": [1, 2]}
    assert dict(model.get("p", "state", "config").metadata) == {"schema": {"version": 1}}


def test_spec_metadata_passed_in_is_copied(model: Model) -> None:
    metadata = {"unit": "degC"}
    model.ensure_resource("p", "env", "temp", ResourceSpec(value_type("double"), metadata=metadata))
    metadata["unit"] = "K"
    assert dict(model.get("p", "env", "temp").metadata) == {"unit": "degC"}


# --- concurrency -----------------------------------------------------------------------------------


def test_concurrent_writers_readers_and_a_lossless_subscriber() -> None:
    model = Model()
    writers, resources_each, updates = 4, 5, 150
    paths = [(f"truck-{w}", "env", f"r{i}") for w in range(writers) for i in range(resources_each)]
    for path in paths:
        model.ensure_resource(*path, SENSOR)
    sub = model.subscribe(
        "recorder",
        maxsize=16,  # small: the writers feel the backpressure
        lossless=True,
        block_timeout=JOIN,
        filter=lambda e: e.type is EventType.VALUE_UPDATED,
    )
    received: list[ModelEvent] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def consume() -> None:
        while batch := sub.get_batch(limit=7, timeout=JOIN):
            received.extend(batch)

    def write(worker: int) -> None:
        try:
            mine = [p for p in paths if p[0] == f"truck-{worker}"]
            for n in range(updates):
                for path in mine:
                    model.update(*path, n)
        except BaseException as error:
            errors.append(error)

    def read() -> None:
        try:
            while not stop.is_set():
                for provider in model.providers():
                    for res in provider.resources():
                        assert res.value is None or isinstance(res.value, float | str)
                model.get(*paths[0])
        except BaseException as error:
            errors.append(error)

    consumer = start(consume)
    readers = [start(read) for _ in range(2)]
    threads = [start(write, w) for w in range(writers)]
    for thread in threads:
        thread.join(JOIN * 3)
    stop.set()
    for thread in readers:
        thread.join(JOIN)
    sub.close()
    consumer.join(JOIN)

    assert errors == []
    assert not any(t.is_alive() for t in [consumer, *readers, *threads])
    assert (sub.dropped, len(received)) == (0, len(paths) * updates)
    seqs = [e.seq for e in received]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)  # global order, each exactly once
    per_resource: dict[str, list[float]] = defaultdict(list)
    for e in received:
        per_resource[e.path].append(e.value)
    expected = [float(n) for n in range(updates)]
    assert per_resource == {"/".join(p): expected for p in paths}
    assert {"/".join(p): model.get(*p).value for p in paths} == {"/".join(p): updates - 1.0 for p in paths}


def test_a_writer_held_up_by_backpressure_does_not_block_readers() -> None:
    # A lossless subscriber whose consumer is slow holds up the writer publishing to it. A second writer
    # must not then hold the model's lock while it waits its turn to publish: readers (REST, the status
    # page, the consumer itself) would all stall until the first writer's block_timeout ran out.
    model = Model()
    model.ensure_resource("p", "s", "a", SENSOR)
    model.ensure_resource("p", "s", "b", SENSOR)
    waiting = threading.Event()
    sub = model.subscribe(
        "recorder",
        maxsize=1,
        lossless=True,
        block_timeout=60,
        filter=lambda e: e.type is EventType.VALUE_UPDATED and (e.value != 2.0 or waiting.set() or True),
    )
    try:
        model.update("p", "s", "a", 1.0)  # fills the subscriber's queue
        first = start(model.update, "p", "s", "a", 2.0)
        assert waiting.wait(JOIN)  # the first writer is publishing into a full queue
        second = start(model.update, "p", "s", "b", 3.0)
        seen = threading.Event()

        def read() -> None:
            while model.get("p", "s", "b").value != 3.0:
                time.sleep(0.001)
            seen.set()

        start(read)
        assert seen.wait(JOIN), "a reader was blocked while a writer waited for a lossless subscriber"
        assert model.provider("p").services["s"].resources["a"].value == 2.0

        values = [sub.get(timeout=JOIN).value for _ in range(3)]  # type: ignore[union-attr]
        first.join(JOIN)
        second.join(JOIN)
        assert values == [1.0, 2.0, 3.0] and sub.dropped == 0
        assert not first.is_alive() and not second.is_alive()
    finally:
        sub.close()  # releases the writers if an assertion failed
