"""OpenID Connect bearer tokens, validated locally against the IdP's JWKS, and the password grant.

Stricter than sensiNact (which checks neither issuer nor audience): a token is accepted only when
- it is a compact JWS of bounded size whose header names an allowed asymmetric `alg` and a `kid`;
- the key with that `kid` exists in the IdP's JWKS and its type fits the algorithm (an RSA key never
  verifies an HMAC token: HS* is not even allowed, so the RSA-public-key-as-HMAC-secret trick fails);
- the signature verifies;
- `iss` is the discovered issuer, `aud` names one of the configured audiences, `exp` is in the future,
  `nbf` and `iat` not in the future (each within `leeway` seconds), `sub` is a string, and a Keycloak
  `typ` claim, when present, is `Bearer` (so ID and refresh tokens are refused as access tokens).

An ID token (the status page's browser sign-in, authcode.py) gets the same checks of signature,
algorithm, issuer and time, but its `aud` must name our client, its `typ` (when present) is `ID`, and its
`nonce` must be the sign-in's (`validate_id_token`).

Roles (Keycloak's layout): realm roles (`realm_access.roles`) as they are; client roles
(`resource_access.<client>.roles`) as `<client>:<role>`, so a client role can never pose as a realm role
of the same name; and a top-level `roles` list (the legacy M-Sec claim) as it is.
"""

from __future__ import annotations

import hmac
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import jwt
from jwt.exceptions import InvalidKeyError, PyJWTError

from agent.security.config import OidcSection
from agent.security.idp_http import HttpSettings, IdPError, IdPHttp
from agent.security.jwks import JwksCache, KeysUnavailable, SigningKey

log = logging.getLogger(__name__)

Clock = Callable[[], float]

MAX_TOKEN_CHARS = 16_384
MAX_ROLES = 256
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")

# Which key may verify which algorithm: (kty, curves). Symmetric (HS*) algorithms are absent on purpose.
ALGORITHM_KEYS: dict[str, tuple[str, frozenset[str | None]]] = {
    **{alg: ("RSA", frozenset({None})) for alg in ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")},
    "ES256": ("EC", frozenset({"P-256"})),
    "ES384": ("EC", frozenset({"P-384"})),
    "ES512": ("EC", frozenset({"P-521"})),
    "EdDSA": ("OKP", frozenset({"Ed25519", "Ed448"})),
}
SUPPORTED_ALGORITHMS = frozenset(ALGORITHM_KEYS)
# Keycloak's `typ` claim, lower-cased: refresh and ID tokens are no access tokens, and the other way round.
ACCESS_TOKEN_TYPES = frozenset({"bearer"})
ID_TOKEN_TYPES = frozenset({"id"})


class InvalidToken(Exception):
    """The token is not acceptable. The message says why and is safe to log and to show (no token)."""


@dataclass(frozen=True, slots=True)
class TokenIdentity:
    name: str
    roles: frozenset[str]
    expires_at: float


def keycloak_roles(claims: dict[str, Any]) -> frozenset[str]:
    roles: list[str] = []
    realm = claims.get("realm_access")
    if isinstance(realm, dict):
        roles += _strings(realm.get("roles"))
    clients = claims.get("resource_access")
    if isinstance(clients, dict):
        for client, access in clients.items():
            if isinstance(access, dict):
                roles += (f"{client}:{role}" for role in _strings(access.get("roles")))
    roles += _strings(claims.get("roles"))
    return frozenset(roles[:MAX_ROLES])


def _strings(value: object) -> list[str]:
    return [item for item in value if isinstance(item, str) and item] if isinstance(value, list) else []


def _number(claims: dict[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidToken(f"the '{name}' claim is not a number")
    return float(value)


class TokenValidator:
    def __init__(
        self,
        keys: JwksCache,
        *,
        audiences: Iterable[str],
        algorithms: Iterable[str],
        leeway: float,
        clock: Clock,
        username_claim: str = "sub",
    ) -> None:
        self._keys = keys
        self._audiences = frozenset(audiences)
        self._algorithms = tuple(algorithms)
        unknown = set(self._algorithms) - SUPPORTED_ALGORITHMS
        if unknown or not self._audiences:
            raise ValueError(f"unsupported algorithms {sorted(unknown)} or no audience")
        self._leeway = leeway
        self._clock = clock
        self._username_claim = username_claim

    def validate(self, token: str) -> TokenIdentity:
        """The identity a valid token carries; raises InvalidToken, or KeysUnavailable when no keys can be
        had to check it with."""
        claims = self._signed_claims(token)
        self._check_claims(claims, self._audiences, ACCESS_TOKEN_TYPES)
        return self._identity(claims)

    def validate_id_token(self, token: str, *, client_id: str, nonce: str) -> TokenIdentity:
        """An ID token from the authorization code flow (OIDC Core §3.1.3.7): the same signature, issuer
        and time checks as a bearer token, but `aud` must name our client, `azp` (when present) must be
        our client, `typ` (when present) must be Keycloak's `ID`, and `nonce` must be the one this
        sign-in sent (so a token minted for another sign-in cannot be replayed into this one)."""
        claims = self._signed_claims(token)
        self._check_claims(claims, frozenset({client_id}), ID_TOKEN_TYPES)
        party = claims.get("azp")
        if party is not None and party != client_id:
            raise InvalidToken("the ID token was issued to another client ('azp')")
        sent = claims.get("nonce")
        if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), nonce.encode()):
            raise InvalidToken("the ID token's nonce does not match this sign-in")
        return self._identity(claims)

    def _identity(self, claims: dict[str, Any]) -> TokenIdentity:
        name = claims.get(self._username_claim)
        if not isinstance(name, str) or not name or len(name) > 256:
            raise InvalidToken(f"the token's '{self._username_claim}' claim is not a usable user name")
        return TokenIdentity(name, keycloak_roles(claims), float(claims["exp"]))

    def _signed_claims(self, token: str) -> dict[str, Any]:
        if len(token) > MAX_TOKEN_CHARS:
            raise InvalidToken("the token is too long")
        if not _COMPACT_JWS.fullmatch(token):
            raise InvalidToken("the token is not a compact JWS (header.payload.signature)")
        try:
            header = jwt.get_unverified_header(token)
        except PyJWTError:
            raise InvalidToken("the token's header cannot be decoded") from None
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in self._algorithms:
            raise InvalidToken("the token's algorithm is not allowed")
        if "crit" in header:
            raise InvalidToken("the token has critical header parameters we do not understand")
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("the token names no key ('kid')")
        key = self._keys.key(kid)
        if key is None:
            raise InvalidToken("the token's key is not one of the identity provider's keys")
        return self._verify_signature(token, key)

    def _verify_signature(self, token: str, key: SigningKey) -> dict[str, Any]:
        # The algorithms come from configuration, narrowed to those this key's type can verify: never
        # from the token itself (RFC 8725 §2.1).
        algorithms = [
            alg
            for alg in self._algorithms
            if ALGORITHM_KEYS[alg][0] == key.kty
            and key.crv in ALGORITHM_KEYS[alg][1]
            and key.alg in (None, alg)
        ]
        if not algorithms:
            raise InvalidToken("the token's key does not fit any allowed algorithm")
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=algorithms,
                # Time, issuer and audience are checked below, against our own clock and settings.
                options={
                    "verify_signature": True,
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_aud": False,
                    "verify_iss": False,
                    "verify_sub": False,
                    "verify_jti": False,
                    "enforce_minimum_key_length": True,
                },
            )
        except InvalidKeyError:
            raise InvalidToken("the token's key is too weak or unusable") from None
        except PyJWTError:
            raise InvalidToken("the token's signature or payload is invalid") from None
        if not isinstance(claims, dict):
            raise InvalidToken("the token's payload is not a JSON object")
        return claims

    def _check_claims(self, claims: dict[str, Any], wanted: frozenset[str], kinds: frozenset[str]) -> None:
        discovery = self._keys.discovery
        if discovery is None or claims.get("iss") != discovery.issuer:
            raise InvalidToken("the token was issued by another issuer")
        audience = claims.get("aud")
        audiences = [audience] if isinstance(audience, str) else _strings(audience)
        if not wanted.intersection(audiences):
            raise InvalidToken("the token is not meant for this device (audience)")
        now, leeway = self._clock(), self._leeway
        expires = _number(claims, "exp")
        if expires is None:
            raise InvalidToken("the token has no expiry ('exp')")
        if now >= expires + leeway:
            raise InvalidToken("the token has expired")
        not_before = _number(claims, "nbf")
        if not_before is not None and now + leeway < not_before:
            raise InvalidToken("the token is not valid yet ('nbf')")
        issued = _number(claims, "iat")
        if issued is not None and now + leeway < issued:
            raise InvalidToken("the token was issued in the future ('iat')")
        if not isinstance(claims.get("sub"), str):
            raise InvalidToken("the token has no subject ('sub')")
        kind = claims.get("typ")
        if kind is not None and (not isinstance(kind, str) or kind.lower() not in kinds):
            raise InvalidToken(
                f"the token is not {'an access' if kinds is ACCESS_TOKEN_TYPES else 'an ID'} token ('typ')"
            )


def idp_clients(oidc: OidcSection, clock: Clock) -> tuple[IdPHttp, JwksCache, TokenValidator]:
    """HTTP to the IdP, its keys and a validator of its tokens, as a `[security.oidc]` table says."""
    http = IdPHttp(
        HttpSettings(
            timeout=oidc.http_timeout,
            max_bytes=oidc.max_response_bytes,
            ca_file=oidc.ca_file,
            allow_plain_http=oidc.allow_plain_http,
        )
    )
    keys = JwksCache(
        http,
        oidc.discovery_url,
        ttl=oidc.jwks_ttl,
        min_refetch_interval=oidc.min_refetch_interval,
        clock=clock,
        expected_issuer=oidc.issuer,
    )
    validator = TokenValidator(
        keys,
        audiences=oidc.audiences,
        algorithms=oidc.algorithms,
        leeway=oidc.leeway,
        clock=clock,
        username_claim=oidc.username_claim,
    )
    return http, keys, validator


def post_grant(
    http: IdPHttp, keys: JwksCache, form: dict[str, str], client_id: str, client_secret: str | None
) -> tuple[int, Any]:
    """POST a grant to the IdP's token endpoint as this client: HTTP Basic for a confidential client,
    `client_id` in the form for a public one (RFC 6749 §2.3). Raises IdPError / KeysUnavailable when the
    IdP cannot be asked; the caller reads the (status, JSON body) answer."""
    endpoint = keys.discover().token_endpoint
    if endpoint is None:
        raise IdPError("the discovery document has no 'token_endpoint'")
    http.check_url(endpoint)
    form = dict(form)
    basic = None
    if client_secret is None:
        form["client_id"] = client_id  # a public client
    else:
        basic = (client_id, client_secret)
    return http.post_form(endpoint, form, basic=basic)


class PasswordGrant:
    """Resource-owner password credentials (RFC 6749 §4.3) at the IdP's token endpoint; the access token
    that comes back is validated like any bearer token."""

    def __init__(
        self,
        http: IdPHttp,
        keys: JwksCache,
        validator: TokenValidator,
        *,
        client_id: str,
        client_secret: str | None,
        scope: str = "openid",
    ) -> None:
        self._http = http
        self._keys = keys
        self._validator = validator
        self._client_id = client_id
        self._client_secret = client_secret
        self._scope = scope

    def exchange(self, username: str, password: str) -> TokenIdentity | None:
        """The identity for these credentials, or None when the IdP refuses them. Raises IdPError or
        KeysUnavailable when the IdP cannot be asked; InvalidToken when its answer does not validate."""
        form = {"grant_type": "password", "username": username, "password": password, "scope": self._scope}
        status, body = post_grant(self._http, self._keys, form, self._client_id, self._client_secret)
        if status in (400, 401):
            error = body.get("error") if isinstance(body, dict) else None
            log.info(
                "IdP refused a password grant: %s", error if isinstance(error, str) else f"HTTP {status}"
            )
            return None
        if status != 200 or not isinstance(body, dict):
            raise IdPError(f"the token endpoint answered HTTP {status}")
        token, kind = body.get("access_token"), body.get("token_type", "Bearer")
        if not isinstance(token, str) or not isinstance(kind, str) or kind.lower() != "bearer":
            raise IdPError("the token endpoint's answer has no bearer access token")
        return self._validator.validate(token)


__all__ = [
    "SUPPORTED_ALGORITHMS",
    "IdPError",
    "InvalidToken",
    "KeysUnavailable",
    "PasswordGrant",
    "TokenIdentity",
    "TokenValidator",
    "idp_clients",
    "keycloak_roles",
    "post_grant",
]
