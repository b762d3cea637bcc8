"""Errors raised by the model. Northbounds map them to protocol errors (404, 400, 403...)."""


class ModelError(Exception):
    """Base of every model error; the message is safe to show to a client."""


class UnknownElement(ModelError, KeyError):
    """A provider, service or resource that does not exist."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else "unknown element"


class InvalidName(ModelError, ValueError):
    """An identifier that cannot be a provider, service or resource name."""


class InvalidValue(ModelError, ValueError):
    """A value that does not fit the resource's declared type or bounds."""


class ReadOnlyResource(ModelError, PermissionError):
    """A northbound tried to SET a resource that only its driver may write."""


class NotAnAction(ModelError):
    """ACT on something that is not an ACTION, or GET/SET on an ACTION."""


class ActionFailed(ModelError):
    """The handler bound to an action raised or is missing."""


class ShapeConflict(ModelError):
    """A declaration contradicts what the model already holds (other type, kind...)."""
