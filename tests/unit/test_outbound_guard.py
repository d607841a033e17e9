"""The outbound guard: which addresses the `http` element may reach, decided before connecting.

Name resolution is a fake here (a dict), and every socket is forbidden: a refusal
must come before any connection is even attempted.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import httpcore
import pytest

from domain.ports import EffectFailed
from infra.http_client import HttpxRequester
from infra.outbound_guard import GuardedNetworkBackend, OutboundGuard, OutboundRefused, refusal

DNS = {
    "api.example": ["93.184.216.34"],
    "localhost": ["127.0.0.1", "::1"],
    "rebind.example": ["93.184.216.34", "10.0.0.7"],
    "metadata.example": ["169.254.169.254"],
    "db.internal": ["10.1.2.3"],
    "a.corp.example": ["192.168.7.7"],
    "corp.example": ["192.168.7.8"],
    "v6.example": ["2606:4700::1111", "2606:4700::1001"],
}


async def fake_resolve(host: str, port: int) -> list[str]:
    if host not in DNS:
        raise EffectFailed(f"cannot resolve {host!r}")
    return DNS[host]


def guard(*allow: str) -> OutboundGuard:
    return OutboundGuard(allow, resolve=fake_resolve)


class RecordingBackend(httpcore.AsyncNetworkBackend):
    """Stands in for the real network: records where it was asked to connect."""

    def __init__(self, unreachable: frozenset[str] = frozenset()) -> None:
        self.connects: list[tuple[str, int]] = []
        self._unreachable = unreachable

    async def connect_tcp(self, host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        self.connects.append((host, port))
        if host in self._unreachable:
            raise httpcore.ConnectError(f"{host} unreachable")
        return f"stream to {host}"

    async def sleep(self, seconds: float) -> None:
        pass


@pytest.fixture(autouse=True)
def no_sockets(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the guard let a connection be attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


# --- the address policy -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("100.64.0.1", "not a public address"),
        ("fc00::1", "private"),
        ("::ffff:127.0.0.1", "an IPv6 form of 127.0.0.1, a loopback address"),
        ("::ffff:10.0.0.1", "an IPv6 form of 10.0.0.1, a private address"),
        ("64:ff9b::a00:1", "an IPv6 form of 10.0.0.1"),
        ("2002:7f00:1::1", "an IPv6 form of 127.0.0.1"),
    ],
)
def test_inside_and_special_addresses_are_refused(address: str, reason: str) -> None:
    why = refusal(ipaddress.ip_address(address))

    assert why is not None and reason in why


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "1.1.1.1", "2606:4700::1111"])
def test_public_unicast_addresses_pass(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is None


# --- resolving and checking -------------------------------------------------------------


async def test_a_public_host_answers_the_addresses_it_resolved_to() -> None:
    assert await guard().addresses("v6.example", 443) == DNS["v6.example"]


@pytest.mark.parametrize(
    ("host", "shown"),
    [
        ("127.0.0.1", "127.0.0.1: a loopback address"),
        ("10.0.0.1", "10.0.0.1: a private address"),
        ("169.254.169.254", "169.254.169.254: a cloud metadata address"),
        ("localhost", "'localhost' (127.0.0.1): a loopback address"),
        ("metadata.example", "'metadata.example' (169.254.169.254): a cloud metadata address"),
    ],
)
async def test_a_host_on_the_inside_is_refused_naming_the_address(host: str, shown: str) -> None:
    with pytest.raises(OutboundRefused) as refused:
        await guard().addresses(host, 80)

    assert f"refused to connect to {shown}" in str(refused.value)
    assert "LOOM_HTTP_ALLOW" in str(refused.value)


async def test_a_host_is_refused_when_any_of_its_addresses_is_on_the_inside() -> None:
    with pytest.raises(OutboundRefused, match=r"10\.0\.0\.7"):
        await guard().addresses("rebind.example", 80)


async def test_an_address_literal_is_checked_without_asking_dns() -> None:
    async def no_dns(host: str, port: int) -> list[str]:
        raise AssertionError("an address literal went to DNS")

    strict = OutboundGuard((), resolve=no_dns)

    assert await strict.addresses("93.184.216.34", 80) == ["93.184.216.34"]
    assert await strict.addresses("[2606:4700::1111]", 80) == ["2606:4700::1111"]
    with pytest.raises(OutboundRefused):
        await strict.addresses("[::1]", 80)


async def test_an_allowed_cidr_lets_its_addresses_through_and_nothing_else() -> None:
    allowing = guard("127.0.0.0/8", "10.1.0.0/16")

    assert await allowing.addresses("127.0.0.1", 80) == ["127.0.0.1"]
    assert await allowing.addresses("db.internal", 5432) == ["10.1.2.3"]
    with pytest.raises(OutboundRefused, match="::1"):
        await allowing.addresses("localhost", 80)  # ::1 is not in 127.0.0.0/8
    with pytest.raises(OutboundRefused):
        await allowing.addresses("10.0.0.1", 80)
    with pytest.raises(OutboundRefused):
        await allowing.addresses("169.254.169.254", 80)


async def test_an_allowed_host_name_is_allowed_whatever_it_resolves_to() -> None:
    allowing = guard("DB.internal", "*.corp.example", "localhost")

    assert await allowing.addresses("db.internal", 5432) == ["10.1.2.3"]
    assert await allowing.addresses("a.corp.example", 80) == ["192.168.7.7"]
    assert await allowing.addresses("localhost", 80) == ["127.0.0.1", "::1"]
    with pytest.raises(OutboundRefused):
        await allowing.addresses("corp.example", 80)  # the wildcard is for subdomains
    with pytest.raises(OutboundRefused):
        await allowing.addresses("127.0.0.1", 80)  # a name allows the name, not the address


async def test_a_host_that_does_not_resolve_fails_without_a_refusal() -> None:
    with pytest.raises(EffectFailed, match="cannot resolve") as failed:
        await guard().addresses("nowhere.example", 80)

    assert not isinstance(failed.value, OutboundRefused)


# --- connecting only to what was checked ----------------------------------------------------


async def test_the_backend_connects_to_the_checked_address_never_to_the_name() -> None:
    inner = RecordingBackend()
    backend = GuardedNetworkBackend(guard(), inner)

    stream = await backend.connect_tcp("api.example", 443)

    assert stream == "stream to 93.184.216.34"
    assert inner.connects == [("93.184.216.34", 443)]


async def test_the_backend_refuses_before_asking_the_network_for_a_connection() -> None:
    inner = RecordingBackend()
    backend = GuardedNetworkBackend(guard(), inner)

    for host in ("127.0.0.1", "10.0.0.1", "169.254.169.254", "localhost", "rebind.example"):
        with pytest.raises(OutboundRefused):
            await backend.connect_tcp(host, 80)

    assert inner.connects == []


async def test_the_backend_tries_the_next_checked_address_when_one_is_unreachable() -> None:
    inner = RecordingBackend(unreachable=frozenset({"2606:4700::1111"}))
    backend = GuardedNetworkBackend(guard(), inner)

    stream = await backend.connect_tcp("v6.example", 443)

    assert stream == "stream to 2606:4700::1001"
    assert inner.connects == [("2606:4700::1111", 443), ("2606:4700::1001", 443)]


async def test_the_backend_refuses_unix_sockets() -> None:
    with pytest.raises(OutboundRefused):
        await GuardedNetworkBackend(guard(), RecordingBackend()).connect_unix_socket("/run/x")


# --- the requester behind it ------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/",
        "http://10.0.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://localhost:9/",
        "https://rebind.example/",
    ],
)
async def test_the_requester_refuses_inside_urls_with_the_guards_reason(url: str) -> None:
    requester = HttpxRequester(guard=guard())
    try:
        with pytest.raises(OutboundRefused, match="refused to connect"):
            await requester.request({"method": "GET", "url": url}, timeout_s=2)
    finally:
        await requester.close()
