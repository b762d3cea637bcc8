"""Authorization rules: who may do which operation on which provider/service/resource.

Semantics (docs/security.md has examples):
- Rules are read **in order; the first rule that matches decides** (allow or deny), like a firewall.
  Nothing matches → deny. Order is explicit and reviewable; no specificity arithmetic to get wrong.
- A rule names who (`roles` and/or `users`; either matching is enough), `operations` (DESCRIBE, READ,
  UPDATE, ACT or "*"), and glob patterns (`fnmatch`, case-sensitive) for provider, service and resource.
- Every authenticated principal also has the implicit role `authenticated`; the anonymous principal has
  only the role `anonymous` (and rules for it apply only when anonymous access is on).
- A request about a whole provider (no service) or a whole service (no resource):
  - an **allow** rule for DESCRIBE matches if its patterns match the levels named: whoever may see
    something inside a provider may see that the provider exists, or it could never be reached;
  - any other rule (other operations, and every deny) matches only if its patterns for the unnamed levels
    are "*": it must cover everything inside. A deny on `truck/camera` does not hide all of `truck`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from fnmatch import fnmatchcase

from agent.security.access import Operation, Principal

AUTHENTICATED_ROLE = "authenticated"
ANONYMOUS_ROLE = "anonymous"


class Effect(StrEnum):
    ALLOW = "allow"
    DENY = "deny"


@dataclass(frozen=True, slots=True)
class Rule:
    operations: frozenset[Operation]
    roles: frozenset[str] = frozenset()
    users: frozenset[str] = frozenset()
    provider: str = "*"
    service: str = "*"
    resource: str = "*"
    effect: Effect = Effect.ALLOW

    def applies_to(self, principal: Principal, roles: frozenset[str]) -> bool:
        # A user name only counts for authenticated principals: nobody becomes "alice" by being anonymous.
        return bool(self.roles & roles) or (not principal.anonymous and principal.name in self.users)

    def covers(self, operation: Operation, provider: str, service: str | None, resource: str | None) -> bool:
        if operation not in self.operations:
            return False
        lenient = self.effect is Effect.ALLOW and operation is Operation.DESCRIBE
        return all(
            fnmatchcase(value, pattern) if value is not None else (lenient or pattern == "*")
            for value, pattern in (
                (provider, self.provider),
                (service, self.service),
                (resource, self.resource),
            )
        ) and not (service is None and resource is not None)


def principal_roles(principal: Principal) -> frozenset[str]:
    """The roles rules see: the anonymous principal is only 'anonymous', whatever it carries."""
    if principal.anonymous:
        return frozenset({ANONYMOUS_ROLE})
    return principal.roles | {AUTHENTICATED_ROLE}


class RuleSet:
    def __init__(self, rules: Iterable[Rule], *, allow_anonymous: bool = False) -> None:
        self._rules = tuple(rules)
        self._allow_anonymous = allow_anonymous

    def allowed(
        self,
        principal: Principal,
        operation: Operation,
        provider: str,
        service: str | None = None,
        resource: str | None = None,
    ) -> bool:
        if principal.anonymous and not self._allow_anonymous:
            return False
        roles = principal_roles(principal)
        for rule in self._rules:
            if rule.applies_to(principal, roles) and rule.covers(operation, provider, service, resource):
                return rule.effect is Effect.ALLOW
        return False
