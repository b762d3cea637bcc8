"""`msec-agent keys ...` and `msec-agent verify`: provisioning and checking the device's keys and records.

Glue between the agent's configuration and agent.security (which must not import the core). Exit codes as
the rest of the CLI: 0 success, 1 a problem (printed on stderr, never a secret), 2 usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from .core.config import DEFAULT_CONFIG_PATH, ConfigError, Extensions, load_config
from .security.keystore import Keystore, KeystoreConfig, KeystoreError, open_keystore, public_jwk
from .security.keystore.tls_key import create_tls_key
from .security.sealing import SealingConfig
from .security.verify import ReplayGuard, verify_record

# The config tables of issue 6, for agent.app.extensions(): Extensions(sections=CONFIG_SECTIONS, ...).
CONFIG_SECTIONS = {"keystore": KeystoreConfig, "sealing": SealingConfig}


def add_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    keys = commands.add_parser("keys", help="device keys: TPM (or insecure software) keystore")
    keys.add_argument("--config", type=Path, default=DEFAULT_CONFIG_PATH, help="config file")
    sub = keys.add_subparsers(dest="keys_command", required=True)
    sub.add_parser("init", help="create the SRK, identity and ECDH keys where missing (idempotent)")
    sub.add_parser("show", help="backend, key ids, location, sealed secrets")
    export = sub.add_parser("export-public", help="the identity public key, to register with the backend")
    export.add_argument("--format", choices=("pem", "jwk"), default="pem")
    csr = sub.add_parser("csr", help="a PKCS#10 request signed by the identity key")
    csr.add_argument("--cn", help="subject common name (default: the device id)")
    seal = sub.add_parser("seal", help="seal a secret read from stdin (reference it as tpm:NAME)")
    seal.add_argument("name")
    seal.add_argument("--pcr", type=int, action="append", default=[], help="bind to this PCR (repeatable)")
    unseal = sub.add_parser("unseal", help="print a sealed secret on stdout")
    unseal.add_argument("name")
    tls = sub.add_parser("tls-key", help="a TLS client key inside the TPM (mutual TLS); prints its CSR")
    tls.add_argument("--cn", help="subject common name (default: the device id)")
    tls.add_argument("--replace", action="store_true", help="make a new key even if one exists")

    verify = commands.add_parser("verify", help="verify sealed records, one per line (file or -)")
    verify.add_argument("records", type=argparse.FileType("rb"))
    verify.add_argument(
        "--identity", action="append", default=[], metavar="DEVICE=PEM", help="a device's identity public key"
    )
    verify.add_argument(
        "--recipient-key", action="append", default=[], type=Path, help="our private key (PEM)"
    )


def dispatch(args: argparse.Namespace) -> int:
    os.environ.setdefault("TSS2_LOG", "all+none")  # libtss2 would print caught TPM errors to stderr
    try:
        if args.command == "verify":
            return _verify(args)
        return _keys(args)
    except (KeystoreError, OSError, ValueError) as error:
        print(f"msec-agent {args.command}: {error}", file=sys.stderr)
        return 1


def _config(path: Path) -> tuple[KeystoreConfig, Path, str]:
    from .app import extensions

    known = extensions()
    tables = Extensions(sections={**CONFIG_SECTIONS, **known.sections}, drivers=known.drivers)
    try:
        config = load_config(path, tables)
    except ConfigError as error:
        raise ValueError(f"{error.source}: " + "; ".join(map(str, error.problems))) from None
    section = config.section("keystore")
    keystore = section if isinstance(section, KeystoreConfig) else KeystoreConfig()
    return keystore, config.state_dir, config.agent.device_id


def _keys(args: argparse.Namespace) -> int:
    config, state_dir, device_id = _config(args.config)
    command = args.keys_command
    if command == "tls-key":  # works on the TPM directly: the keystore object is not needed
        files = create_tls_key(config, state_dir, args.cn or device_id, replace=args.replace)
        print(
            f"TLS key {'created' if files.created else 'kept'} (TPM blob): {files.key_file}", file=sys.stderr
        )
        sys.stdout.write(files.csr_file.read_text())
        return 0
    with open_keystore(config, state_dir, create_missing=command == "init") as store:
        if store.insecure:
            print("WARNING: INSECURE software keystore (development only)", file=sys.stderr)
        _run_keys(command, args, store, device_id)
    return 0


def _run_keys(command: str, args: argparse.Namespace, store: Keystore, device_id: str) -> None:
    out = sys.stdout
    if command in ("init", "show"):
        info = store.info()
        out.write(
            f"backend: {info.backend}{' (INSECURE)' if info.insecure else ''}\n"
            f"identity: {info.identity_kid}\necdh: {info.ecdh_kid}\nlocation: {info.location}\n"
            f"sealed: {', '.join(info.sealed) or 'none'}\n"
        )
    elif command == "export-public":
        key = store.identity_public_key()
        if args.format == "jwk":
            out.write(json.dumps(public_jwk(key)) + "\n")
        else:
            pem = key.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            out.write(pem.decode())
    elif command == "csr":
        out.write(store.csr(args.cn or device_id).decode())
    elif command == "seal":
        secret = sys.stdin.buffer.read().rstrip(b"\r\n")
        store.seal(args.name, secret, pcrs=args.pcr)
        print(f"sealed {args.name!r}; reference it as tpm:{args.name}", file=sys.stderr)
    elif command == "unseal":
        sys.stdout.buffer.write(store.unseal(args.name) + b"\n")


def _verify(args: argparse.Namespace) -> int:
    identities: dict[str, ec.EllipticCurvePublicKey] = {}
    for item in args.identity:
        device, _, path = item.partition("=")
        key = serialization.load_pem_public_key(Path(path).read_bytes())
        if not device or not isinstance(key, ec.EllipticCurvePublicKey):
            raise ValueError(f"--identity {item}: expected DEVICE=path to a P-256 public key PEM")
        identities[device] = key
    recipient_keys = []
    for path in args.recipient_key:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"--recipient-key {path}: expected a P-256 private key PEM")
        recipient_keys.append(key)
    guard, failures = ReplayGuard(), 0
    for number, line in enumerate(args.records, 1):
        if not line.strip():
            continue
        verdict = verify_record(line, identities=identities, recipient_keys=recipient_keys, replay=guard)
        failures += not verdict.ok
        where = f"{verdict.device}/{verdict.stream}#{verdict.seq}" if verdict.stream else "-"
        print(f"{number}: {verdict.status.value} {where} {verdict.reason}".rstrip())
    return 1 if failures else 0
