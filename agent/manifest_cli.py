"""`msec-agent manifest sign|verify`: the release side and the check side of signed file manifests.

Signing needs the release key (an Ed25519 PEM private key kept off the device and out of the repository);
verifying needs only trusted public keys. See agent/security/manifest.py for the document format.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .security.manifest import (
    ManifestError,
    build_manifest,
    dumps,
    load_manifest,
    load_public_keys,
    sign_manifest,
)


def add_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    manifest = commands.add_parser("manifest", help="signed file manifests (models, image)")
    sub = manifest.add_subparsers(dest="manifest_command", required=True)
    sign = sub.add_parser("sign", help="hash files under --root and sign the list with a release key")
    sign.add_argument("--key", type=Path, required=True, help="Ed25519 private key (PEM)")
    sign.add_argument("--root", type=Path, required=True, help="folder the paths are relative to")
    sign.add_argument("--name", required=True)
    sign.add_argument("--version", required=True)
    sign.add_argument("--meta", type=Path, help="JSON {path: {source, licence, ...}} merged into entries")
    sign.add_argument("--output", type=Path, help="write here instead of stdout")
    sign.add_argument("paths", nargs="+")
    verify = sub.add_parser("verify", help="check a manifest's signature and every file it lists")
    verify.add_argument("--trusted", type=Path, action="append", required=True, help="public key or folder")
    verify.add_argument("--root", type=Path, required=True)
    verify.add_argument("manifest", type=Path)


def dispatch(args: argparse.Namespace) -> int:
    try:
        if args.manifest_command == "sign":
            return _sign(args)
        return _verify(args)
    except ManifestError as error:
        print(f"manifest: {error}", file=sys.stderr)
        return 1


def _sign(args: argparse.Namespace) -> int:
    try:
        key = serialization.load_pem_private_key(args.key.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        # Never echo the key file's content: it is the release secret.
        raise ManifestError(f"{args.key}: not a readable, unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ManifestError(f"{args.key}: not an Ed25519 private key")
    meta = {}
    if args.meta is not None:
        try:
            meta = json.loads(args.meta.read_text())
        except (OSError, ValueError) as exc:
            raise ManifestError(f"{args.meta}: not a JSON object ({exc.__class__.__name__})") from None
        if not isinstance(meta, dict) or not all(isinstance(v, dict) for v in meta.values()):
            raise ManifestError(f"{args.meta}: expected {{path: {{key: value}}}}")
    try:
        document = build_manifest(args.root, args.paths, name=args.name, version=args.version, meta=meta)
    except OSError as exc:
        raise ManifestError(f"cannot read a listed file ({exc.strerror or exc}: {exc.filename})") from None
    text = dumps(sign_manifest(document, key))
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text)
    return 0


def _verify(args: argparse.Namespace) -> int:
    manifest = load_manifest(args.manifest, load_public_keys(args.trusted))
    problems = manifest.verify_tree(args.root)
    for problem in problems:
        print(f"  {problem}", file=sys.stderr)
    if problems:
        print(f"{args.manifest}: {len(problems)} file(s) do not match", file=sys.stderr)
        return 1
    print(
        f"{args.manifest}: OK ({manifest.name} {manifest.version}, {len(manifest.files)} files,"
        f" key {manifest.key_id})"
    )
    return 0
