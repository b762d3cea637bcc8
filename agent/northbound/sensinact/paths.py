"""The sensiNact URL grammar of both generations, parsed into a Target.

New generation: /sensinact/providers/{p}/services/{s}/resources/{r}[/VERB] and the lists in between.
Legacy short form: /sensinact/{p}[/{s}[/{r}]][/VERB]. A trailing DESCRIBE is the same as no verb.
A provider segment containing "(" is an LDAP filter standing for the providers it matches (legacy).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from .envelopes import RestError

VERBS = frozenset({"GET", "SET", "ACT", "SUBSCRIBE", "UNSUBSCRIBE"})


class Kind(StrEnum):
    ROOT = "ROOT"  # COMPLETE_LIST
    PROVIDERS = "PROVIDERS"  # PROVIDERS_LIST
    PROVIDER = "PROVIDER"
    SERVICES = "SERVICES"
    SERVICE = "SERVICE"
    RESOURCES = "RESOURCES"
    RESOURCE = "RESOURCE"


@dataclass(frozen=True, slots=True)
class Target:
    kind: Kind
    provider: str | None = None
    service: str | None = None
    resource: str | None = None
    verb: str | None = None  # one of VERBS, None for lists and descriptions
    long_form: bool = False  # /providers/... (new generation) rather than the legacy short form

    @property
    def uri(self) -> str:
        """sensiNact's `uri`: "/p[/s[/r]]", "/" for the root and the provider list."""
        parts = [part for part in (self.provider, self.service, self.resource) if part is not None]
        return "/" + "/".join(parts)

    @property
    def filtered(self) -> bool:
        """An LDAP filter in place of the provider (legacy)."""
        return self.provider is not None and "(" in self.provider


def _with_verb(segments: list[str]) -> tuple[list[str], str | None]:
    if segments and segments[-1] in VERBS:
        return segments[:-1], segments[-1]
    if segments and segments[-1] == "DESCRIBE":
        return segments[:-1], None
    return segments, None


def parse(path: str) -> Target:
    """`path` is what follows /sensinact/ (already percent-decoded). Raises RestError(404)."""
    segments = [segment for segment in path.split("/") if segment]
    segments, verb = _with_verb(segments)
    if segments and segments[0] == "providers":
        target = _long_form(segments[1:], verb)
    else:
        target = _short_form(segments, verb)
    if target is None:
        raise RestError(404, "Unknown path")
    if verb is not None and target.kind is not Kind.RESOURCE:
        raise RestError(405, f"{verb} only works on a resource")
    return target


def _long_form(rest: list[str], verb: str | None) -> Target | None:
    # rest = {p} / services / {s} / resources / {r}: the keywords sit at positions 1 and 3.
    kinds = (Kind.PROVIDERS, Kind.PROVIDER, Kind.SERVICES, Kind.SERVICE, Kind.RESOURCES, Kind.RESOURCE)
    if len(rest) >= len(kinds):
        return None
    for index, word in ((1, "services"), (3, "resources")):
        if len(rest) > index and rest[index] != word:
            return None
    names = [rest[i] for i in (0, 2, 4) if i < len(rest)]
    return Target(kinds[len(rest)], *names, verb=verb, long_form=True)  # type: ignore[arg-type]


def _short_form(segments: list[str], verb: str | None) -> Target | None:
    if len(segments) > 3:
        return None
    kind = (Kind.ROOT, Kind.PROVIDER, Kind.SERVICE, Kind.RESOURCE)[len(segments)]
    return Target(kind, *segments, verb=verb)  # type: ignore[arg-type]
