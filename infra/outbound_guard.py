"""The outbound guard: keeps the `http` element from reaching the inside of the network.

A process author controls the URL an `http` element calls, so without a guard a
process could read a cloud metadata service or an internal admin page. The guard
resolves the host itself, refuses when any address it resolves to is loopback,
private, link-local, multicast, reserved, unspecified, shared (CGNAT) or a known
metadata address, and hands back the checked addresses; the network backend below
then connects to exactly those addresses, so a DNS answer that changes between the
check and the connection (a rebind) never reaches a socket. TLS still verifies the
certificate against the host name (SNI and the Host header keep the name).

`LOOM_HTTP_ALLOW` lists what is allowed anyway: host names (`api.internal`, or
`*.internal` for every subdomain) and addresses or CIDRs (`127.0.0.1`, `10.0.0.0/8`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import httpcore

from domain.ports import EffectFailed

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[list[str]]]

METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean …
        "169.254.170.2",  # AWS ECS task credentials
        "100.100.100.200",  # Alibaba Cloud
        "fd00:ec2::254",  # AWS over IPv6
    )
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class OutboundRefused(EffectFailed):
    """The guard refused a destination; no connection was attempted."""


def refusal(address: IPAddress) -> str | None:
    """Why `address` may not be called (None when it is a public unicast address)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        inner = None if embedded is None else _own_refusal(embedded)
        if inner is not None:
            return f"an IPv6 form of {embedded}, {inner}"
    return _own_refusal(address)


def _own_refusal(address: IPAddress) -> str | None:
    checks = (
        (address in METADATA_ADDRESSES, "a cloud metadata address"),
        (address.is_loopback, "a loopback address"),
        (address.is_unspecified, "the unspecified address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (address.is_reserved, "a reserved address"),
        (address.is_private, "a private address"),
        (not address.is_global, "not a public address"),
    )
    return next((reason for hit, reason in checks if hit), None)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (mapped, 6to4, Teredo, NAT64), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


class OutboundGuard:
    """Decides which hosts and addresses the `http` element may connect to."""

    def __init__(self, allow: Iterable[str] = (), resolve: Resolver | None = None) -> None:
        self._networks: list[IPNetwork] = []
        self._hosts: set[str] = set()
        self._suffixes: list[str] = []
        for entry in allow:
            self._add(entry.strip())
        self._resolve = resolve or _resolve

    def _add(self, entry: str) -> None:
        if not entry:
            return
        try:
            self._networks.append(ipaddress.ip_network(entry, strict=False))
            return
        except ValueError:
            pass
        name = entry.lower().rstrip(".")
        if name.startswith("*."):
            self._suffixes.append(name[1:])
        else:
            self._hosts.add(name)

    def host_allowed(self, host: str) -> bool:
        """Whether `host` is listed by name (then every address it resolves to is allowed)."""
        name = host.lower().rstrip(".")
        return name in self._hosts or any(name.endswith(s) for s in self._suffixes)

    def address_allowed(self, address: IPAddress) -> bool:
        return refusal(address) is None or any(
            address.version == net.version and address in net for net in self._networks
        )

    async def addresses(self, host: str, port: int) -> list[str]:
        """Resolve `host` and check every address; answers the ones to connect to.

        Raises OutboundRefused when any address is not allowed, EffectFailed when
        the host does not resolve.
        """
        literal = _literal(host)
        resolved = [str(literal)] if literal is not None else await self._resolve(host, port)
        if not resolved:
            raise EffectFailed(f"{host!r} did not resolve to any address")
        if literal is None and self.host_allowed(host):
            return resolved
        for text in resolved:
            address = ipaddress.ip_address(text.split("%", 1)[0])
            if not self.address_allowed(address):
                shown = host if literal is not None else f"{host!r} ({address})"
                raise OutboundRefused(
                    f"refused to connect to {shown}: {refusal(address)}; "
                    "list it in LOOM_HTTP_ALLOW to allow it"
                )
        return resolved


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


async def _resolve(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise EffectFailed(f"cannot resolve {host!r}: {exc}") from None
    seen: dict[str, None] = {}
    for *_, sockaddr in infos:
        seen.setdefault(str(sockaddr[0]), None)
    return list(seen)


class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that connects only to addresses the guard checked.

    The host httpcore asks for is resolved and checked here, and the inner backend
    is given the checked IP address, never the name; TLS is started by httpcore
    afterwards with the original host name as SNI.
    """

    def __init__(self, guard: OutboundGuard, inner: httpcore.AsyncNetworkBackend | None = None):
        self._guard = guard
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await asyncio.wait_for(self._guard.addresses(host, port), timeout)
        error: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None
        raise error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise OutboundRefused("the http element does not connect to unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)
