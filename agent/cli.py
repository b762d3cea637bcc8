"""`msec-agent`: run the agent, check a configuration or a model file.

Exit codes: 0 success, 1 a file with problems (each printed as `path: expected ... (found ...)`), 2 usage,
78 (EX_CONFIG) `run` refused: the image's files fail their signed manifest ([integrity]);
3 `eval --require-goal`: the privacy goal is not met on the evaluation set.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import secrets
import sys
from importlib import resources
from pathlib import Path

from . import __version__
from .anonymizer.eval_cli import add_command as add_eval_command
from .core.config import DEFAULT_CONFIG_PATH, ConfigError, load_config
from .core.logs import setup_logging
from .core.model.declaration import read_model_file
from .demo.watch import add_command as add_watch_command
from .keys_cli import add_commands as add_key_commands
from .keys_cli import dispatch as key_dispatch
from .manifest_cli import add_commands as add_manifest_commands
from .manifest_cli import dispatch as manifest_dispatch
from .security.passwords import hash_password

log = logging.getLogger("agent")


def demo_config_path() -> Path:
    return Path(str(resources.files("agent") / "profiles" / "demo.toml"))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="msec-agent", description="M-Sec edge appliance device agent")
    parser.add_argument("--version", action="version", version=f"msec-agent {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the agent")
    source = run.add_mutually_exclusive_group()
    source.add_argument(
        "--config", type=Path, default=None, help=f"config file (default {DEFAULT_CONFIG_PATH})"
    )
    source.add_argument("--demo", action="store_true", help="the built-in demo profile (simulated devices)")
    run.add_argument("--state-dir", type=Path, help="override agent.state_dir (absolute after resolving)")
    run.add_argument("--listen", help="override http.listen, e.g. 0.0.0.0:8080")
    run.add_argument(
        "--no-services", action="store_true", help="with --demo: start no local Prosody/Mosquitto"
    )

    config = commands.add_parser("config", help="configuration tools")
    config_commands = config.add_subparsers(dest="config_command", required=True)
    check = config_commands.add_parser("check", help="validate a config file and the model files it names")
    check.add_argument("path", type=Path)

    model = commands.add_parser("model", help="model file tools")
    model_commands = model.add_subparsers(dest="model_command", required=True)
    model_check = model_commands.add_parser("check", help="validate a model file")
    model_check.add_argument("path", type=Path)
    add_key_commands(commands)
    add_manifest_commands(commands)
    add_watch_command(commands)
    add_eval_command(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command in ("keys", "verify"):
        return key_dispatch(args)
    if args.command == "manifest":
        return manifest_dispatch(args)
    if args.command == "watch":
        from .demo.watch import main as watch

        return watch(args)
    if args.command == "eval":
        from .anonymizer.eval_cli import main as evaluate

        return evaluate(args)
    if args.command == "config":
        return _config_check(args.path)
    if args.command == "model":
        return _model_check(args.path)
    return _run(args)


def _report(error: ConfigError) -> int:
    print(f"{error.source}: {len(error.problems)} problem(s)", file=sys.stderr)
    for problem in error.problems:
        print(f"  {problem}", file=sys.stderr)
    return 1


def _config_check(path: Path) -> int:
    from .app import extensions

    try:
        config = load_config(path, extensions())
    except ConfigError as error:
        return _report(error)
    drivers = ", ".join(f"{d.id} ({d.type})" for d in config.drivers) or "none"
    print(
        f"{path}: OK (device {config.agent.device_id}, profile {config.agent.profile}, drivers: {drivers}, "
        f"{len(config.model_files)} model file(s))"
    )
    return 0


def _model_check(path: Path) -> int:
    try:
        declaration = read_model_file(path)
    except ConfigError as error:
        return _report(error)
    resources_count = sum(
        len(s.resources) for p in declaration.providers.values() for s in p.services.values()
    )
    print(f"{path}: OK ({len(declaration.providers)} provider(s), {resources_count} resource(s))")
    return 0


def _run(args: argparse.Namespace) -> int:
    from .app import build_agent, extensions
    from .integrity_setup import EX_CONFIG, IntegrityError

    path = demo_config_path() if args.demo else (args.config or DEFAULT_CONFIG_PATH)
    overrides = {}
    if args.state_dir is not None:
        overrides["agent"] = {"state_dir": str(args.state_dir.resolve())}
    if args.listen is not None:
        overrides["http"] = {"listen": args.listen}
    demo_password = None
    if args.demo:
        # A one-off operator login for the demo (status page, REST): printed here, never stored in the repo.
        demo_password = secrets.token_urlsafe(9)
        demo_hash = hash_password(demo_password)
        overrides["security"] = {
            "users": [{"name": "operator", "password_hash": demo_hash, "roles": ["operator"]}]
        }
    services = None
    if args.demo and not args.no_services:  # a local Prosody/Mosquitto to publish to, where installed
        from .demo.services import start_demo_services

        services = start_demo_services(path, overrides)  # stopped after the agent, or at exit
        overrides.update(services.overrides)
    try:
        config = load_config(path, extensions(), overrides)
    except ConfigError as error:
        return _report(error)
    setup_logging(config.agent.log_level, config.agent.log_format)
    try:
        agent = build_agent(config)
    except IntegrityError as error:  # tampered or corrupt image files: systemd must not retry (exit 78)
        log.error("refusing to start: %s", error)
        return EX_CONFIG
    except Exception as error:  # e.g. the state directory is not writable: say so, without a traceback
        log.error("cannot start: %s: %s", type(error).__name__, error)
        return 1
    log.info(
        "agent %s starting",
        config.agent.device_id,
        extra={
            "version": __version__,
            "profile": config.agent.profile,
            "state_dir": str(config.state_dir),
            "http": config.http.listen if config.http.enabled else None,
        },
    )
    if demo_password is not None:
        print(
            f"\n  status page: http://{config.http.listen}/  user: operator  password: {demo_password}"
            f"\n  REST facade: http://{config.http.listen}/sensinact  (anonymous read; Basic auth to act)\n"
            + (
                services.banner()
                if services is not None
                else "\n  demo services: off (--no-services): readings stay in the outbox\n"
            ),
            file=sys.stderr,
            flush=True,
        )
    try:
        asyncio.run(agent.run())
    finally:
        if services is not None:
            services.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
