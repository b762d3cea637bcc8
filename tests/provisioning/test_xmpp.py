"""The device's account and nodes against a real Prosody: in-band registration (and its refusals), the
admin commands (set a password, delete a user), nodes owned by the device, unreachable servers."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from msec_provision.errors import ProvisioningError
from msec_provision.fleet import XmppSettings
from msec_provision.xmpp import AccountExists, Xmpp, device_nodes

from tests.northbound.soxfire.prosody import Prosody, free_port

from .conftest import ADMIN_PASSWORD


def settings(server: Prosody, ca: Path, port: int | None = None, tmp: Path | None = None) -> XmppSettings:
    password = tmp / "admin.pass" if tmp else None
    if password:
        password.write_text(ADMIN_PASSWORD)
    return XmppSettings(
        server.domain, "127.0.0.1", port or server.port, server.pubsub, ca, f"sox@{server.domain}",
        f"file:{password}", "127.0.0.1", port or server.port,
    )  # fmt: skip


def test_register_login_repair_nodes_delete(xmpp_server: Prosody, pki: Any, tmp_path: Path) -> None:
    xmpp = Xmpp(settings(xmpp_server, pki.ca, tmp=tmp_path))
    jid = f"truck-7@{xmpp_server.domain}"

    async def scenario() -> None:
        await xmpp.register(jid, "first")
        assert await xmpp.can_login(jid, "first")
        with pytest.raises(AccountExists):
            await xmpp.register(jid, "second")  # exists, with another password
        with pytest.raises(AccountExists):
            await xmpp.register(jid, "first")  # exists, with this password
        assert not await xmpp.can_login(jid, "second")
        async with xmpp.admin() as admin:
            await xmpp.set_password(admin, jid, "second")
            assert await xmpp.grant_nodes(admin, ("truck-7",), jid, "owner") == 2
            assert await xmpp.grant_nodes(admin, ("truck-7",), jid, "owner") == 0  # idempotent
            assert await xmpp.latest_sealed(admin, "truck-7") == []
            await xmpp.grant_nodes(admin, ("truck-7", "gone"), jid, "none")
            await xmpp.delete_user(admin, jid)
            await xmpp.delete_user(admin, jid)  # already gone: still fine (revoke is idempotent)
        assert await xmpp.can_login(jid, "second") is False

    asyncio.run(scenario())
    assert device_nodes(("a", "b")) == ["a_meta", "a_data", "b_meta", "b_data"]


def test_registration_refused(prosody_factory: Any, pki: Any, tmp_path: Path) -> None:
    closed = prosody_factory("closed", registration=False, admin_commands=True).start()
    xmpp = Xmpp(settings(closed, pki.ca, tmp=tmp_path))
    with pytest.raises(ProvisioningError, match="refused to register truck-7@") as caught:
        asyncio.run(xmpp.register(f"truck-7@{closed.domain}", "pw"))
    assert "enable in-band registration" in str(caught.value)


def test_admin_commands_refused_to_a_non_admin(xmpp_server: Prosody, pki: Any, tmp_path: Path) -> None:
    (tmp_path / "plain.pass").write_text("plainpass")
    plain = replace(
        settings(xmpp_server, pki.ca),
        admin_jid="plain@localhost",
        admin_password_ref=f"file:{tmp_path / 'plain.pass'}",
    )
    xmpp = Xmpp(plain)

    async def scenario() -> None:
        async with xmpp.admin() as admin:
            await xmpp.delete_user(admin, f"sox@{xmpp_server.domain}")

    with pytest.raises(ProvisioningError, match="XMPP admin command delete-user"):
        asyncio.run(scenario())
    assert asyncio.run(xmpp.can_login("sox@localhost", ADMIN_PASSWORD))  # the admin is still there


def test_wrong_admin_password_and_unreachable_server(xmpp_server: Prosody, pki: Any, tmp_path: Path) -> None:
    (tmp_path / "admin.pass").write_text("wrong")
    wrong = replace(settings(xmpp_server, pki.ca), admin_password_ref=f"file:{tmp_path / 'admin.pass'}")
    xmpp = Xmpp(wrong)

    async def admin() -> None:
        async with xmpp.admin():
            pass

    with pytest.raises(ProvisioningError, match="refused") as caught:
        asyncio.run(admin())
    assert "wrong" not in str(caught.value)
    nowhere = Xmpp(settings(xmpp_server, pki.ca, port=free_port(), tmp=tmp_path))
    with pytest.raises(ProvisioningError, match="XMPP server"):
        asyncio.run(nowhere.can_login("truck-7@localhost", "pw"))
    with pytest.raises(ProvisioningError, match="unreachable"):
        asyncio.run(nowhere.register("truck-7@localhost", "pw"))
