"""Regular expressions written by clients (conditions, selectors, `(regex)` path segments), run with a
time budget.

Python's `re` backtracks: a pattern such as `(a|a)*b` against a 30-character name runs for seconds and
holds a server thread (ReDoS). The `regex` module takes a timeout per match; a match that runs out of
time counts as no match, and is logged. Patterns are also bounded in length.
"""

from __future__ import annotations

import logging

import regex

log = logging.getLogger("agent.northbound.sensinact")

MAX_PATTERN = 256
MATCH_TIMEOUT = 0.05  # seconds per match: ample for any sane pattern on a value or a name


class PatternError(ValueError):
    """A pattern that cannot be used; the message is safe to show to the client."""


class ClientPattern:
    __slots__ = ("_compiled", "text")

    def __init__(self, text: str) -> None:
        if not isinstance(text, str) or len(text) > MAX_PATTERN:
            raise PatternError(f"a pattern of at most {MAX_PATTERN} characters is expected")
        try:
            self._compiled = regex.compile(text, regex.VERSION0)
        except (regex.error, ValueError, OverflowError, RecursionError) as error:
            raise PatternError(f"bad regex: {error}") from None
        self.text = text

    def fullmatch(self, value: str) -> bool:
        return self._run(self._compiled.fullmatch, value)

    def search(self, value: str) -> bool:
        return self._run(self._compiled.search, value)

    def _run(self, method, value: str) -> bool:  # type: ignore[no-untyped-def]
        try:
            return method(value, timeout=MATCH_TIMEOUT) is not None
        except TimeoutError:
            log.warning(
                "a client's regex ran out of time and counts as no match", extra={"pattern": self.text[:80]}
            )
            return False
