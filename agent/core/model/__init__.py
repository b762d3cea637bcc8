"""sensiNact's data model: providers -> services -> resources, with change events."""

from .errors import (
    ActionFailed,
    InvalidName,
    InvalidValue,
    ModelError,
    NotAnAction,
    ReadOnlyResource,
    ShapeConflict,
    UnknownElement,
)
from .events import EventBus, EventType, ModelEvent, Subscription
from .model import (
    ADMIN,
    ActionCall,
    Model,
    Parameter,
    ProviderSnapshot,
    ResourceSnapshot,
    ResourceSpec,
    ServiceSnapshot,
)
from .types import VALUE_TYPES, ResourceKind, ValueMode, ValueType, value_type

__all__ = [
    "ADMIN",
    "VALUE_TYPES",
    "ActionCall",
    "ActionFailed",
    "EventBus",
    "EventType",
    "InvalidName",
    "InvalidValue",
    "Model",
    "ModelError",
    "ModelEvent",
    "NotAnAction",
    "Parameter",
    "ProviderSnapshot",
    "ReadOnlyResource",
    "ResourceKind",
    "ResourceSnapshot",
    "ResourceSpec",
    "ServiceSnapshot",
    "ShapeConflict",
    "Subscription",
    "UnknownElement",
    "ValueMode",
    "ValueType",
    "value_type",
]
