"""Fixtures of the /image API tests: the app behind cheroot on loopback, guarded by a real SecurityPolicy
with local users, anonymizing with the real detector from a models folder signed by a throw-away key."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agent.anonymizer import AnonymizerFactory, ImageApiSection
from agent.northbound.image_api import create_image_app
from agent.security.config import SecuritySection
from agent.security.passwords import hash_password
from agent.security.policy import SecurityPolicy
from agent.web import serve
from tests.anonymizer.kit import make_models_dir, section

PASSWORDS = {"camera-app": "s3cret-pass", "viewer": "viewer-pass"}


def policy() -> SecurityPolicy:
    users = [
        {"name": name, "password_hash": hash_password(password, log2_n=10), "roles": [name]}
        for name, password in PASSWORDS.items()
    ]
    # Only the camera-app role may use the anonymizer (ACT on provider "anonymizer").
    rules = [{"roles": ["camera-app"], "operations": ["ACT"], "provider": "anonymizer"}]
    return SecurityPolicy(
        SecuritySection.model_validate({"users": users, "rules": rules, "login_limit": {"max_failures": 50}})
    )


def basic(user: str, password: str | None = None) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password or PASSWORDS[user]}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class ImageApi:
    url: str
    app: Any

    def post(
        self,
        body: bytes | dict | None,
        *,
        user: str | None = "camera-app",
        headers: dict[str, str] | None = None,
        method: str = "POST",
        path: str = "/image",
    ) -> Answer:
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        sent = {"Content-Type": "application/json", **(basic(user) if user else {}), **(headers or {})}
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=sent)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return Answer(response.status, dict(response.headers), response.read())
        except urllib.error.HTTPError as error:
            return Answer(error.code, dict(error.headers), error.read())


@pytest.fixture
def image_api_factory(tmp_path: Path) -> Iterator[Callable[..., ImageApi]]:
    handles = []

    def start(models: Path | None = None, **api: Any) -> ImageApi:
        models = models or make_models_dir(tmp_path)
        factory = AnonymizerFactory(section(models))
        app = create_image_app(policy(), factory.create, ImageApiSection(**api))
        handle = serve(app, threads=4)
        handles.append(handle)
        return ImageApi(handle.url, app)

    yield start
    for handle in handles:
        handle.stop()


@pytest.fixture
def image_api(image_api_factory: Callable[..., ImageApi]) -> ImageApi:
    return image_api_factory()
