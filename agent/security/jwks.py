"""The IdP's signing keys: discovery document → `jwks_uri` → JWK set, cached and refreshed.

- Keys are kept for `ttl` seconds, then refetched on the next use. A stale set keeps being used while a
  refresh fails (the IdP is down): tokens signed by known keys still validate.
- A token naming an unknown `kid` triggers a refetch (the IdP rotated its keys), but at most one fetch per
  `min_refetch_interval`, whatever the reason: an attacker sending random `kid`s cannot make us hammer
  the IdP, and a down IdP is not asked on every request.
- Only asymmetric signing keys with a `kid` are kept (`oct` keys never: a shared secret published in a
  JWKS would let anyone sign). A set with no usable key is treated as a failed fetch.
- Requests never wait long for the IdP: a stale refresh is tried only by the first request that finds
  the set stale (the others use the stale keys meanwhile); a request that cannot proceed without a fetch
  waits at most for the one in progress.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
from jwt.exceptions import PyJWTError

from agent.security.idp_http import IdPError, IdPHttp

log = logging.getLogger(__name__)

Clock = Callable[[], float]

MAX_KEYS = 64
SUPPORTED_KTY = frozenset({"RSA", "EC", "OKP"})


@dataclass(frozen=True, slots=True)
class Discovery:
    issuer: str
    jwks_uri: str
    token_endpoint: str | None
    authorization_endpoint: str | None = None  # the browser sign-in (authorization code flow) starts here


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    kty: str
    crv: str | None
    alg: str | None  # the JWK's own `alg`, when it names one: then only that algorithm may use it
    key: Any  # a cryptography public key


class KeysUnavailable(Exception):
    """No signing keys could be had from the IdP (and none were cached)."""


class JwksCache:
    def __init__(
        self,
        http: IdPHttp,
        discovery_url: str,
        *,
        ttl: float,
        min_refetch_interval: float,
        clock: Clock,
        expected_issuer: str | None = None,
    ) -> None:
        self._http = http
        self._discovery_url = discovery_url
        self._ttl = ttl
        self._min_interval = min_refetch_interval
        self._clock = clock
        self._expected_issuer = expected_issuer
        self._keys: dict[str, SigningKey] = {}
        self._discovery: Discovery | None = None
        self._fetched_at: float | None = None  # last successful fetch
        self._attempted_at: float | None = None  # last attempt, successful or not
        self._lock = threading.Lock()
        self.fetches = 0  # attempts, for tests and health

    @property
    def discovery(self) -> Discovery | None:
        return self._discovery

    def discover(self) -> Discovery:
        """The discovery document (fetching it, within the rate limit, if it never was)."""
        if self._discovery is None:
            self._refresh(wait=True)
        if self._discovery is None:
            raise KeysUnavailable("the identity provider's discovery document could not be fetched")
        return self._discovery

    def key(self, kid: str) -> SigningKey | None:
        """The key with this `kid`, refetching the set when it is stale or the `kid` is unknown."""
        now = self._clock()
        if self._fetched_at is None or now - self._fetched_at >= self._ttl:
            # With keys in hand, only one request refreshes; the others go on with what we have.
            self._refresh(wait=not self._keys)
        key = self._keys.get(kid)
        if key is None and self._keys:
            self._refresh(wait=True)  # perhaps a rotation; the rate limit keeps this cheap
            key = self._keys.get(kid)
        if key is None and not self._keys:
            raise KeysUnavailable("the identity provider's signing keys could not be fetched")
        return key

    def _refresh(self, *, wait: bool) -> None:
        seen = self._attempted_at
        acquired = (
            self._lock.acquire(timeout=3 * self._http.settings.timeout + 1)
            if wait
            else (self._lock.acquire(blocking=False))
        )
        if not acquired:
            return
        try:
            if self._attempted_at != seen:
                return  # another request fetched while we waited: use its result
            now = self._clock()
            if self._attempted_at is not None and now - self._attempted_at < self._min_interval:
                return
            self._attempted_at = now
            self.fetches += 1
            try:
                discovery = self._fetch_discovery()
                keys = self._fetch_keys(discovery.jwks_uri)
            except IdPError as error:
                log.warning("OIDC key refresh failed, keeping %d cached key(s): %s", len(self._keys), error)
                return
            self._discovery, self._keys, self._fetched_at = discovery, keys, now
            log.info("OIDC keys refreshed: %s", ", ".join(sorted(keys)))
        finally:
            self._lock.release()

    def _fetch_discovery(self) -> Discovery:
        document = self._http.get_json(self._discovery_url)
        if not isinstance(document, dict):
            raise IdPError("the discovery document is not a JSON object")
        issuer, jwks_uri, token = (document.get(name) for name in ("issuer", "jwks_uri", "token_endpoint"))
        if not isinstance(issuer, str) or not isinstance(jwks_uri, str):
            raise IdPError("the discovery document lacks 'issuer' or 'jwks_uri'")
        expected = self._expected_issuer or _issuer_of(self._discovery_url)
        if issuer != expected:
            # OpenID Connect Discovery §4.3: the issuer must be the one the document was asked for, or a
            # compromised document could make us trust another realm's tokens.
            raise IdPError("the discovery document's issuer is not the configured one")
        self._http.check_url(jwks_uri)
        if token is not None and not isinstance(token, str):
            raise IdPError("the discovery document's 'token_endpoint' is not a string")
        authorize = document.get("authorization_endpoint")
        if authorize is not None and not isinstance(authorize, str):
            raise IdPError("the discovery document's 'authorization_endpoint' is not a string")
        return Discovery(issuer, jwks_uri, token, authorize)

    def _fetch_keys(self, url: str) -> dict[str, SigningKey]:
        document = self._http.get_json(url)
        entries = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(entries, list):
            raise IdPError("the JWK set has no 'keys' list")
        keys: dict[str, SigningKey] = {}
        for entry in entries[:MAX_KEYS]:
            key = _signing_key(entry)
            if key is not None:
                keys[key.kid] = key
        if not keys:
            raise IdPError("the JWK set has no usable signing key")
        return keys


def _issuer_of(discovery_url: str) -> str:
    suffix = "/.well-known/openid-configuration"
    return discovery_url[: -len(suffix)] if discovery_url.endswith(suffix) else discovery_url


def _signing_key(entry: object) -> SigningKey | None:
    if not isinstance(entry, dict):
        return None
    kid, kty, use, alg, crv = (entry.get(name) for name in ("kid", "kty", "use", "alg", "crv"))
    if not isinstance(kid, str) or not kid or kty not in SUPPORTED_KTY or use not in (None, "sig"):
        return None
    if (alg is not None and not isinstance(alg, str)) or (crv is not None and not isinstance(crv, str)):
        return None
    try:
        parsed = jwt.PyJWK(entry)
    except (PyJWTError, ValueError, TypeError, KeyError) as error:
        log.warning("OIDC JWK %r skipped: %s", kid[:64], type(error).__name__)
        return None
    key = parsed.key
    if not hasattr(key, "verify") and hasattr(key, "public_key"):
        key = key.public_key()  # a set that (wrongly) publishes a private key: verify with its public half
    return SigningKey(kid=kid, kty=kty, crv=crv, alg=alg, key=key)
