"""The [integrity] check: the agent verifies the signed image manifest before it starts anything, and a
failed check makes `msec-agent run` exit 78 (EX_CONFIG) with a clear message and no traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.app import build_agent, extensions
from agent.core.config import ConfigError, load_config
from agent.integrity_setup import EX_CONFIG, IntegrityError, check_integrity
from agent.security.manifest import build_manifest, dumps, sign_manifest

from .conftest import AgentThread, write_config

FILES = {
    "venv/site-packages/agent/__init__.py": b"VERSION = 1\n",
    "venv/site-packages/agent/app.py": b"def main():\n    return 0\n",
    "models/detector/model.tflite": bytes(range(256)) * 40,
}


class Image:
    """A miniature installed image: files under `root`, their signed manifest, the trusted public key."""

    def __init__(self, base: Path, name: str = "msec-image") -> None:
        self.root = base / "opt"
        for relpath, data in FILES.items():
            (self.root / relpath).parent.mkdir(parents=True, exist_ok=True)
            (self.root / relpath).write_bytes(data)
        self.key = Ed25519PrivateKey.generate()  # throw-away: never a real release key in tests
        self.keys = base / "keys"
        self.keys.mkdir()
        self.trust(self.key, "image.pub.pem")
        self.manifest = base / "image-manifest.json"
        self.sign(name)

    def trust(self, key: Ed25519PrivateKey, filename: str) -> None:
        pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        (self.keys / filename).write_bytes(pem)

    def sign(self, name: str = "msec-image", key: Ed25519PrivateKey | None = None) -> None:
        document = build_manifest(self.root, sorted(FILES), name=name, version="0.1.0+test")
        self.manifest.write_text(dumps(sign_manifest(document, key or self.key)))

    def table(self, **changes: object) -> str:
        values: dict[str, object] = {
            "manifest": str(self.manifest),
            "trusted_keys": [str(self.keys)],
            "root": str(self.root),
            "complete": ["venv/site-packages/agent"],
            **changes,
        }
        lines = [f"{key} = {json.dumps(value)}" for key, value in values.items()]
        return "[integrity]\n" + "\n".join(lines) + "\n"


@pytest.fixture
def image(tmp_path: Path) -> Image:
    return Image(tmp_path)


@pytest.fixture
def configure(tmp_path: Path) -> Callable[[str], object]:
    def load(body: str):  # type: ignore[no-untyped-def]
        return load_config(write_config(tmp_path, body), extensions())

    return load


def refused(configure: Callable[[str], object], body: str) -> str:
    with pytest.raises(IntegrityError) as caught:
        check_integrity(configure(body))  # type: ignore[arg-type]
    return str(caught.value)


# --- the check -------------------------------------------------------------------------------------------


def test_no_table_means_no_check(configure: Callable[[str], object]) -> None:
    assert check_integrity(configure("")) is None  # type: ignore[arg-type]


def test_intact_image_passes(image: Image, configure: Callable[[str], object]) -> None:
    report = check_integrity(configure(image.table()))  # type: ignore[arg-type]
    assert report is not None
    assert (report.name, report.version, report.files) == ("msec-image", "0.1.0+test", len(FILES))


def test_altered_file_is_refused_by_name(image: Image, configure: Callable[[str], object]) -> None:
    target = image.root / "venv/site-packages/agent/app.py"
    target.write_bytes(target.read_bytes().replace(b"0", b"1"))  # same size, different bytes
    message = refused(configure, image.table())
    assert "venv/site-packages/agent/app.py: does not match the manifest" in message
    assert "1 file(s)" in message


def test_missing_file_is_refused(image: Image, configure: Callable[[str], object]) -> None:
    (image.root / "models/detector/model.tflite").unlink()
    assert "models/detector/model.tflite: cannot be read" in refused(configure, image.table())


def test_added_module_in_a_complete_folder_is_refused(
    image: Image, configure: Callable[[str], object]
) -> None:
    (image.root / "venv/site-packages/agent/backdoor.py").write_text("import os\n")
    message = refused(configure, image.table())
    assert "venv/site-packages/agent/backdoor.py: not in the manifest" in message


def test_added_symlink_in_a_complete_folder_is_refused(
    image: Image, configure: Callable[[str], object]
) -> None:
    (image.root / "venv/site-packages/agent/elsewhere").symlink_to("/tmp")
    assert "agent/elsewhere: not in the manifest" in refused(configure, image.table())


def test_added_file_outside_complete_folders_is_allowed(
    image: Image, configure: Callable[[str], object]
) -> None:
    (image.root / "models/notes.txt").write_text("operator notes\n")  # models/ is not declared complete
    assert check_integrity(configure(image.table())) is not None  # type: ignore[arg-type]


def test_missing_complete_folder_is_refused(image: Image, configure: Callable[[str], object]) -> None:
    message = refused(configure, image.table(complete=["venv/site-packages/gone"]))
    assert "venv/site-packages/gone: missing" in message


def test_many_problems_are_summarised(image: Image, configure: Callable[[str], object]) -> None:
    for index in range(15):
        (image.root / f"venv/site-packages/agent/extra{index:02}.py").write_text("")
    message = refused(configure, image.table())
    assert "15 file(s)" in message and "(and 5 more)" in message


def test_manifest_signed_by_an_unknown_key_is_refused(
    image: Image, configure: Callable[[str], object]
) -> None:
    image.sign(key=Ed25519PrivateKey.generate())
    message = refused(configure, image.table())
    assert message.startswith("image manifest not trusted:")


def test_second_trusted_key_is_accepted(image: Image, configure: Callable[[str], object]) -> None:
    rotated = Ed25519PrivateKey.generate()
    image.trust(rotated, "rotated.pub.pem")
    image.sign(key=rotated)
    assert check_integrity(configure(image.table())) is not None  # type: ignore[arg-type]


def test_manifest_of_another_name_is_refused(image: Image, configure: Callable[[str], object]) -> None:
    image.sign(name="models")  # validly signed, but not the image's manifest: no substitution
    assert "is for 'models', expected 'msec-image'" in refused(configure, image.table())


def test_edited_manifest_is_refused(image: Image, configure: Callable[[str], object]) -> None:
    document = json.loads(image.manifest.read_text())
    entry = document["files"]["venv/site-packages/agent/app.py"]
    entry["sha256"] = "0" * 64
    image.manifest.write_text(json.dumps(document))
    assert refused(configure, image.table()).startswith("image manifest not trusted:")


@pytest.mark.parametrize(
    "content",
    [b"", b"{", b"not json at all", b"\xff\xfe\x00", b"[]", b'{"format": "msec-manifest/1"}', b"{" * 100_000],
    ids=["empty", "truncated", "text", "binary", "list", "unsigned", "deep"],
)
def test_garbage_manifest_is_refused(
    image: Image, configure: Callable[[str], object], content: bytes
) -> None:
    image.manifest.write_bytes(content)
    assert refused(configure, image.table()).startswith("image manifest not trusted:")


def test_oversized_manifest_is_refused(image: Image, configure: Callable[[str], object]) -> None:
    image.manifest.write_bytes(b" " * (5 * 1024 * 1024))
    assert refused(configure, image.table()).startswith("image manifest not trusted:")


def test_truncated_manifest_is_refused(image: Image, configure: Callable[[str], object]) -> None:
    text = image.manifest.read_bytes()
    image.manifest.write_bytes(text[: len(text) // 2])
    assert refused(configure, image.table()).startswith("image manifest not trusted:")


def test_absent_manifest_is_refused(image: Image, configure: Callable[[str], object]) -> None:
    image.manifest.unlink()
    assert "cannot be read" in refused(configure, image.table())


def test_empty_key_folder_is_refused(
    image: Image, configure: Callable[[str], object], tmp_path: Path
) -> None:
    empty = tmp_path / "no-keys"
    empty.mkdir()
    assert "no public key found" in refused(configure, image.table(trusted_keys=[str(empty)]))


def test_a_private_key_as_trusted_key_is_refused_without_echoing_it(
    image: Image, configure: Callable[[str], object], tmp_path: Path
) -> None:
    private = tmp_path / "oops.pem"
    pem = image.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    private.write_bytes(pem)
    message = refused(configure, image.table(trusted_keys=[str(private)]))
    assert "not a PEM public key" in message
    assert "PRIVATE" not in message and pem.decode().splitlines()[1] not in message


# --- the table's schema ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "where"),
    [
        ({"manifest": "image-manifest.json"}, "integrity.manifest"),
        ({"root": "opt"}, "integrity.root"),
        ({"trusted_keys": []}, "integrity.trusted_keys"),
        ({"trusted_keys": ["keys"]}, "integrity.trusted_keys"),
        ({"complete": ["../etc"]}, "integrity.complete"),
        ({"complete": ["/usr"]}, "integrity.complete"),
        ({"name": ""}, "integrity.name"),
        ({"manifets": "/x"}, "integrity.manifets"),
        ({"manifest": 5}, "integrity.manifest"),
    ],
)
def test_bad_table_is_a_config_error(
    image: Image, configure: Callable[[str], object], changes: dict[str, object], where: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        configure(image.table(**changes))
    assert any(str(problem).startswith(where) for problem in caught.value.problems)


# --- wired into the agent --------------------------------------------------------------------------------


def test_agent_starts_on_an_intact_image(image: Image, tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, image.table()), extensions())
    runner = AgentThread(build_agent(config)).start()
    runner.stop()


def test_agent_builds_nothing_from_a_tampered_image(image: Image, tmp_path: Path) -> None:
    (image.root / "models/detector/model.tflite").write_bytes(b"swapped")
    config = load_config(write_config(tmp_path, image.table()), extensions())
    with pytest.raises(IntegrityError):
        build_agent(config)
    assert not (tmp_path / "state").exists()  # refused before the outbox (or anything) was created


def test_run_exits_78_with_a_clear_message(image: Image, tmp_path: Path) -> None:
    (image.root / "venv/site-packages/agent/__init__.py").write_text("VERSION = 2\n")
    config = write_config(tmp_path, image.table())
    result = subprocess.run(
        [sys.executable, "-m", "agent", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        check=False,
    )
    assert result.returncode == EX_CONFIG == 78
    assert "refusing to start" in result.stderr
    assert "venv/site-packages/agent/__init__.py: does not match the manifest" in result.stderr
    assert "Traceback" not in result.stderr
