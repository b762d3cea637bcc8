"""Configuration problems, each named by the path of the key, the value found and what was expected."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

# Error types whose input must never be echoed back: it may be a secret typed inline by mistake. An
# unknown key may be a misspelt secret key ("pasword = ..."); its path says enough to find the typo.
REDACTED_ERROR_TYPES = frozenset({"secret_reference", "extra_forbidden"})


@dataclass(frozen=True, slots=True)
class Problem:
    path: str  # "outbox.max_bytes", "drivers[1].port", "model.providers.truck..." ("" for the whole file)
    message: str  # what was expected
    value: str | None = None  # repr of what was found, shortened; None when absent or redacted

    def __str__(self) -> str:
        where = self.path or "(file)"
        found = f" (found {self.value})" if self.value is not None else ""
        return f"{where}: {self.message}{found}"


class ConfigError(Exception):
    """A file that cannot be used, with every problem found in it."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: {len(problems)} problem(s)\n" + "\n".join(f"  {p}" for p in problems))


def shorten(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def format_location(location: tuple[int | str, ...], prefix: str = "") -> str:
    path = prefix
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def problems_from(error: ValidationError, prefix: str = "") -> list[Problem]:
    problems = []
    for item in error.errors(include_url=False):
        # pydantic names union branches and tagged choices in the location; they say nothing to a user.
        # It also ends the location of a bad dict key with "[key]" ("providers.bad name.[key]"): the path
        # without it names the key, and the value found shows it.
        location = tuple(
            p
            for p in item["loc"]
            if not (isinstance(p, str) and (p == "[key]" or p.startswith(("function-", "tagged-"))))
        )
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key (a typo?)"
        elif item["type"] == "missing":
            message = "required key is missing"
        value = None
        if item["type"] not in REDACTED_ERROR_TYPES and item["type"] != "missing":
            value = shorten(item.get("input"))
        problems.append(Problem(format_location(location, prefix), message, value))
    return problems
