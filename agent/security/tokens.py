"""Legacy sensiNact session tokens: `/sensinact.login` issues one, later requests send `X-Auth-Token`.

Tokens are 256 random bits (URL-safe text), valid for `ttl` seconds but never past the expiry of the
credential they were issued for (a session opened with a bearer token ends when that token would).
Only a SHA-256 digest of each token is kept: the table can be looked up without comparing secrets
character by character (no timing leak), and a memory dump holds no usable token. The table is bounded:
past `max_sessions`, the session that ends first is dropped.
"""

from __future__ import annotations

import hashlib
import heapq
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace

from agent.security.access import Principal

Clock = Callable[[], float]

MAX_TOKEN_CHARS = 256


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    generated: float  # seconds since the epoch, as the clock gives them
    valid_until: float

    def __repr__(self) -> str:  # the token is a credential: keep it out of logs and tracebacks
        return f"IssuedToken(***, generated={self.generated}, valid_until={self.valid_until})"


@dataclass(frozen=True, slots=True)
class _Session:
    principal: Principal
    valid_until: float


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class SessionTokens:
    def __init__(self, *, ttl: float, max_sessions: int, clock: Clock) -> None:
        self._ttl = ttl
        self._max_sessions = max_sessions
        self._clock = clock
        self._sessions: dict[bytes, _Session] = {}
        self._lock = threading.Lock()

    def issue(self, principal: Principal, *, not_after: float | None = None) -> IssuedToken:
        now = self._clock()
        valid_until = now + self._ttl if not_after is None else min(now + self._ttl, not_after)
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._purge(now)
            if len(self._sessions) >= self._max_sessions:
                # The table is full of live sessions: drop those that would end first.
                excess = len(self._sessions) - self._max_sessions + 1
                ending = heapq.nsmallest(excess, self._sessions.items(), key=lambda item: item[1].valid_until)
                for digest, _ in ending:
                    del self._sessions[digest]
            self._sessions[_digest(token)] = _Session(replace(principal, via="token"), valid_until)
        return IssuedToken(token, now, valid_until)

    def lookup(self, token: str) -> Principal | None:
        """The principal of a live session, or None (unknown, malformed or expired)."""
        if not token or len(token) > MAX_TOKEN_CHARS:
            return None
        now = self._clock()
        digest = _digest(token)
        with self._lock:
            session = self._sessions.get(digest)
            if session is None:
                return None
            if now >= session.valid_until:
                del self._sessions[digest]
                return None
            return session.principal

    def revoke(self, token: str) -> bool:
        with self._lock:
            return self._sessions.pop(_digest(token), None) is not None

    def __len__(self) -> int:
        with self._lock:
            self._purge(self._clock())
            return len(self._sessions)

    def _purge(self, now: float) -> None:
        expired = [digest for digest, session in self._sessions.items() if now >= session.valid_until]
        for digest in expired:
            del self._sessions[digest]
