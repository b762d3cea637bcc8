"""The sensiNact operations over the model, independent of HTTP: lists, descriptions, GET/SET/ACT,
subscriptions and snapshots, each checked against the caller's permissions. app.py maps HTTP onto it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection, Mapping
from typing import Any

from ...core.model import (
    ActionFailed,
    InvalidName,
    InvalidValue,
    Model,
    ModelError,
    NotAnAction,
    ProviderSnapshot,
    ReadOnlyResource,
    ResourceKind,
    ResourceSnapshot,
    ResourceSpec,
    ShapeConflict,
    UnknownElement,
    ValueMode,
    value_type,
)
from ...security.access import AccessControl, Operation, Principal
from . import conditions, describe, ldap, selectors, verbs
from .callbacks import AllowList, CallbackRefused, check
from .config import RestSection
from .envelopes import RestError, envelope
from .guard import Guard
from .paths import Kind, Target
from .patterns import ClientPattern, PatternError
from .sse import Streams
from .subscriptions import CallbackHub

SOURCE = "rest"
ProviderTest = Callable[[ProviderSnapshot], bool]


def model_error(error: ModelError) -> RestError:
    """The status of a model error: what went wrong is the client's business, how is not."""
    status = 400
    if isinstance(error, UnknownElement):
        status = 404
    elif isinstance(error, ReadOnlyResource):
        status = 403
    elif isinstance(error, NotAnAction):
        status = 405
    elif isinstance(error, ShapeConflict):
        status = 409
    elif isinstance(error, ActionFailed):
        status = 502  # the device behind the action failed; 500 is kept for our own bugs
    elif isinstance(error, InvalidName | InvalidValue):
        status = 400
    return RestError(status, str(error))


def _infer_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "long" if not -(2**31) <= value < 2**31 else "int"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    raise RestError(400, "Cannot create a resource without a value to infer its type")


class Facade:
    def __init__(self, model: Model, access: AccessControl, settings: RestSection) -> None:
        self.model = model
        self.settings = settings
        self.guard = Guard(access)
        self.namer = describe.Namer(java=settings.type_names == "java")
        self.allow = AllowList.of(settings.callback_allow, settings.callback_allow_only_listed)
        self.hub = CallbackHub(model, settings)
        self.streams = Streams(
            model, settings.max_streams, settings.stream_keepalive, settings.stream_max_age
        )

    def close(self) -> None:
        self.streams.close()
        self.hub.close()

    # --- filters -----------------------------------------------------------------------------------

    def provider_test(self, args: Mapping[str, str]) -> tuple[ProviderTest | None, tuple | None]:
        """(LDAP test of whole providers, resource selectors) from `filter`/`filterLanguage`/`ldap`."""
        text, language = args.get("filter"), (args.get("filterLanguage") or "ldap").lower()
        if args.get("ldap"):
            text, language = args["ldap"], "ldap"
        if not text:
            return None, None
        if language == "ldap":
            try:
                node = ldap.parse(text)
            except ldap.LdapSyntaxError as error:
                raise RestError(400, f"Error parsing filter: {error}") from None
            return (lambda provider: ldap.matches(node, provider)), None
        if language == "resource.selector":
            try:
                return None, selectors.parse(json.loads(text))
            except (ValueError, RecursionError) as error:  # JSONDecodeError and SelectorError are ValueErrors
                raise RestError(400, f"Error parsing filter: {error}") from None
        raise RestError(501, f"No filter implementation available for {language[:40]!r}")

    def _visible(self, principal: Principal, args: Mapping[str, str]) -> list[tuple[ProviderSnapshot, Any]]:
        """The providers this caller may DESCRIBE that pass the filter, with their selected resources."""
        test, chosen = self.provider_test(args)
        result = []
        for provider in self.model.providers():
            if not self.guard.may(principal, Operation.DESCRIBE, provider.name):
                continue
            if test is not None and not test(provider):
                continue
            selection = None
            if chosen is not None:
                selection = selectors.select(chosen, provider)
                if selection is None:
                    continue
            result.append((provider, selection))
        return result

    def _provider(
        self, principal: Principal, name: str, operation: Operation = Operation.DESCRIBE
    ) -> ProviderSnapshot:
        self.guard.require(principal, operation, name)  # before existence: no probing of hidden names
        try:
            return self.model.provider(name)
        except UnknownElement:
            raise RestError(404, "Unknown provider") from None

    def _resource(self, principal: Principal, target: Target, operation: Operation) -> ResourceSnapshot:
        assert target.provider and target.service and target.resource
        self.guard.require(principal, Operation.DESCRIBE, target.provider)
        self.guard.require(principal, operation, target.provider, target.service, target.resource)
        try:
            return self.model.get(target.provider, target.service, target.resource)
        except UnknownElement as error:
            raise RestError(404, _not_found(str(error))) from None

    # --- lists and descriptions ----------------------------------------------------------------------

    def complete_list(self, principal: Principal, args: Mapping[str, str], attrs: Collection[str]) -> dict:
        entries = []
        for provider, selection in self._visible(principal, args):
            entry = describe.complete_entry(provider, attrs)
            if selection is not None:
                entry["services"] = [
                    describe.describe_service(provider.services[name], selection[name]) for name in selection
                ]
            entries.append(entry)
        return envelope("COMPLETE_LIST", "/", providers=entries)

    def describe(self, principal: Principal, target: Target, args: Mapping[str, str]) -> dict:
        if target.kind is Kind.PROVIDERS:
            names = [provider.name for provider, _ in self._visible(principal, args)]
            return envelope("PROVIDERS_LIST", "/", providers=names)
        assert target.provider is not None
        provider = self._provider(principal, target.provider)
        test, chosen = self.provider_test(args)
        if test is not None and not test(provider):
            raise RestError(404, "Unknown provider")
        selection = selectors.select(chosen, provider) if chosen is not None else None
        services = [
            name
            for name in provider.services
            if (selection is None or name in selection)
            and self.guard.may(principal, Operation.DESCRIBE, provider.name, name)
        ]
        if target.kind is Kind.PROVIDER:
            return envelope(
                "DESCRIBE_PROVIDER", target.uri, response=describe.describe_provider(provider, services)
            )
        if target.kind is Kind.SERVICES:
            return envelope("SERVICES_LIST", target.uri, services=services)
        if target.service not in provider.services:
            raise RestError(404, "Unknown service")
        self.guard.require(principal, Operation.DESCRIBE, provider.name, target.service)
        service = provider.services[target.service]
        wanted = selection.get(service.name, set()) if selection is not None else None
        if target.kind is Kind.SERVICE:
            return envelope(
                "DESCRIBE_SERVICE", target.uri, response=describe.describe_service(service, wanted)
            )
        if target.kind is Kind.RESOURCES:
            names = [name for name in service.resources if wanted is None or name in wanted]
            return envelope("RESOURCES_LIST", target.uri, resources=names)
        resource = service.resources.get(target.resource or "")
        if resource is None:
            raise RestError(404, "Resource not found")
        self.guard.require(principal, Operation.DESCRIBE, provider.name, service.name, resource.name)
        return envelope(
            "DESCRIBE_RESOURCE", target.uri, response=describe.describe_resource(resource, self.namer)
        )

    # --- access methods ----------------------------------------------------------------------------

    def get(self, principal: Principal, target: Target, args: Mapping[str, str]) -> dict:
        if target.filtered:
            return self._filtered_get(principal, target, args)
        resource = self._resource(principal, target, Operation.READ)
        return self._value_envelope("GET_RESPONSE", target.uri, resource, args)

    def _value_envelope(
        self, type_: str, uri: str, resource: ResourceSnapshot, args: Mapping[str, str]
    ) -> dict:
        if resource.kind is ResourceKind.ACTION:
            raise RestError(405, "GET only works on data resources; an ACTION is acted on (ACT)")
        attribute = args.get("attributeName") or "value"
        status, body, error = describe.value_response(
            resource, self.namer, metadata=_flag(args.get("metadata")), attribute=attribute
        )
        if status == 404:
            raise RestError(404, error or "Unknown attribute")
        result = envelope(type_, uri, status, response=body)
        if error:
            result["error"] = error
        return result

    def set(self, principal: Principal, target: Target, body: Any) -> dict:
        value = verbs.set_value(verbs.parameters(body))
        self._resource(principal, target, Operation.UPDATE)
        assert target.provider and target.service and target.resource
        try:
            snapshot = self.model.set(target.provider, target.service, target.resource, value, source=SOURCE)
        except ModelError as error:
            raise model_error(error) from None
        return self._value_envelope("SET_RESPONSE", target.uri, snapshot, {})

    def act(self, principal: Principal, target: Target, body: Any) -> dict:
        params = verbs.parameters(body)
        resource = self._resource(principal, target, Operation.ACT)
        if resource.kind is not ResourceKind.ACTION:
            raise RestError(405, "ACT only works on an ACTION resource")
        arguments = verbs.act_arguments(params, resource.parameters)
        assert target.provider and target.service and target.resource
        try:
            result = self.model.act(target.provider, target.service, target.resource, arguments)
        except ModelError as error:
            raise model_error(error) from None
        try:
            _json_bytes(result)
        except (TypeError, ValueError):
            raise RestError(502, "The action returned a value that is not JSON") from None
        return envelope("ACT_RESPONSE", target.uri, response=result)

    def subscribe(self, principal: Principal, target: Target, body: Any) -> dict:
        request = verbs.subscribe_request(verbs.parameters(body))
        resource = self._resource(principal, target, Operation.READ)
        if resource.kind is ResourceKind.ACTION:
            raise RestError(405, "SUBSCRIBE only works on data resources")
        try:
            built = conditions.build_all(request.conditions)
            callback = check(request.callback, self.allow)
        except (conditions.ConditionError, CallbackRefused) as error:
            raise RestError(400, str(error)) from None
        sub = self.hub.subscribe(
            principal.name,
            resource.provider,
            resource.service,
            resource.name,
            self.namer.value_type(resource),
            callback,
            built,
            request.policy,
            request.lifetime,
        )
        _, initial, _ = describe.value_response(resource, self.namer)
        return envelope(
            "SUBSCRIBE_RESPONSE", target.uri, response={"subscriptionId": sub.id, "initial": initial}
        )

    def unsubscribe(self, principal: Principal, target: Target, body: Any) -> dict:
        subscription_id = verbs.subscription_id(verbs.parameters(body))
        if not self.hub.unsubscribe(subscription_id, principal.name):
            raise RestError(404, "Unknown subscription")
        return envelope(
            "UNSUBSCRIBE_RESPONSE",
            target.uri,
            response={"message": "unsubscription done", "subscriptionId": subscription_id},
        )

    def stream(self, principal: Principal, target: Target) -> Any:
        assert target.provider and target.service and target.resource
        self.guard.require(principal, Operation.DESCRIBE, target.provider)
        self.guard.require(principal, Operation.READ, target.provider, target.service, target.resource)
        return self.streams.open(target.provider, target.service, target.resource)

    # --- snapshots and providers -------------------------------------------------------------------

    def snapshot(self, principal: Principal, args: Mapping[str, str], body: Any) -> dict:
        chosen = None
        if body not in (None, [], {}):
            try:
                chosen = selectors.parse(body)
            except selectors.SelectorError as error:
                raise RestError(400, f"Error parsing selector: {error}") from None
        metadata = _flag(args.get("metadata"))
        providers = {}
        for provider in self.model.providers():
            if not (
                self.guard.may(principal, Operation.DESCRIBE, provider.name)
                and self.guard.may(principal, Operation.READ, provider.name)
            ):
                continue
            selection = selectors.select(chosen, provider) if chosen is not None else None
            if chosen is not None and selection is None:
                continue
            providers[provider.name] = describe.snapshot_provider(provider, self.namer, metadata, selection)
        return envelope("SNAPSHOT_RESPONSE", "/", providers=providers)

    def create_provider(self, principal: Principal, target: Target, body: Any) -> dict:
        """POST /providers/{p}: a map "svc/res" -> value creates (as MODIFIABLE properties) or SETs."""
        assert target.provider is not None
        values = verbs.set_value(verbs.parameters(body))
        if not isinstance(values, Mapping):
            raise RestError(400, 'Expected a value mapping "service/resource" to values')
        self.guard.require(principal, Operation.UPDATE, target.provider)
        written = {}
        try:
            for path, value in values.items():
                service, sep, name = str(path).partition("/")
                if not sep:
                    raise RestError(400, f"Expected 'service/resource', got {str(path)[:80]!r}")
                self.guard.require(principal, Operation.UPDATE, target.provider, service, name)
                if target.provider not in self.model:
                    self.model.add_provider(target.provider, source=SOURCE)
                try:
                    self.model.get(target.provider, service, name)
                except UnknownElement:
                    spec = ResourceSpec(
                        value_type(_infer_type(value)), ResourceKind.PROPERTY, ValueMode.MODIFIABLE
                    )
                    self.model.ensure_resource(
                        target.provider, service, name, spec, value=value, source=SOURCE
                    )
                    written[path] = self.model.get(target.provider, service, name)
                    continue
                written[path] = self.model.set(target.provider, service, name, value, source=SOURCE)
        except ModelError as error:
            raise model_error(error) from None
        response = {
            "name": target.provider,
            "values": {path: describe.value_response(res, self.namer)[1] for path, res in written.items()},
        }
        return envelope("SET_RESPONSE", target.uri, response=response)

    # --- legacy: an LDAP filter in place of the provider ---------------------------------------------

    def _filtered_get(self, principal: Principal, target: Target, args: Mapping[str, str]) -> dict:
        assert target.provider is not None
        try:
            node = ldap.parse(target.provider)
        except ldap.LdapSyntaxError as error:
            raise RestError(400, f"Error parsing filter: {error}") from None
        service_ok, resource_ok = _segment(target.service), _segment(target.resource)
        found = []
        for provider in self.model.providers():
            if not self.guard.may(principal, Operation.DESCRIBE, provider.name) or not ldap.matches(
                node, provider
            ):
                continue
            for resource in provider.resources():
                if (
                    resource.kind is ResourceKind.ACTION
                    or not service_ok(resource.service)
                    or not resource_ok(resource.name)
                ):
                    continue
                if not self.guard.may(
                    principal, Operation.READ, provider.name, resource.service, resource.name
                ):
                    continue
                uri = f"/{provider.name}/{resource.service}/{resource.name}"
                found.append(self._value_envelope("GET_RESPONSE", uri, resource, args))
        attribute = args.get("attributeName") or "value"
        name = f"/{target.provider}/{target.service}/{target.resource}/{attribute}"
        return envelope("GET_RESPONSE", target.uri, response={"name": name, "type": "array", "value": found})


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, allow_nan=False).encode()


def _segment(text: str | None) -> Callable[[str], bool]:
    """Legacy service/resource segments next to a provider filter: name, *, (prefix*), (*suffix), (regex)."""
    if text is None or text in ("*", "(*)"):
        return lambda name: True
    if not (text.startswith("(") and text.endswith(")")):
        return lambda name: name == text
    inner = text[1:-1]
    if inner.endswith("*") and "*" not in inner[:-1] and not re.search(r"[\\^$.|?+()\[\]{}]", inner[:-1]):
        return lambda name: name.startswith(inner[:-1])
    if inner.startswith("*") and "*" not in inner[1:] and not re.search(r"[\\^$.|?+()\[\]{}]", inner[1:]):
        return lambda name: name.endswith(inner[1:])
    try:
        pattern = ClientPattern(inner)
    except PatternError as error:
        raise RestError(400, f"Bad pattern {inner[:80]!r}: {error}") from None
    return pattern.fullmatch


def _flag(value: str | None) -> bool:
    return (value or "").lower() in {"true", "1", "yes"}


def _not_found(message: str) -> str:
    if message.startswith("unknown provider"):
        return "Unknown provider"
    if message.startswith("unknown service"):
        return "Service not found"
    return "Resource not found"
