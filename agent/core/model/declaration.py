"""Declaring a model in configuration or in a model file, and applying it.

The same schema serves the `[model]` table of agent.toml and standalone model files (TOML or JSON), so an
integrator can move a declaration between them unchanged. The format is documented in docs/model-file.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError, model_validator

from ..config.documents import parse_document, read_document
from ..config.errors import ConfigError, Problem, problems_from
from ..config.schema_base import JsonValue, Name, Strict
from .errors import InvalidValue, ModelError
from .model import ADMIN, Model, Parameter, ResourceSpec
from .types import VALUE_TYPES, ResourceKind, ValueMode, coerce_metadata, value_type

TypeName = Literal[tuple(VALUE_TYPES)]  # type: ignore[valid-type]
MAX_MODEL_FILE_BYTES = 4 * 2**20
# TOML and JSON (as Python reads it) both spell inf and nan: refused here, with their key path, rather than
# when the model is built (a bound of nan would also silently bound nothing).
Bound = Annotated[float, Field(allow_inf_nan=False)]


class ParameterDecl(Strict):
    type: TypeName
    required: bool = True
    default: JsonValue = None
    min: Bound | None = None
    max: Bound | None = None


class ResourceDecl(Strict):
    type: TypeName = "string"
    kind: Literal["SENSOR", "STATE_VARIABLE", "PROPERTY", "ACTION"] = "SENSOR"
    # Default: a sensor or state is written by its driver only; a property may be SET by a client.
    mode: Literal["MODIFIABLE", "UPDATABLE", "FIXED"] | None = None
    value: JsonValue = None
    unit: str | None = Field(default=None, max_length=32)
    description: str | None = Field(default=None, max_length=1024)
    min: Bound | None = None
    max: Bound | None = None
    metadata: dict[Name, JsonValue] = {}
    parameters: dict[Name, ParameterDecl] = {}
    handler: str | None = Field(default=None, max_length=200)

    @model_validator(mode="after")
    def _consistent(self) -> ResourceDecl:
        if self.kind == "ACTION":
            if self.value is not None or self.mode is not None:
                raise ValueError("an ACTION has neither a value nor a mode")
            if not self.handler:
                raise ValueError(
                    "an ACTION needs a handler ('name' registered by a driver or 'module:function')"
                )
        elif self.parameters or self.handler:
            raise ValueError("only an ACTION has parameters or a handler")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min is greater than max")
        try:
            value_type(self.type)(self.value)
            for parameter in self.parameters.values():
                value_type(parameter.type)(parameter.default)
        except InvalidValue as error:
            raise ValueError(f"initial value: {error}") from None
        try:
            coerce_metadata(self.metadata)  # what the model will check: a check must not pass a bad file
        except InvalidValue as error:
            raise ValueError(f"metadata: {error}") from None
        return self

    def spec(self) -> ResourceSpec:
        kind = ResourceKind(self.kind)
        if self.mode is not None:
            mode = ValueMode(self.mode)
        else:
            mode = ValueMode.MODIFIABLE if kind is ResourceKind.PROPERTY else ValueMode.UPDATABLE
        metadata = dict(self.metadata)
        for key in ("unit", "description", "min", "max"):
            if getattr(self, key) is not None:
                metadata[key] = getattr(self, key)
        parameters = tuple(
            Parameter(name, value_type(p.type), p.required, p.default, p.min, p.max)
            for name, p in self.parameters.items()
        )
        return ResourceSpec(value_type(self.type), kind, mode, metadata, parameters, self.handler)


class ServiceDecl(Strict):
    resources: dict[Name, ResourceDecl] = {}


class AdminDecl(Strict):
    friendlyName: str | None = Field(default=None, max_length=256)
    description: str | None = Field(default=None, max_length=4096)
    location: JsonValue = None

    @model_validator(mode="after")
    def _valid_location(self) -> AdminDecl:
        try:
            value_type("geojson")(self.location)
        except InvalidValue as error:
            raise ValueError(f"location: {error}") from None
        return self


class ProviderDecl(Strict):
    admin: AdminDecl = AdminDecl()
    services: dict[Name, ServiceDecl] = {}


class ModelDecl(Strict):
    providers: dict[Name, ProviderDecl] = {}


def apply_declaration(model: Model, declaration: ModelDecl, *, source: str = "declaration") -> None:
    """Adds every declared provider, service and resource to the model (idempotent for equal shapes)."""
    for provider_id, provider in declaration.providers.items():
        admin = provider.services.get(ADMIN, ServiceDecl()).resources
        model.add_provider(
            provider_id,
            friendly_name=provider.admin.friendlyName,
            description=provider.admin.description,
            location=provider.admin.location,
            admin={name: res.spec() for name, res in admin.items()},
            admin_values={name: res.value for name, res in admin.items()},
            source=source,
        )
        for service_id, service in provider.services.items():
            if service_id == ADMIN:
                continue  # created with the provider
            for resource_id, resource in service.resources.items():
                model.ensure_resource(
                    provider_id, service_id, resource_id, resource.spec(), value=resource.value, source=source
                )


def read_model_file(path: str | Path) -> ModelDecl:
    """Reads and validates a model file (.toml or .json); every problem is reported with its key path."""
    path = Path(path)
    source = str(path)
    if path.suffix not in (".toml", ".json"):
        raise ConfigError(source, [Problem("", "expected a .toml or .json model file")])
    data = read_document(path, MAX_MODEL_FILE_BYTES)
    raw = parse_document(source, data, path.suffix)
    try:
        return ModelDecl.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(source, problems_from(error)) from None


def load_model_file(model: Model, path: str | Path) -> ModelDecl:
    """Reads a model file and applies it; a shape conflict is reported as a ConfigError on that file."""
    declaration = read_model_file(path)
    try:
        apply_declaration(model, declaration)
    except ModelError as error:
        raise ConfigError(str(path), [Problem("providers", str(error))]) from None
    return declaration
