"""load_config: every wrong key is named by its path, the value found and what was expected."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import agent
from agent.core.config import AgentConfig, ConfigError, Extensions, Problem, load_config
from agent.core.config.loader import MAX_CONFIG_BYTES, validate_config
from agent.core.config.schema import (
    AgentSection,
    HttpSection,
    ModelSection,
    OutboxSection,
    RuntimeSection,
)
from agent.core.config.schema_base import Strict, split_listen
from agent.core.model.declaration import ModelDecl
from agent.drivers.simulated.driver import SimulatedConfig

PROFILES = Path(agent.__file__).parent / "profiles"
SIM = Extensions(drivers={"simulated": SimulatedConfig})
MINIMAL = '[agent]\ndevice_id = "truck-1"\n'
CORE_TABLES = "agent, model, outbox, http, runtime, drivers"


def write(tmp_path: Path, text: str, name: str = "agent.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems(tmp_path: Path, text: str, extensions: Extensions = SIM) -> list[Problem]:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, extensions)
    assert caught.value.source == str(path)
    return caught.value.problems


def only_problem(tmp_path: Path, text: str, extensions: Extensions = SIM) -> Problem:
    found = problems(tmp_path, text, extensions)
    assert len(found) == 1, found
    return found[0]


# --- good files ------------------------------------------------------------------------------------------


def test_demo_profile_validates() -> None:
    from agent.app import extensions  # every table and driver type the agent understands

    config = load_config(PROFILES / "demo.toml", extensions())
    assert config.agent.device_id == "demo-truck-001"
    assert config.agent.profile == "demo"
    assert config.agent.log_format == "text"
    assert config.outbox.max_bytes == 64 * 2**20
    assert config.outbox.synchronous == "NORMAL"
    assert config.http.listen == "127.0.0.1:8080"
    assert config.drivers[0] == SimulatedConfig(
        type="simulated", id="sim", provider="truck", rate_hz=2.0, gps=False, seed=42
    )
    assert [d.type for d in config.drivers] == ["simulated", "serial", "serial", "gpio", "ble"]
    [(model_path, declaration)] = config.model_files
    assert model_path == PROFILES / "demo-model.toml"  # relative to the config file's folder
    assert set(declaration.providers) == {"depot", "truck"}
    assert set(config.sections) == {"status", "security", "keystore"}  # the plugins' tables the demo uses


def test_minimal_config_gets_documented_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL)
    config = load_config(path)
    assert config == AgentConfig(
        source=path,
        agent=AgentSection(device_id="truck-1"),
        model=ModelSection(),
        outbox=OutboxSection(),
        http=HttpSection(),
        runtime=RuntimeSection(),
    )
    assert config.agent.model_dump() == {
        "device_id": "truck-1",
        "profile": "production",
        "state_dir": "/var/lib/msec-agent",
        "log_level": "info",
        "log_format": "json",
    }
    assert config.outbox.model_dump() == {
        "path": "outbox.db",
        "max_bytes": 256 * 2**20,
        "max_records": None,
        "on_full": "evict_oldest",
        "synchronous": "FULL",
        "record_kinds": ["SENSOR", "STATE_VARIABLE"],
    }
    assert config.http.model_dump() == {"enabled": True, "listen": "127.0.0.1:8080", "threads": 24}
    assert config.runtime.model_dump() == {
        "restart_initial": 0.5,
        "restart_max": 60.0,
        "stop_timeout": 10.0,
        "watchdog_grace": 30.0,
    }
    assert config.model.model_dump() == {"files": [], "providers": {}}
    assert config.drivers == ()
    assert config.model_files == ()
    assert config.state_dir == Path("/var/lib/msec-agent")
    assert config.outbox_path == Path("/var/lib/msec-agent/outbox.db")
    assert config.section("mqtt") is None


def test_every_core_key_can_be_set(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [agent]
        device_id = "t:1.a_b-c"
        profile = "development"
        state_dir = "/srv/msec"
        log_level = "debug"
        log_format = "text"
        [outbox]
        path = "q.db"
        max_bytes = 1048576
        max_records = 10
        on_full = "refuse"
        synchronous = "NORMAL"
        record_kinds = ["PROPERTY"]
        [http]
        enabled = false
        listen = "[::1]:9000"
        threads = 64
        [runtime]
        restart_initial = 1          # an int where a float is expected is fine, even in strict mode
        restart_max = 2.5
        stop_timeout = 60
        watchdog_grace = 0
        [[drivers]]
        type = "simulated"
        id = "a"
        enabled = false
        gps = false
        [[drivers]]
        type = "simulated"
        id = "b"
        provider = "truck2"
        """,
    )
    config = load_config(path, SIM)
    assert config.agent.device_id == "t:1.a_b-c"
    assert config.outbox_path == Path("/srv/msec/q.db")
    assert (config.outbox.max_records, config.outbox.on_full, config.outbox.record_kinds) == (
        10,
        "refuse",
        ["PROPERTY"],
    )
    assert split_listen(config.http.listen) == ("::1", 9000)
    assert config.runtime.restart_initial == 1.0
    assert isinstance(config.runtime.restart_initial, float)
    assert [(d.id, d.enabled) for d in config.drivers] == [("a", False), ("b", True)]
    assert config.drivers[1].provider == "truck2"  # type: ignore[attr-defined]


# --- wrong values in the core tables ---------------------------------------------------------------------

BAD_VALUES = [
    # (table, assignment, path, part of the message, value found)
    ("agent", "device_id = 5", "agent.device_id", "valid string", "5"),
    ("agent", 'device_id = ""', "agent.device_id", "expected 1-64 letters", "''"),
    ("agent", 'device_id = "truck 1"', "agent.device_id", "expected 1-64 letters", "'truck 1'"),
    ("agent", 'device_id = "truck\\n"', "agent.device_id", "expected 1-64 letters", "'truck\\n'"),
    ("agent", 'device_id = "-truck"', "agent.device_id", "expected 1-64 letters", "'-truck'"),
    ("agent", f'device_id = "{"a" * 65}"', "agent.device_id", "expected 1-64 letters", repr("a" * 65)),
    ("agent", 'profile = "prod"', "agent.profile", "'production', 'development' or 'demo'", "'prod'"),
    (
        "agent",
        'profile = "PRODUCTION"',
        "agent.profile",
        "'production', 'development' or 'demo'",
        "'PRODUCTION'",
    ),
    ("agent", 'state_dir = "var/lib/msec"', "agent.state_dir", "expected an absolute path", "'var/lib/msec'"),
    ("agent", 'state_dir = ""', "agent.state_dir", "expected an absolute path", "''"),
    ("agent", "state_dir = 5", "agent.state_dir", "valid string", "5"),
    (
        "agent",
        'log_level = "verbose"',
        "agent.log_level",
        "'debug', 'info', 'warning' or 'error'",
        "'verbose'",
    ),
    ("agent", "log_level = 5", "agent.log_level", "'debug', 'info', 'warning' or 'error'", "5"),
    ("agent", 'log_format = "xml"', "agent.log_format", "'json' or 'text'", "'xml'"),
    ("outbox", 'max_bytes = "5"', "outbox.max_bytes", "valid integer", "'5'"),
    ("outbox", 'max_bytes = "268435456"', "outbox.max_bytes", "valid integer", "'268435456'"),
    ("outbox", "max_bytes = 268435456.0", "outbox.max_bytes", "valid integer", "268435456.0"),
    ("outbox", "max_bytes = true", "outbox.max_bytes", "valid integer", "True"),
    ("outbox", "max_bytes = 0", "outbox.max_bytes", "greater than or equal to 1048576", "0"),
    ("outbox", "max_bytes = -1", "outbox.max_bytes", "greater than or equal to 1048576", "-1"),
    ("outbox", "max_bytes = 1048575", "outbox.max_bytes", "greater than or equal to 1048576", "1048575"),
    (
        "outbox",
        "max_bytes = 1099511627777",
        "outbox.max_bytes",
        "less than or equal to 1099511627776",
        "1099511627777",
    ),
    (
        "outbox",
        "max_bytes = 9223372036854775807",
        "outbox.max_bytes",
        "less than or equal to",
        "9223372036854775807",
    ),
    ("outbox", "max_records = 0", "outbox.max_records", "greater than or equal to 1", "0"),
    ("outbox", 'max_records = "10"', "outbox.max_records", "valid integer", "'10'"),
    ("outbox", 'on_full = "drop"', "outbox.on_full", "'refuse' or 'evict_oldest'", "'drop'"),
    ("outbox", 'synchronous = "OFF"', "outbox.synchronous", "'FULL' or 'NORMAL'", "'OFF'"),
    ("outbox", 'synchronous = "full"', "outbox.synchronous", "'FULL' or 'NORMAL'", "'full'"),
    ("outbox", 'record_kinds = ["SENSOR", "ACTION"]', "outbox.record_kinds[1]", "'PROPERTY'", "'ACTION'"),
    ("outbox", 'record_kinds = "SENSOR"', "outbox.record_kinds", "valid list", "'SENSOR'"),
    ("outbox", 'path = ""', "outbox.path", "at least 1 character", "''"),
    ("http", 'enabled = "yes"', "http.enabled", "valid boolean", "'yes'"),
    ("http", "enabled = 1", "http.enabled", "valid boolean", "1"),
    ("http", "listen = 8080", "http.listen", "valid string", "8080"),
    ("http", "threads = 1", "http.threads", "greater than or equal to 2", "1"),
    ("http", "threads = 0", "http.threads", "greater than or equal to 2", "0"),
    ("http", "threads = 129", "http.threads", "less than or equal to 128", "129"),
    ("http", 'threads = "8"', "http.threads", "valid integer", "'8'"),
    ("http", "threads = 8.0", "http.threads", "valid integer", "8.0"),
    ("runtime", "restart_initial = 0", "runtime.restart_initial", "greater than 0", "0"),
    ("runtime", "restart_initial = -0.5", "runtime.restart_initial", "greater than 0", "-0.5"),
    ("runtime", 'restart_initial = "0.5"', "runtime.restart_initial", "valid number", "'0.5'"),
    ("runtime", "restart_initial = true", "runtime.restart_initial", "valid number", "True"),
    ("runtime", "restart_initial = nan", "runtime.restart_initial", "finite number", "nan"),
    ("runtime", "restart_max = inf", "runtime.restart_max", "finite number", "inf"),
    ("runtime", "restart_max = -1.0", "runtime.restart_max", "greater than 0", "-1.0"),
    ("runtime", "stop_timeout = 0", "runtime.stop_timeout", "greater than 0", "0"),
    ("runtime", "stop_timeout = 61", "runtime.stop_timeout", "less than or equal to 60", "61"),
    ("runtime", "stop_timeout = nan", "runtime.stop_timeout", "finite number", "nan"),
    ("runtime", "watchdog_grace = -1", "runtime.watchdog_grace", "greater than or equal to 0", "-1"),
    ("runtime", "watchdog_grace = 3601", "runtime.watchdog_grace", "less than or equal to 3600", "3601"),
    ("runtime", "watchdog_grace = 1e300", "runtime.watchdog_grace", "less than or equal to 3600", "1e+300"),
    ("runtime", "watchdog_grace = -inf", "runtime.watchdog_grace", "finite number", "-inf"),
    ("model", 'files = "demo-model.toml"', "model.files", "valid list", "'demo-model.toml'"),
    ("model", "files = [1]", "model.files[0]", "valid string", "1"),
    ("model", "providers = 5", "model.providers", "valid dictionary", "5"),
    (
        "model",
        'providers = { "bad name" = {} }',
        "model.providers.bad name",
        "expected 1-64 letters",
        "'bad name'",
    ),
    (
        "model",
        'providers.truck.services.env.resources.t = { kind = "SENSORX" }',
        "model.providers.truck.services.env.resources.t.kind",
        "'SENSOR', 'STATE_VARIABLE', 'PROPERTY' or 'ACTION'",
        "'SENSORX'",
    ),
]


@pytest.mark.parametrize(("table", "assignment", "path", "message", "value"), BAD_VALUES)
def test_wrong_value_is_named_by_path_value_and_expectation(
    tmp_path: Path, table: str, assignment: str, path: str, message: str, value: str
) -> None:
    if table != "agent":
        text = f"{MINIMAL}[{table}]\n{assignment}\n"
    elif assignment.startswith("device_id"):
        text = f"[agent]\n{assignment}\n"
    else:
        text = f'[agent]\ndevice_id = "t"\n{assignment}\n'
    problem = only_problem(tmp_path, text)
    assert problem.path == path
    assert message in problem.message
    assert problem.value == value


@pytest.mark.parametrize(
    "listen",
    [
        "127.0.0.1:70000",
        "127.0.0.1:65536",
        "127.0.0.1:-1",
        "127.0.0.1",
        "127.0.0.1:",
        ":8080",
        "localhost:http",
        "host:\u00b2",  # '²' is a digit to str.isdigit(), not to int()
        "::1",  # IPv6 without brackets: no port
        "::1:8080",  # IPv6 without brackets: ambiguous
        "[::1]",
        "[::1]:",
        "[]:8080",
        "[localhost]:8080",
        "[[::1]]:8080",
        "",
    ],
)
def test_bad_listen_address(tmp_path: Path, listen: str) -> None:
    problem = only_problem(tmp_path, f'{MINIMAL}[http]\nlisten = "{listen}"\n')
    assert problem.path == "http.listen"
    assert problem.message == "expected 'host:port' or '[ipv6]:port', e.g. '127.0.0.1:8080'"
    assert problem.value == repr(listen)


@pytest.mark.parametrize(
    ("listen", "host", "port"),
    [
        ("127.0.0.1:8080", "127.0.0.1", 8080),
        ("0.0.0.0:0", "0.0.0.0", 0),
        ("localhost:65535", "localhost", 65535),
        ("[::1]:8080", "::1", 8080),
        ("[::]:80", "::", 80),
        ("[fe80::1%eth0]:443", "fe80::1%eth0", 443),
    ],
)
def test_good_listen_address(tmp_path: Path, listen: str, host: str, port: int) -> None:
    config = load_config(write(tmp_path, f'{MINIMAL}[http]\nlisten = "{listen}"\n'))
    assert split_listen(config.http.listen) == (host, port)


# --- the shape of the file -------------------------------------------------------------------------------


def test_unknown_top_level_table(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, f"{MINIMAL}[outbx]\nmax_bytes = 5\n")
    assert problem == Problem("outbx", f"unknown table (expected one of: {CORE_TABLES})")


def test_key_outside_any_table_is_unknown_and_agent_missing(tmp_path: Path) -> None:
    # The classic slip: the [agent] header forgotten.
    assert problems(tmp_path, 'device_id = "truck-1"\n') == [
        Problem("device_id", f"unknown table (expected one of: {CORE_TABLES})"),
        Problem("agent", "required table is missing (it holds device_id)"),
    ]


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ("agent", "devic_id"),
        ("outbox", "max_byte"),
        ("http", "listen_on"),
        ("runtime", "restart_maximum"),
        ("model", "file"),
    ],
)
def test_unknown_key_in_a_table(tmp_path: Path, table: str, key: str) -> None:
    text = '[agent]\ndevice_id = "t"\n' + (f"{key} = 5\n" if table == "agent" else f"[{table}]\n{key} = 5\n")
    problem = only_problem(tmp_path, text)
    # The value of an unknown key is not shown: the key may be a misspelt secret.
    assert problem == Problem(f"{table}.{key}", "unknown key (a typo?)")


def test_unknown_key_deep_in_the_model(tmp_path: Path) -> None:
    text = f'{MINIMAL}[model.providers.truck.services.env.resources.t]\nunitt = "Cel"\n'
    problem = only_problem(tmp_path, text)
    assert problem == Problem("model.providers.truck.services.env.resources.t.unitt", "unknown key (a typo?)")


@pytest.mark.parametrize(
    ("text", "path", "value"),
    [
        (f"outbox = 5\n{MINIMAL}", "outbox", "5"),
        (f'http = "127.0.0.1:8080"\n{MINIMAL}', "http", "'127.0.0.1:8080'"),
        (f"runtime = [1, 2]\n{MINIMAL}", "runtime", "[1, 2]"),
        (f"{MINIMAL}[[model]]\nfiles = []\n", "model", "[{'files': []}]"),
        ('agent = "truck-1"\n', "agent", "'truck-1'"),
    ],
)
def test_table_given_as_a_scalar(tmp_path: Path, text: str, path: str, value: str) -> None:
    # The value is not echoed: a scalar where a table belongs may be a secret put in the wrong place.
    assert only_problem(tmp_path, text) == Problem(path, "expected a table")


@pytest.mark.parametrize("text", ["", "# nothing but a comment\n", '[http]\nlisten = "127.0.0.1:1"\n'])
def test_missing_agent_table(tmp_path: Path, text: str) -> None:
    assert only_problem(tmp_path, text) == Problem("agent", "required table is missing (it holds device_id)")


def test_agent_without_device_id(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, '[agent]\nprofile = "demo"\n')
    assert problem == Problem("agent.device_id", "required key is missing")


# --- [[drivers]] -----------------------------------------------------------------------------------------


def drivers(*entries: str) -> str:
    return MINIMAL + "".join(f"[[drivers]]\n{entry}\n" for entry in entries)


def test_driver_of_unknown_type(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, drivers('type = "gps"\nid = "g"'))
    assert problem == Problem("drivers[0].type", "unknown driver type (expected one of: simulated)", "'gps'")


def test_driver_type_when_no_driver_is_installed(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, drivers('type = "simulated"\nid = "s"'), Extensions())
    assert problem == Problem(
        "drivers[0].type", "unknown driver type (expected one of: none installed)", "'simulated'"
    )


def test_driver_without_type(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, drivers('id = "s"\nrate_hz = 2.0'))
    assert problem == Problem("drivers[0].type", "required key is missing (expected one of: simulated)")


def test_driver_type_not_a_string(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, drivers('type = 5\nid = "s"'))
    assert problem == Problem("drivers[0].type", "unknown driver type (expected one of: simulated)", "5")


def test_driver_entries_that_are_not_tables(tmp_path: Path) -> None:
    text = f'drivers = [1, "simulated", {{ type = "simulated", id = "s" }}]\n{MINIMAL}'
    assert problems(tmp_path, text) == [
        Problem("drivers[0]", "expected a table", "1"),
        Problem("drivers[1]", "expected a table", "'simulated'"),
    ]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (f'drivers = "simulated"\n{MINIMAL}', "'simulated'"),
        (f'{MINIMAL}[drivers]\ntype = "simulated"\n', "{'type': 'simulated'}"),
    ],
)
def test_drivers_not_an_array(tmp_path: Path, text: str, value: str) -> None:
    assert only_problem(tmp_path, text) == Problem(
        "drivers", "expected an array of tables ([[drivers]])", value
    )


def test_duplicate_driver_ids(tmp_path: Path) -> None:
    sim = 'type = "simulated"\nid = "{}"'
    found = problems(tmp_path, drivers(sim.format("a"), sim.format("b"), sim.format("a"), sim.format("a")))
    assert found == [
        Problem("drivers[2].id", "duplicate driver id", "'a'"),
        Problem("drivers[3].id", "duplicate driver id", "'a'"),
    ]


@pytest.mark.parametrize(
    ("entry", "path", "message", "value"),
    [
        ("rate_hx = 2.0", "drivers[0].rate_hx", "unknown key (a typo?)", None),
        ("Rate_hz = 2.0", "drivers[0].Rate_hz", "unknown key (a typo?)", None),
        ('rate_hz = "2"', "drivers[0].rate_hz", "Input should be a valid number", "'2'"),
        ("rate_hz = 0", "drivers[0].rate_hz", "Input should be greater than 0", "0"),
        ("rate_hz = 1001", "drivers[0].rate_hz", "Input should be less than or equal to 1000", "1001"),
        ("rate_hz = inf", "drivers[0].rate_hz", "Input should be a finite number", "inf"),
        ('enabled = "no"', "drivers[0].enabled", "Input should be a valid boolean", "'no'"),
        ('provider = "my truck"', "drivers[0].provider", "expected 1-64 letters", "'my truck'"),
        ("seed = 1.5", "drivers[0].seed", "Input should be a valid integer", "1.5"),
    ],
)
def test_driver_key_problems(tmp_path: Path, entry: str, path: str, message: str, value: str | None) -> None:
    problem = only_problem(tmp_path, drivers(f'type = "simulated"\nid = "s"\n{entry}'))
    assert problem.path == path
    assert problem.message.startswith(message)
    assert problem.value == value


def test_driver_without_id(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, drivers('type = "simulated"'))
    assert problem == Problem("drivers[0].id", "required key is missing")


def test_driver_problems_name_the_right_index(tmp_path: Path) -> None:
    good = 'type = "simulated"\nid = "good"'
    problem = only_problem(tmp_path, drivers(good, 'type = "simulated"\nid = "bad"\nrate_hz = -1'))
    assert problem.path == "drivers[1].rate_hz"


# --- model files -----------------------------------------------------------------------------------------

GOOD_MODEL = '[providers.depot.services.info.resources.shift]\nkind = "PROPERTY"\nvalue = "day"\n'
BROKEN_MODEL = """
[providers.p.services.s.resources.r]
type = "int"
value = "x"
[providers.p.services.s.resources.u]
unitt = "C"
"""


def with_files(*names: str) -> str:
    return f"{MINIMAL}[model]\nfiles = [{', '.join(repr(n) for n in names)}]\n"


def test_model_files_are_read_relative_to_the_config_file(tmp_path: Path) -> None:
    write(tmp_path, GOOD_MODEL, "m.toml")
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub", '{"providers": {"truck": {"admin": {"friendlyName": "T"}}}}', "n.json")
    config = load_config(write(tmp_path, with_files("m.toml", "sub/n.json")))
    assert [path for path, _ in config.model_files] == [tmp_path / "m.toml", tmp_path / "sub" / "n.json"]
    assert all(isinstance(decl, ModelDecl) for _, decl in config.model_files)
    assert config.model_files[1][1].providers["truck"].admin.friendlyName == "T"


def test_absolute_model_file_path(tmp_path: Path) -> None:
    model = write(tmp_path, GOOD_MODEL, "m.toml")
    (tmp_path / "etc").mkdir()
    config = load_config(write(tmp_path / "etc", with_files(str(model))))
    assert [path for path, _ in config.model_files] == [model]


def test_missing_model_file(tmp_path: Path) -> None:
    write(tmp_path, GOOD_MODEL, "m.toml")
    problem = only_problem(tmp_path, with_files("m.toml", "missing.toml"))
    assert problem == Problem(
        "model.files[1]", f"{tmp_path / 'missing.toml'}: cannot read: No such file or directory"
    )


def test_broken_model_file_names_the_inner_path(tmp_path: Path) -> None:
    write(tmp_path, GOOD_MODEL, "m.toml")
    write(tmp_path, BROKEN_MODEL, "broken.toml")
    found = problems(tmp_path, with_files("m.toml", "broken.toml"))
    file = tmp_path / "broken.toml"
    assert [p.path for p in found] == ["model.files[1]", "model.files[1]"]
    assert found[0].message.startswith(f"{file} at providers.p.services.s.resources.r: initial value: ")
    assert "32-bit integer" in found[0].message
    assert found[1] == Problem(
        "model.files[1]", f"{file} at providers.p.services.s.resources.u.unitt: unknown key (a typo?)"
    )


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("m.yaml", "providers: {}", "expected a .toml or .json model file"),
        ("m.toml", "[providers\n", "syntax error: "),
        ("m.json", "{", "syntax error: "),
        ("m.json", "[]", "expected a table at the top level"),
        ("m.toml", "providers = 5\n", "at providers: Input should be a valid dictionary"),
    ],
)
def test_unusable_model_file(tmp_path: Path, name: str, content: str, message: str) -> None:
    write(tmp_path, content, name)
    problem = only_problem(tmp_path, with_files(name))
    assert problem.path == "model.files[0]"
    assert problem.message.startswith(f"{tmp_path / name}{'' if message.startswith('at') else ': '}")
    assert message in problem.message


def test_model_file_that_is_a_directory(tmp_path: Path) -> None:
    (tmp_path / "models.toml").mkdir()
    problem = only_problem(tmp_path, with_files("models.toml"))
    assert problem == Problem("model.files[0]", f"{tmp_path / 'models.toml'}: cannot read: Is a directory")


def test_too_many_model_files(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, with_files(*[f"m{i}.toml" for i in range(65)]))
    assert problem.path == "model.files"
    assert "at most 64 items" in problem.message


# --- every problem at once -------------------------------------------------------------------------------


def test_all_problems_are_reported_at_once(tmp_path: Path) -> None:
    write(tmp_path, BROKEN_MODEL, "broken.toml")
    text = """
    typo_table = 1
    [agent]
    device_id = "truck 1"
    state_dir = "relative"
    [outbox]
    max_byte = 5
    max_bytes = "5"
    [http]
    listen = "127.0.0.1:70000"
    [runtime]
    stop_timeout = 0
    [model]
    files = ["broken.toml", "missing.toml"]
    [[drivers]]
    type = "simulated"
    id = "sim"
    rate_hz = "2"
    [[drivers]]
    id = "notype"
    [[drivers]]
    type = "simulated"
    id = "ok"
    [[drivers]]
    type = "simulated"
    id = "ok"
    """
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, SIM)
    error = caught.value
    assert [p.path for p in error.problems] == [
        "typo_table",
        "agent.device_id",
        "agent.state_dir",
        "outbox.max_bytes",
        "outbox.max_byte",
        "http.listen",
        "runtime.stop_timeout",
        "drivers[0].rate_hz",
        "drivers[1].type",
        "drivers[3].id",
        "model.files[0]",
        "model.files[0]",
        "model.files[1]",
    ]
    lines = str(error).splitlines()
    assert lines[0] == f"{path}: 13 problem(s)"
    assert lines[1:] == [f"  {p}" for p in error.problems]


# --- the file itself -------------------------------------------------------------------------------------


def test_toml_syntax_error(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, '[agent]\ndevice_id = "truck-1\n')
    assert problem.path == ""
    assert problem.message.startswith("syntax error: ")
    assert "line 2" in problem.message
    assert str(problem).startswith("(file): syntax error: ")


def test_duplicate_key_is_a_syntax_error(tmp_path: Path) -> None:
    problem = only_problem(tmp_path, '[agent]\ndevice_id = "a"\ndevice_id = "b"\n')
    assert problem.path == ""
    assert problem.message.startswith("syntax error: ")


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    data = b'[agent]\ndevice_id = "caf\xe9"\n'  # Latin-1, as an old editor saves it
    path.write_bytes(data)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems == [Problem("", f"not UTF-8 text (byte {data.index(0xE9)})")]


def test_oversize_file(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_bytes(MINIMAL.encode() + b"#" * (MAX_CONFIG_BYTES - len(MINIMAL)) + b"\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems == [Problem("", f"larger than {MAX_CONFIG_BYTES} bytes")]


def test_file_of_exactly_the_limit_is_read(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_bytes(MINIMAL.encode() + b"#" * (MAX_CONFIG_BYTES - len(MINIMAL) - 1) + b"\n")
    assert path.stat().st_size == MAX_CONFIG_BYTES
    assert load_config(path).agent.device_id == "truck-1"


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_endless_file_is_refused_without_reading_it_all() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config("/dev/zero")
    assert caught.value.problems == [Problem("", f"larger than {MAX_CONFIG_BYTES} bytes")]


@pytest.mark.parametrize(
    ("relative", "reason"),
    [
        ("missing.toml", "No such file or directory"),
        ("agent.toml/x.toml", "Not a directory"),
        (".", "Is a directory"),
    ],
)
def test_unreadable_path(tmp_path: Path, relative: str, reason: str) -> None:
    write(tmp_path, MINIMAL)
    path = tmp_path / relative
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.source == str(path)
    assert caught.value.problems == [Problem("", f"cannot read: {reason}")]
    assert str(caught.value) == f"{path}: 1 problem(s)\n  (file): cannot read: {reason}"


def test_file_without_read_permission(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL)
    path.chmod(0)
    if os.geteuid() != 0:
        with pytest.raises(ConfigError) as caught:
            load_config(path)
        assert caught.value.problems == [Problem("", "cannot read: Permission denied")]
        return
    # Root reads a file whatever its mode (CI runs as root): check as an unprivileged user instead.
    check = (
        "import sys\nfrom agent.core.config import ConfigError, load_config\n"
        "try:\n    load_config(sys.argv[1])\nexcept ConfigError as e:\n    print(e.problems[0])\n"
    )
    result = subprocess.run(
        [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            sys.executable,
            "-c",
            check,
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[3],
    )
    assert result.stdout.strip() == "(file): cannot read: Permission denied", result.stderr[-500:]


# --- overrides -------------------------------------------------------------------------------------------


def test_override_replaces_the_file_value(tmp_path: Path) -> None:
    path = write(tmp_path, '[agent]\ndevice_id = "t"\nstate_dir = "/var/lib/msec-agent"\n')
    config = load_config(path, overrides={"agent": {"state_dir": str(tmp_path)}})
    assert config.state_dir == tmp_path
    assert config.agent.device_id == "t"


def test_override_is_validated(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL)
    with pytest.raises(ConfigError) as caught:
        load_config(path, overrides={"agent": {"state_dir": "relative/dir"}})
    assert caught.value.problems == [
        Problem("agent.state_dir", "expected an absolute path", "'relative/dir'")
    ]


def test_override_with_unknown_key_is_caught(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL)
    with pytest.raises(ConfigError) as caught:
        load_config(path, overrides={"outbox": {"max_byte": 5}})
    assert caught.value.problems == [Problem("outbox.max_byte", "unknown key (a typo?)")]


def test_override_does_not_hide_a_scalar_table(tmp_path: Path) -> None:
    path = write(tmp_path, 'agent = "t"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path, overrides={"agent": {"state_dir": "/srv"}})
    assert caught.value.problems == [Problem("agent", "expected a table")]


def test_override_into_a_missing_agent_table_still_needs_device_id(tmp_path: Path) -> None:
    path = write(tmp_path, "")
    with pytest.raises(ConfigError) as caught:
        load_config(path, overrides={"agent": {"state_dir": "/srv"}})
    assert caught.value.problems == [Problem("agent.device_id", "required key is missing")]


# --- extension tables ------------------------------------------------------------------------------------


class Mqtt(Strict):
    host: str = "localhost"
    port: int = 1883


def test_extension_table_is_validated_and_returned(tmp_path: Path) -> None:
    ext = Extensions(sections={"mqtt": Mqtt})
    config = load_config(write(tmp_path, f'{MINIMAL}[mqtt]\nhost = "broker"\n'), ext)
    assert config.section("mqtt") == Mqtt(host="broker")
    assert config.sections == {"mqtt": Mqtt(host="broker")}  # the core tables are attributes, not sections


def test_extension_table_problems_and_known_tables(tmp_path: Path) -> None:
    ext = Extensions(sections={"mqtt": Mqtt})
    found = problems(tmp_path, f'{MINIMAL}[mqtt]\nport = "1883"\n[mqqt]\n', ext)
    assert found == [
        Problem(
            "mqqt", "unknown table (expected one of: agent, model, outbox, http, runtime, mqtt, drivers)"
        ),
        Problem("mqtt.port", "Input should be a valid integer", "'1883'"),
    ]


def test_extension_table_is_absent_when_its_feature_is_off(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL), Extensions(sections={"mqtt": Mqtt}))
    assert config.section("mqtt") is None


def test_validate_config_takes_a_parsed_table() -> None:
    config = validate_config({"agent": {"device_id": "x"}}, Path("/etc/msec-agent/agent.toml"), SIM)
    assert config.source == Path("/etc/msec-agent/agent.toml")
    with pytest.raises(ConfigError) as caught:
        validate_config({"agent": {"device_id": "x"}, "drivers": [{}]}, Path("/x.toml"), SIM)
    assert caught.value.problems == [
        Problem("drivers[0].type", "required key is missing (expected one of: simulated)")
    ]
