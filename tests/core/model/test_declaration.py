"""Model files (TOML or JSON): a full declaration applied to a model, and every kind of bad file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agent.core.config.errors import ConfigError, Problem
from agent.core.model import (
    ADMIN,
    EventType,
    Model,
    Parameter,
    ReadOnlyResource,
    ResourceKind,
    ResourceSpec,
    ValueMode,
    value_type,
)
from agent.core.model.declaration import (
    MAX_MODEL_FILE_BYTES,
    ModelDecl,
    apply_declaration,
    load_model_file,
    read_model_file,
)

NOW = 1_714_564_800.0
DEPOT = {"type": "Point", "coordinates": [139.49, 35.34]}

FULL_TOML = """
[providers.truck-7.admin]
friendlyName = "Truck 7"
description = "garbage truck, Fujisawa depot"
location = { type = "Point", coordinates = [139.49, 35.34] }

# The GPS driver owns the location: clients may no longer SET it.
[providers.truck-7.services.admin.resources.location]
type = "geojson"
kind = "PROPERTY"
mode = "UPDATABLE"

[providers.truck-7.services.env.resources.temperature]
type = "double"
unit = "degC"
description = "air temperature"
min = -40
max = 85.5
metadata = { sensor = "bme280" }

[providers.truck-7.services.env.resources.state]
kind = "STATE_VARIABLE"
value = "idle"

[providers.truck-7.services.env.resources.seen]
type = "instant"
value = 2024-05-01T14:00:00+02:00

[providers.truck-7.services.info.resources.serial]
kind = "PROPERTY"
mode = "FIXED"
value = "SN-0001"

[providers.truck-7.services.heating.resources.setpoint]
kind = "PROPERTY"
type = "double"
value = 20
min = 5
max = 30

[providers.truck-7.services.camera.resources.snapshot]
kind = "ACTION"
handler = "camera.snapshot"

[providers.truck-7.services.camera.resources.snapshot.parameters.quality]
type = "int"
min = 1
max = 100

[providers.truck-7.services.camera.resources.snapshot.parameters.label]
type = "string"
required = false
default = "auto"

[providers.bin-12.services.fill.resources.level]
type = "int"
unit = "%"
"""

FULL_JSON = {
    "providers": {
        "truck-7": {
            "admin": {
                "friendlyName": "Truck 7",
                "description": "garbage truck, Fujisawa depot",
                "location": DEPOT,
            },
            "services": {
                "admin": {
                    "resources": {"location": {"type": "geojson", "kind": "PROPERTY", "mode": "UPDATABLE"}}
                },
                "env": {
                    "resources": {
                        "temperature": {
                            "type": "double",
                            "unit": "degC",
                            "description": "air temperature",
                            "min": -40,
                            "max": 85.5,
                            "metadata": {"sensor": "bme280"},
                        },
                        "state": {"kind": "STATE_VARIABLE", "value": "idle"},
                        "seen": {"type": "instant", "value": "2024-05-01T12:00:00Z"},
                    }
                },
                "info": {"resources": {"serial": {"kind": "PROPERTY", "mode": "FIXED", "value": "SN-0001"}}},
                "heating": {
                    "resources": {
                        "setpoint": {"kind": "PROPERTY", "type": "double", "value": 20, "min": 5, "max": 30}
                    }
                },
                "camera": {
                    "resources": {
                        "snapshot": {
                            "kind": "ACTION",
                            "handler": "camera.snapshot",
                            "parameters": {
                                "quality": {"type": "int", "min": 1, "max": 100},
                                "label": {"type": "string", "required": False, "default": "auto"},
                            },
                        }
                    }
                },
            },
        },
        "bin-12": {"services": {"fill": {"resources": {"level": {"type": "int", "unit": "%"}}}}},
    }
}


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def problems(path: Path) -> list[Problem]:
    with pytest.raises(ConfigError) as caught:
        read_model_file(path)
    assert caught.value.source == str(path)
    return caught.value.problems


def resource_problems(tmp_path: Path, body: str) -> list[tuple[str, str]]:
    """The problems of a file declaring one resource, truck/env/r, with the given TOML body."""
    path = write(tmp_path, "model.toml", f"[providers.truck.services.env.resources.r]\n{body}\n")
    return [(p.path, p.message) for p in problems(path)]


R = "providers.truck.services.env.resources.r"


@pytest.fixture
def model() -> Model:
    return Model(clock=lambda: NOW)


# --- a full model file -----------------------------------------------------------------------------


@pytest.fixture(params=["toml", "json"])
def full_file(request, tmp_path: Path) -> Path:
    if request.param == "toml":
        return write(tmp_path, "vehicle.toml", FULL_TOML)
    return write(tmp_path, "vehicle.json", json.dumps(FULL_JSON, indent=2))


def test_toml_and_json_declare_the_same_model(tmp_path: Path) -> None:
    from_toml = read_model_file(write(tmp_path, "a.toml", FULL_TOML))
    from_json = read_model_file(write(tmp_path, "a.json", json.dumps(FULL_JSON)))
    toml_seen = from_toml.providers["truck-7"].services["env"].resources["seen"]
    json_seen = from_json.providers["truck-7"].services["env"].resources["seen"]
    # TOML has native datetimes; JSON spells them as text. Both mean the same instant.
    assert value_type("instant")(toml_seen.value) == value_type("instant")(json_seen.value)
    same = from_toml.model_copy(deep=True)
    same.providers["truck-7"].services["env"].resources["seen"] = json_seen  # frozen models, plain dicts
    assert same == from_json


def test_a_full_model_file_builds_the_model(model: Model, full_file: Path) -> None:
    declaration = load_model_file(model, full_file)
    assert isinstance(declaration, ModelDecl)
    assert model.provider_names() == ["truck-7", "bin-12"]

    truck = model.provider("truck-7")
    assert list(truck.services) == [ADMIN, "env", "info", "heating", "camera"]
    assert truck.friendly_name == "Truck 7"
    assert truck.services[ADMIN].resources["description"].value == "garbage truck, Fujisawa depot"
    assert truck.location == DEPOT
    location = truck.services[ADMIN].resources["location"]
    assert (location.kind, location.mode, location.timestamp) == (
        ResourceKind.PROPERTY,
        ValueMode.UPDATABLE,
        NOW,
    )
    assert model.provider("bin-12").friendly_name == "bin-12"
    assert model.provider("bin-12").services[ADMIN].resources["location"].mode is ValueMode.MODIFIABLE

    def shape(service: str, resource: str, provider: str = "truck-7") -> tuple:
        snap = model.get(provider, service, resource)
        return (snap.type.name, snap.kind, snap.mode, snap.value, dict(snap.metadata))

    assert shape("env", "temperature") == (
        "double",
        ResourceKind.SENSOR,
        ValueMode.UPDATABLE,
        None,
        {"sensor": "bme280", "unit": "degC", "description": "air temperature", "min": -40.0, "max": 85.5},
    )
    assert not model.get("truck-7", "env", "temperature").has_value
    assert shape("env", "state") == ("string", ResourceKind.STATE_VARIABLE, ValueMode.UPDATABLE, "idle", {})
    assert shape("env", "seen")[3] == "2024-05-01T12:00:00.000Z"
    assert shape("info", "serial") == ("string", ResourceKind.PROPERTY, ValueMode.FIXED, "SN-0001", {})
    assert shape("heating", "setpoint") == (
        "double",
        ResourceKind.PROPERTY,
        ValueMode.MODIFIABLE,
        20.0,
        {"min": 5.0, "max": 30.0},
    )
    assert model.get("truck-7", "heating", "setpoint").timestamp == NOW
    assert shape("fill", "level", "bin-12") == (
        "int",
        ResourceKind.SENSOR,
        ValueMode.UPDATABLE,
        None,
        {"unit": "%"},
    )

    snapshot = model.get("truck-7", "camera", "snapshot")
    assert (snapshot.kind, snapshot.value) == (ResourceKind.ACTION, None)
    assert snapshot.parameters == (
        Parameter("quality", value_type("int"), True, None, 1.0, 100.0),
        Parameter("label", value_type("string"), False, "auto", None, None),
    )


def test_a_declared_model_behaves_as_declared(model: Model, full_file: Path) -> None:
    load_model_file(model, full_file)
    with pytest.raises(ReadOnlyResource, match="UPDATABLE"):
        model.set("truck-7", ADMIN, "location", DEPOT)
    with pytest.raises(ReadOnlyResource, match="FIXED"):
        model.update("truck-7", "info", "serial", "SN-0002")
    with pytest.raises(ValueError, match="above the maximum 30"):
        model.set("truck-7", "heating", "setpoint", 31)
    assert model.set("truck-7", "heating", "setpoint", 30).value == 30.0
    assert model.set("truck-7", ADMIN, "friendlyName", "Truck Seven").value == "Truck Seven"

    model.register_action_handler("camera.snapshot", lambda call: dict(call.params))
    assert model.act("truck-7", "camera", "snapshot", {"quality": 80}) == {"quality": 80, "label": "auto"}
    with pytest.raises(ValueError, match="parameter 'quality': 0 is below the minimum 1"):
        model.act("truck-7", "camera", "snapshot", {"quality": 0})


def test_applying_a_declaration_again_changes_nothing(model: Model, full_file: Path) -> None:
    declaration = read_model_file(full_file)
    apply_declaration(model, declaration)
    model.update("truck-7", "env", "state", "driving")
    with model.subscribe("all") as sub:
        apply_declaration(model, declaration)
        assert sub.pending == 0
    assert model.get("truck-7", "env", "state").value == "driving"


def test_declared_changes_are_marked_as_such(model: Model, full_file: Path) -> None:
    with model.subscribe("all", filter=lambda e: e.type is EventType.RESOURCE_APPEARED) as sub:
        load_model_file(model, full_file)
        assert {e.source for e in sub.get_batch(timeout=0)} == {"declaration"}


def test_an_admin_resource_may_give_the_friendly_name(model: Model, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "m.toml",
        '[providers.truck.services.admin.resources.friendlyName]\nkind = "PROPERTY"\nvalue = "Truck 9"\n',
    )
    load_model_file(model, path)
    assert model.provider("truck").friendly_name == "Truck 9"


def test_an_empty_file_declares_nothing(model: Model, tmp_path: Path) -> None:
    assert load_model_file(model, write(tmp_path, "empty.toml", "")) == ModelDecl()
    assert load_model_file(model, write(tmp_path, "empty.json", "{}")) == ModelDecl()
    assert model.provider_names() == []


# --- bad files -------------------------------------------------------------------------------------


def test_a_toml_syntax_error(tmp_path: Path) -> None:
    path = write(tmp_path, "m.toml", "[providers.truck\n")
    assert problems(path) == [
        Problem("", "syntax error: \"Expected ']' at the end of a table declaration (at line 1, column 17)\"")
    ]


def test_a_json_syntax_error(tmp_path: Path) -> None:
    path = write(tmp_path, "m.json", '{"providers": ')
    assert problems(path) == [Problem("", "syntax error: 'Expecting value: line 1 column 15 (char 14)'")]


def test_json_nested_too_deep_for_the_parser_is_a_syntax_error(tmp_path: Path) -> None:
    (problem,) = problems(write(tmp_path, "m.json", "[" * 100_000))
    assert problem.path == "" and problem.message.startswith("syntax error: 'maximum recursion depth")


@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_a_file_that_is_not_utf8(tmp_path: Path, suffix: str) -> None:
    path = write(tmp_path, f"m{suffix}", b'{"providers": {}} \xff\xfe')
    assert problems(path) == [Problem("", "not UTF-8 text (byte 18)")]


@pytest.mark.parametrize("text", ["[1, 2]", '"providers"', "null", "42"])
def test_a_json_file_that_is_not_a_table(tmp_path: Path, text: str) -> None:
    assert problems(write(tmp_path, "m.json", text)) == [Problem("", "expected a table at the top level")]


def test_unknown_keys_are_named_by_their_full_path(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "m.toml",
        """
provders = {}
[providers.truck.admin]
friendlyname = "x"
[providers.truck.services.env]
resource = {}
[providers.truck.services.env.resources.temp]
type = "double"
unti = "degC"
[providers.truck.services.cam.resources.shot]
kind = "ACTION"
handler = "shot"
parameters = { quality = { type = "int", maximum = 100 } }
""",
    )
    assert sorted((p.path, p.message) for p in problems(path)) == [
        ("provders", "unknown key (a typo?)"),
        ("providers.truck.admin.friendlyname", "unknown key (a typo?)"),
        ("providers.truck.services.cam.resources.shot.parameters.quality.maximum", "unknown key (a typo?)"),
        ("providers.truck.services.env.resource", "unknown key (a typo?)"),
        ("providers.truck.services.env.resources.temp.unti", "unknown key (a typo?)"),
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('type = "int"\nvalue = "40"', "initial value: expected a 32-bit integer, got str '40'"),
        ('type = "int"\nvalue = 4.5', "initial value: expected a 32-bit integer, got float 4.5"),
        ('type = "boolean"\nvalue = 1', "initial value: expected a boolean, got int 1"),
        ("value = 40", "initial value: expected a string, got int 40"),  # the type defaults to string
        ('type = "double"\nvalue = nan', "initial value: expected a finite number, got nan"),
        (
            'type = "instant"\nvalue = 2024-05-01T12:00:00',
            "initial value: expected an instant with a time zone",
        ),
        (
            'type = "geojson"\nvalue = { type = "Point", coordinates = [0, 91] }',
            "initial value: expected longitude",
        ),
        ('kind = "ACTION"', "an ACTION needs a handler ('name' registered by a driver or 'module:function')"),
        ('kind = "ACTION"\nhandler = "h"\nvalue = "x"', "an ACTION has neither a value nor a mode"),
        ('kind = "ACTION"\nhandler = "h"\nmode = "FIXED"', "an ACTION has neither a value nor a mode"),
        ('parameters = { a = { type = "int" } }', "only an ACTION has parameters or a handler"),
        ('kind = "PROPERTY"\nhandler = "h"', "only an ACTION has parameters or a handler"),
        ('type = "double"\nmin = 5\nmax = 1', "min is greater than max"),
        (
            'kind = "ACTION"\nhandler = "h"\nparameters = { a = { type = "int", default = "x" } }',
            "initial value: expected a 32-bit integer, got str 'x'",
        ),
        ("metadata = { gain = nan }", "metadata: expected finite numbers, got nan"),
        ("metadata = { since = 2024-05-01T12:00:00Z }", "metadata: expected a JSON value, got datetime"),
    ],
)
def test_inconsistent_resources_are_refused_at_their_path(tmp_path: Path, body: str, message: str) -> None:
    ((path, found),) = resource_problems(tmp_path, body)
    assert path == R
    assert found.startswith(message)


@pytest.mark.parametrize(
    ("body", "where", "message"),
    [
        ('type = "number"', "type", "Input should be 'boolean', 'int', 'long', 'float', 'double', 'string',"),
        ('kind = "sensor"', "kind", "Input should be 'SENSOR', 'STATE_VARIABLE', 'PROPERTY' or 'ACTION'"),
        ('mode = "RW"', "mode", "Input should be 'MODIFIABLE', 'UPDATABLE' or 'FIXED'"),
        ('type = "double"\nmin = "5"', "min", "Input should be a valid number"),
        ('type = "double"\nmax = inf', "max", "Input should be a finite number"),
        ('type = "double"\nmin = nan', "min", "Input should be a finite number"),
        ('unit = "' + "u" * 33 + '"', "unit", "String should have at most 32 characters"),
        ('metadata = { "bad key" = 1 }', "metadata.bad key", "expected 1-64 letters, digits"),
        (
            'kind = "ACTION"\nhandler = "h"\nparameters = { a = { type = "double", min = nan } }',
            "parameters.a.min",
            "Input should be a finite number",
        ),
        (
            'kind = "ACTION"\nhandler = "h"\nparameters = { a = { type = "int", required = "no" } }',
            "parameters.a.required",
            "Input should be a valid boolean",
        ),
    ],
)
def test_bad_fields_are_named_precisely(tmp_path: Path, body: str, where: str, message: str) -> None:
    ((path, found),) = resource_problems(tmp_path, body)
    assert path == f"{R}.{where}"
    assert found.startswith(message)


def test_bad_names_and_admin_values_are_named(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "m.toml",
        """
[providers."bad name".services.env.resources.r]
type = "double"
[providers.truck.admin]
location = { type = "Point", coordinates = [200, 0] }
[providers.truck.services."env/1".resources.r]
type = "double"
""",
    )
    found = sorted((p.path, p.message) for p in problems(path))
    assert found == [
        ("providers.bad name", "expected 1-64 letters, digits, '_', '.', ':' or '-'"),
        (
            "providers.truck.admin",
            "location: expected longitude in [-180, 180] and latitude in [-90, 90], got [200, 0]",
        ),
        ("providers.truck.services.env/1", "expected 1-64 letters, digits, '_', '.', ':' or '-'"),
    ]


def test_every_problem_of_a_file_is_reported_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "m.toml",
        '[providers.a.services.s.resources.r]\ntype = "int"\nvalue = "1"\n'
        '[providers.b.services.s.resources.r]\nkind = "ACTION"\n',
    )
    with pytest.raises(ConfigError) as caught:
        read_model_file(path)
    assert [p.path for p in caught.value.problems] == [
        "providers.a.services.s.resources.r",
        "providers.b.services.s.resources.r",
    ]
    assert str(caught.value).startswith(f"{path}: 2 problem(s)\n  providers.a.services.s.resources.r: ")


def test_an_oversize_file_is_refused_unread(tmp_path: Path) -> None:
    path = write(tmp_path, "big.toml", "#" * MAX_MODEL_FILE_BYTES + "\n")
    assert problems(path) == [Problem("", f"larger than {MAX_MODEL_FILE_BYTES} bytes")]
    fits = write(tmp_path, "fits.toml", "#" * (MAX_MODEL_FILE_BYTES - 1) + "\n")
    assert read_model_file(fits) == ModelDecl()


@pytest.mark.parametrize("name", ["model.yaml", "model.TOML", "model", "model.toml.bak"])
def test_only_toml_and_json_files_are_read(tmp_path: Path, name: str) -> None:
    path = write(tmp_path, name, "")
    assert problems(path) == [Problem("", "expected a .toml or .json model file")]


def test_a_missing_file(tmp_path: Path) -> None:
    assert problems(tmp_path / "absent.toml") == [Problem("", "cannot read: No such file or directory")]


def test_a_directory_is_not_a_file(tmp_path: Path) -> None:
    (tmp_path / "dir.json").mkdir()
    assert problems(tmp_path / "dir.json") == [Problem("", "cannot read: Is a directory")]


# --- applying a file to a model that disagrees -----------------------------------------------------


def test_load_model_file_reports_a_shape_conflict_as_a_config_error(model: Model, tmp_path: Path) -> None:
    model.ensure_resource("truck", "env", "temp", ResourceSpec(value_type("int")))
    path = write(tmp_path, "m.toml", '[providers.truck.services.env.resources.temp]\ntype = "double"\n')
    with pytest.raises(ConfigError) as caught:
        load_model_file(model, path)
    assert caught.value.source == str(path)
    assert caught.value.problems == [
        Problem("providers", "truck/env/temp already exists with another shape (SENSOR int UPDATABLE)")
    ]
    assert model.get("truck", "env", "temp").type.name == "int"


def test_an_admin_resource_of_the_wrong_type_is_a_config_error(model: Model, tmp_path: Path) -> None:
    # type defaults to string: the location must stay GeoJSON.
    path = write(
        tmp_path, "m.toml", '[providers.truck.services.admin.resources.location]\nmode = "UPDATABLE"\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_model_file(model, path)
    assert caught.value.problems == [Problem("providers", "truck/admin/location must be of type geojson")]
    assert "truck" not in model


def test_a_read_only_check_and_loading_agree(model: Model, tmp_path: Path) -> None:
    # `msec-agent model check` reads; the agent loads. What one accepts the other must build.
    path = write(
        tmp_path,
        "m.json",
        json.dumps(
            {
                "providers": {
                    "p": {
                        "services": {
                            "s": {
                                "resources": {
                                    "r": {
                                        "type": "object",
                                        "value": {"a": [1, 2]},
                                        "metadata": {"k": {"x": 1}},
                                    }
                                }
                            }
                        }
                    }
                }
            }
        ),
    )
    read_model_file(path)
    load_model_file(model, path)
    assert model.get("p", "s", "r").value == {"a": [1, 2]}


def test_the_declaration_module_imports_on_its_own() -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import agent.core.model.declaration"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-500:]
