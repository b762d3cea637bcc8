"""Problems and ConfigError: how a problem is named (path), shown (value) and explained (expectation)."""

from __future__ import annotations

from typing import Annotated, Literal

import pytest
from pydantic import Field, ValidationError, field_validator

from agent.core.config import ConfigError, Problem, SecretRef
from agent.core.config.errors import format_location, problems_from, shorten
from agent.core.config.schema_base import Name, Strict


def test_problem_str_with_value() -> None:
    problem = Problem("outbox.max_bytes", "Input should be a valid integer", "'5'")
    assert str(problem) == "outbox.max_bytes: Input should be a valid integer (found '5')"


def test_problem_str_without_value() -> None:
    assert (
        str(Problem("agent.device_id", "required key is missing"))
        == "agent.device_id: required key is missing"
    )


def test_problem_of_the_whole_file() -> None:
    assert str(Problem("", "cannot read: Is a directory")) == "(file): cannot read: Is a directory"


def test_problem_is_a_frozen_value() -> None:
    assert Problem("a", "b", "c") == Problem("a", "b", "c")
    with pytest.raises(AttributeError):
        Problem("a", "b").path = "c"  # type: ignore[misc]


def test_config_error_lists_every_problem() -> None:
    problems = [Problem("agent", "required table is missing"), Problem("http.threads", "too few", "1")]
    error = ConfigError("/etc/msec-agent/agent.toml", problems)
    assert error.source == "/etc/msec-agent/agent.toml"
    assert error.problems == problems
    assert str(error) == (
        "/etc/msec-agent/agent.toml: 2 problem(s)\n"
        "  agent: required table is missing\n"
        "  http.threads: too few (found 1)"
    )
    assert isinstance(error, Exception)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("5", "'5'"),
        (5, "5"),
        (None, "None"),
        (True, "True"),
        ([1, "a"], "[1, 'a']"),
        ("x" * 78, repr("x" * 78)),  # exactly 80 characters with its quotes: kept whole
        ("x" * 79, "'" + "x" * 76 + "..."),
    ],
)
def test_shorten(value: object, text: str) -> None:
    assert shorten(value) == text
    assert len(shorten(value)) <= 80


def test_shorten_with_a_limit() -> None:
    assert shorten("abcdefghij", 8) == "'abcd..."


@pytest.mark.parametrize(
    ("location", "prefix", "path"),
    [
        ((), "", ""),
        ((), "agent", "agent"),
        (("device_id",), "agent", "agent.device_id"),
        (("device_id",), "", "device_id"),
        ((0,), "drivers", "drivers[0]"),
        ((3, "rate_hz"), "drivers", "drivers[3].rate_hz"),
        (("record_kinds", 1), "outbox", "outbox.record_kinds[1]"),
        (("files", 0), "model", "model.files[0]"),
        (("a", 0, 1, "b"), "", "a[0][1].b"),
        ((0, "x"), "", "[0].x"),
    ],
)
def test_format_location(location: tuple[int | str, ...], prefix: str, path: str) -> None:
    assert format_location(location, prefix) == path


class Inner(Strict):
    level: Literal["low", "high"] = "low"


class Sample(Strict):
    count: int = 0
    name: Name = "x"
    items: list[int] = []
    inner: Inner = Inner()
    tables: dict[Name, Inner] = {}
    either: int | Name = 0
    token: SecretRef | None = None
    limit: Annotated[int, Field(ge=1)] = 1
    required: str
    path: str = "/"

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("expected an absolute path")
        return value


def problems_of(data: dict[str, object], prefix: str = "section") -> list[Problem]:
    with pytest.raises(ValidationError) as caught:
        Sample.model_validate(data)
    return problems_from(caught.value, prefix)


def test_strict_type_error_shows_the_value() -> None:
    assert problems_of({"required": "r", "count": "5"}) == [
        Problem("section.count", "Input should be a valid integer", "'5'")
    ]


def test_missing_key_has_no_value() -> None:
    assert problems_of({}) == [Problem("section.required", "required key is missing")]


def test_unknown_key_is_a_typo_and_its_value_is_hidden() -> None:
    assert problems_of({"required": "r", "cuont": "hunter2"}) == [
        Problem("section.cuont", "unknown key (a typo?)")
    ]


def test_value_error_prefix_is_removed() -> None:
    assert problems_of({"required": "r", "path": "rel"}) == [
        Problem("section.path", "expected an absolute path", "'rel'")
    ]


def test_custom_error_message_is_kept() -> None:
    [problem] = problems_of({"required": "r", "name": "a b"})
    assert problem == Problem("section.name", "expected 1-64 letters, digits, '_', '.', ':' or '-'", "'a b'")


def test_nested_list_and_table_paths() -> None:
    found = problems_of({"required": "r", "items": [1, "2"], "inner": {"level": "mid"}})
    assert found == [
        Problem("section.items[1]", "Input should be a valid integer", "'2'"),
        Problem("section.inner.level", "Input should be 'low' or 'high'", "'mid'"),
    ]


def test_bad_dict_key_is_named_by_the_key() -> None:
    [problem] = problems_of({"required": "r", "tables": {"bad key": {}}})
    assert problem == Problem(
        "section.tables.bad key", "expected 1-64 letters, digits, '_', '.', ':' or '-'", "'bad key'"
    )


def test_validator_names_are_not_part_of_the_path() -> None:
    found = problems_of({"required": "r", "either": "a b"})
    assert [p.path for p in found if "letters" in p.message] == ["section.either"]
    assert not any("function-" in p.path for p in found)


def test_secret_reference_error_hides_the_value() -> None:
    [problem] = problems_of({"required": "r", "token": "hunter2"})
    assert problem.path == "section.token"
    assert problem.value is None
    assert "hunter2" not in str(problem)


def test_long_value_is_shortened() -> None:
    [problem] = problems_of({"required": "r", "count": "9" * 500})
    assert problem.value == "'" + "9" * 76 + "..."


def test_problems_without_prefix() -> None:
    with pytest.raises(ValidationError) as caught:
        Inner.model_validate({"level": 1})
    assert problems_from(caught.value) == [Problem("level", "Input should be 'low' or 'high'", "1")]


def test_every_problem_is_kept_in_order() -> None:
    found = problems_of({"count": "1", "limit": 0, "name": ""})
    assert [p.path for p in found] == ["section.count", "section.name", "section.limit", "section.required"]
