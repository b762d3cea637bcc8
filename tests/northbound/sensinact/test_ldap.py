"""The LDAP filter parser and matcher on their own."""

from __future__ import annotations

import pytest

from agent.core.model import Model, ResourceSpec, value_type
from agent.northbound.sensinact import ldap


def provider():
    model = Model()
    model.ensure_resource(
        "bin42", "fill", "level", ResourceSpec(value_type("int"), metadata={"unit": "%"}), value=73
    )
    model.ensure_resource("bin42", "fill", "tags", ResourceSpec(value_type("array")), value=["a", "b(c)"])
    model.ensure_resource("bin42", "fill", "full", ResourceSpec(value_type("boolean")), value=False)
    model.ensure_resource("bin42", "fill", "note", ResourceSpec(value_type("string")))
    return model.provider("bin42")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("(fill.level=73)", True),
        ("(fill.level=73.0)", True),
        ("(fill.level>=74)", False),
        ("(fill.level<=73)", True),
        ("(level~=73.00001)", True),
        ("(fill.level.value=73)", True),
        ("(fill.level.unit=%)", True),
        ("(fill.level=abc)", False),
        ("(fill.tags=a)", True),
        ("(fill.tags=b\\28c\\29)", True),  # RFC 4515 hex escapes
        ("(fill.tags=b\\(c\\))", True),  # OSGi escapes
        ("(fill.tags=b*)", True),
        ("(fill.full=false)", True),
        ("(fill.full=0)", True),
        ("(fill.note=null)", True),
        ("(fill.note=*)", False),
        ("(fill.level=*)", True),
        ("(PROVIDER=bin*)", True),
        ("(PROVIDER=*42)", True),
        ("(MODEL=bin42)", True),
        ("(PACKAGE=*)", False),
        ("(admin.friendlyName~= BIN42 )", True),
        ("(&(PROVIDER=bin42)(|(fill.level>=100)(!(fill.full=true))))", True),
        ("( & (PROVIDER=bin42) (fill.level=73) )", True),
        ("(nothing.here=1)", False),
        ("(!(nothing.here=1))", True),
    ],
)
def test_matching(text: str, expected: bool) -> None:
    assert ldap.matches(ldap.parse(text), provider()) is expected


@pytest.mark.parametrize(
    ("text", "position"),
    [
        ("", 0),
        ("(", 1),
        ("(a", 2),
        ("(a=b", 4),
        ("(a=b)(c=d)", 5),
        ("(|)", 2),
        ("(!)", 2),
        ("(a~b)", 3),
        ("(a<=b*)", 6),
        ("(a=(b)", 3),
        ("'(a=b'", 5),  # positions count in the text as sent
    ],
)
def test_syntax_errors_name_the_position(text: str, position: int) -> None:
    with pytest.raises(ldap.LdapSyntaxError) as caught:
        ldap.parse(text)
    assert caught.value.position == position
    assert f"position {position}" in str(caught.value)


def test_limits() -> None:
    with pytest.raises(ldap.LdapSyntaxError):
        ldap.parse("(&" * 100 + "(a=b)" + ")" * 100)
    with pytest.raises(ldap.LdapSyntaxError):
        ldap.parse("(a=" + "x" * 10_000 + ")")
