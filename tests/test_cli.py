"""The `msec-agent` console script, run for real: exit codes 0 (fine), 1 (a file with problems), 2 (usage)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import agent
from agent.app import extensions
from agent.core.config.loader import CORE_SECTIONS

PROFILES = Path(agent.__file__).parent / "profiles"
MINIMAL = '[agent]\ndevice_id = "truck-1"\n'

# What this build of the agent knows: the core's tables, the plugins' tables, and the driver types.
KNOWN_TABLES = ", ".join([*CORE_SECTIONS, *extensions().sections, "drivers"])
KNOWN_DRIVERS = ", ".join(sorted(extensions().drivers))


def _script() -> str:
    beside = Path(sys.executable).parent / "msec-agent"  # the venv running the tests
    found = str(beside) if beside.exists() else shutil.which("msec-agent")
    assert found, "the msec-agent console script is not installed (pip install -e .)"
    return found


SCRIPT = _script()


def msec(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(
        [SCRIPT, *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env, timeout=60, check=False
    )


def write(tmp_path: Path, text: str, name: str = "agent.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problem_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line.strip() for line in result.stderr.splitlines()[1:]]


# --- usage -----------------------------------------------------------------------------------------------


def test_version() -> None:
    result = msec("--version")
    assert result.returncode == 0
    assert result.stdout == f"msec-agent {agent.__version__}\n"


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        ((), "the following arguments are required: command"),
        (("config",), "the following arguments are required: config_command"),
        (("config", "check"), "the following arguments are required: path"),
        (("model", "check"), "the following arguments are required: path"),
        (("config", "lint", "x.toml"), "invalid choice: 'lint'"),
        (("frobnicate",), "invalid choice: 'frobnicate'"),
        (("run", "--demo", "--config", "x.toml"), "argument --config: not allowed with argument --demo"),
        (("run", "--conifg", "x.toml"), "unrecognized arguments: --conifg x.toml"),
    ],
)
def test_usage_errors_exit_2(args: tuple[str, ...], complaint: str) -> None:
    result = msec(*args)
    assert result.returncode == 2
    assert result.stderr.startswith("usage: msec-agent")
    assert complaint in result.stderr
    assert result.stdout == ""


# --- config check ----------------------------------------------------------------------------------------


def test_config_check_demo_profile() -> None:
    path = PROFILES / "demo.toml"
    result = msec("config", "check", path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        f"{path}: OK (device demo-truck-001, profile demo, drivers: sim (simulated), gps (serial), "
        "pms (serial), gpio (gpio), ble (ble), 1 model file(s))\n"
    )
    assert result.stderr == ""


def test_config_check_minimal(tmp_path: Path) -> None:
    write(tmp_path, MINIMAL)
    result = msec("config", "check", "agent.toml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (
        result.stdout
        == "agent.toml: OK (device truck-1, profile production, drivers: none, 0 model file(s))\n"
    )


def test_config_check_names_path_value_and_expectation(tmp_path: Path) -> None:
    write(tmp_path, '[providers.p.services.s.resources.r]\ntype = "int"\nvalue = "x"\n', "broken.toml")
    path = write(
        tmp_path,
        """
        [agent]
        device_id = "truck-1"
        state_dir = "var/lib/msec"
        [outbox]
        max_byte = 5
        max_bytes = "5"
        [http]
        listen = "127.0.0.1:70000"
        [runtime]
        restart_initial = -1
        [model]
        files = ["broken.toml"]
        [[drivers]]
        type = "simulated"
        id = "sim"
        rate_hx = 2.0
        [[drivers]]
        type = "gps"
        id = "g"
        [outbx]
        """,
    )
    result = msec("config", "check", path)
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0] == f"{path}: 9 problem(s)"
    assert problem_lines(result) == [
        f"outbx: unknown table (expected one of: {KNOWN_TABLES})",
        "agent.state_dir: expected an absolute path (found 'var/lib/msec')",
        "outbox.max_bytes: Input should be a valid integer (found '5')",
        "outbox.max_byte: unknown key (a typo?)",
        "http.listen: expected 'host:port' or '[ipv6]:port', e.g. '127.0.0.1:8080' (found '127.0.0.1:70000')",
        "runtime.restart_initial: Input should be greater than 0 (found -1)",
        "drivers[0].rate_hx: unknown key (a typo?)",
        f"drivers[1].type: unknown driver type (expected one of: {KNOWN_DRIVERS}) (found 'gps')",
        f"model.files[0]: {tmp_path / 'broken.toml'} at providers.p.services.s.resources.r: initial value: "
        "expected a 32-bit integer, got str 'x' (found {'type': 'int', 'value': 'x'})",
    ]
    assert all(line.startswith("  ") for line in lines[1:])
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("content", "line"),
    [
        (b"", "agent: required table is missing (it holds device_id)"),
        (b"[agent\n", "(file): syntax error: "),
        (b'[agent]\ndevice_id = "caf\xe9"\n', "(file): not UTF-8 text (byte 24)"),
        (b"\n" * (2**20 + 1), "(file): larger than 1048576 bytes"),
    ],
)
def test_config_check_unusable_file(tmp_path: Path, content: bytes, line: str) -> None:
    path = tmp_path / "agent.toml"
    path.write_bytes(content)
    result = msec("config", "check", path)
    assert result.returncode == 1
    assert result.stderr.splitlines()[0] == f"{path}: 1 problem(s)"
    assert problem_lines(result)[0].startswith(line)
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("relative", "reason"), [("missing.toml", "No such file or directory"), (".", "Is a directory")]
)
def test_config_check_unreadable_path(tmp_path: Path, relative: str, reason: str) -> None:
    result = msec("config", "check", tmp_path / relative)
    assert result.returncode == 1
    assert result.stderr == f"{tmp_path / relative}: 1 problem(s)\n  (file): cannot read: {reason}\n"


# --- model check -----------------------------------------------------------------------------------------


def test_model_check_demo_model() -> None:
    path = PROFILES / "demo-model.toml"
    result = msec("model", "check", path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{path}: OK (2 provider(s), 4 resource(s))\n"


def test_model_check_json(tmp_path: Path) -> None:
    path = write(tmp_path, '{"providers": {"a": {"services": {"s": {"resources": {"r": {}}}}}}}', "m.json")
    result = msec("model", "check", path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{path}: OK (1 provider(s), 1 resource(s))\n"


def test_model_check_broken(tmp_path: Path) -> None:
    text = '[providers.p.services.s.resources.r]\nkind = "SENSORX"\n[providers."bad name"]\n'
    path = write(tmp_path, text, "m.toml")
    result = msec("model", "check", path)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines()[0] == f"{path}: 2 problem(s)"
    assert problem_lines(result) == [
        "providers.p.services.s.resources.r.kind: Input should be 'SENSOR', 'STATE_VARIABLE', 'PROPERTY' or "
        "'ACTION' (found 'SENSORX')",
        "providers.bad name: expected 1-64 letters, digits, '_', '.', ':' or '-' (found 'bad name')",
    ]


@pytest.mark.parametrize(
    ("name", "line"),
    [("m.yaml", "(file): expected a .toml or .json model file"), ("missing.toml", "(file): cannot read: ")],
)
def test_model_check_unusable_file(tmp_path: Path, name: str, line: str) -> None:
    if name.endswith(".yaml"):
        write(tmp_path, "providers: {}\n", name)
    result = msec("model", "check", tmp_path / name)
    assert result.returncode == 1
    assert problem_lines(result)[0].startswith(line)


# --- run -------------------------------------------------------------------------------------------------


def test_run_with_a_broken_config_exits_1_with_the_problems(tmp_path: Path) -> None:
    path = write(tmp_path, '[agent]\ndevice_id = "truck-1"\nlog_level = "loud"\n[outbox]\nmax_bytes = "5"\n')
    result = msec("run", "--config", path, "--state-dir", tmp_path / "state")
    assert result.returncode == 1
    assert result.stderr == (
        f"{path}: 2 problem(s)\n"
        "  agent.log_level: Input should be 'debug', 'info', 'warning' or 'error' (found 'loud')\n"
        "  outbox.max_bytes: Input should be a valid integer (found '5')\n"
    )
    assert not (tmp_path / "state").exists()  # nothing started


def test_run_with_a_missing_config(tmp_path: Path) -> None:
    result = msec("run", "--config", tmp_path / "agent.toml")
    assert result.returncode == 1
    assert (
        result.stderr
        == f"{tmp_path / 'agent.toml'}: 1 problem(s)\n  (file): cannot read: No such file or directory\n"
    )


def test_run_that_cannot_start_exits_1_without_a_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "[http]\nenabled = false\n")
    blocker = write(tmp_path, "not a directory", "state")  # the state directory is a file
    result = msec("run", "--config", path, "--state-dir", blocker)
    assert result.returncode == 1
    assert "cannot start: " in result.stderr
    assert "Traceback" not in result.stderr
