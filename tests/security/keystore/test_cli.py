"""`msec-agent keys` / `verify` through the same parser functions agent/cli.py wires in."""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import pytest

from agent.keys_cli import add_commands, dispatch


def run(argv: list[str], stdin: bytes = b"") -> int:
    parser = argparse.ArgumentParser(prog="msec-agent")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    sys.stdin = io.TextIOWrapper(io.BytesIO(stdin))
    try:
        return dispatch(args)
    finally:
        sys.stdin = sys.__stdin__


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(
        f'[agent]\ndevice_id = "truck-7"\nprofile = "development"\nstate_dir = "{tmp_path}/state"\n\n'
        '[keystore]\nbackend = "software"\n'
    )
    return path


def test_keys_lifecycle_and_verify(config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["keys", "--config", str(config), "init"]) == 0
    assert "INSECURE" in capsys.readouterr().err
    assert run(["keys", "--config", str(config), "export-public"]) == 0
    public = tmp_path / "truck-7.pem"
    public.write_text(capsys.readouterr().out)
    assert run(["keys", "--config", str(config), "csr"]) == 0
    assert "BEGIN CERTIFICATE REQUEST" in capsys.readouterr().out
    assert run(["keys", "--config", str(config), "seal", "mqtt-password"], stdin=b"hunter2\n") == 0
    assert run(["keys", "--config", str(config), "unseal", "mqtt-password"]) == 0
    assert capsys.readouterr().out == "hunter2\n"
    assert run(["keys", "--config", str(config), "unseal", "nope"]) == 1
    assert "no sealed secret named 'nope'" in capsys.readouterr().err

    from agent.security.keystore import KeystoreConfig, open_keystore
    from agent.security.sealing import SealingConfig, build_sealer

    store = open_keystore(KeystoreConfig(backend="software"), tmp_path / "state")
    sealer = build_sealer(SealingConfig(), store, "truck-7", tmp_path / "state")
    good = sealer.seal(b'{"value":1}', stream="truck/env/t")
    records = tmp_path / "records.txt"
    records.write_bytes(good + b"\n" + good + b"\n")
    assert run(["verify", str(records), "--identity", f"truck-7={public}"]) == 1  # the second is a replay
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("1: valid truck-7/truck/env/t#1") and out[1].startswith("2: replayed")


def test_no_tpm_is_exit_1_with_a_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(
        f'[agent]\ndevice_id = "t"\nprofile = "development"\nstate_dir = "{tmp_path}"\n\n'
        f'[keystore]\ntcti = "device:{tmp_path}/tpmrm0"\n'
    )
    assert run(["keys", "--config", str(path), "show"]) == 1
    assert "no TPM reachable" in capsys.readouterr().err
