"""Callback URL checks (SSRF) without a network: names that resolve to loopback are found by resolving."""

from __future__ import annotations

import pytest

from agent.northbound.sensinact.callbacks import AllowList, CallbackRefused, callback_path, check


def test_public_and_private_addresses_pass_by_default() -> None:
    for url in ("http://8.8.8.8/x", "https://10.1.2.3:8443/cb?x=1", "http://[2001:db8::1]/x"):
        target = check(url, AllowList.of([]))
        assert target.address in url


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/x",
        "http://localhost/x",
        "http://[::ffff:127.0.0.1]/x",
        "http://169.254.1.1/x",
        "http://[fe80::1]/x",
        "http://0.0.0.0/",
        "http://240.0.0.1/",
        "file:///etc/passwd",
        "http://a b/",
        "http://h\r\nX: y/",
        "http://[::1/",
        "x" * 5000,
    ],
)
def test_dangerous_targets_are_refused(url) -> None:
    with pytest.raises(CallbackRefused):
        check(url, AllowList.of([]))


def test_allow_list_by_address_network_and_name() -> None:
    assert check("http://127.0.0.1:9/x", AllowList.of(["127.0.0.1"])).port == 9
    assert check("http://127.0.0.5/x", AllowList.of(["127.0.0.0/8"])).address == "127.0.0.5"
    assert check("http://localhost/x", AllowList.of(["localhost"])).host == "localhost"
    with pytest.raises(CallbackRefused):
        check("http://8.8.8.8/x", AllowList.of(["10.0.0.0/8"], only_listed=True))


def test_callback_path_appends_the_id_once() -> None:
    assert callback_path(check("http://8.8.8.8", AllowList.of([])), "id1") == "/id1"
    assert callback_path(check("http://8.8.8.8/cb/", AllowList.of([])), "id1") == "/cb/id1"
    assert callback_path(check("http://8.8.8.8/cb?k=v", AllowList.of([])), "id1") == "/cb/id1?k=v"
