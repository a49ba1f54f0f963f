"""Where an upstream request may go, what it may carry, and which addresses it connects to.

One parser (`parse_url`) reads every upstream URL, once: the transport hands libcurl the
canonical URL rebuilt from that parse, so the check and the connection cannot read a URL
differently (`http://a?@b/`, `http://a\\@b/`, `http://2130706433/` ...). A host that must
be public is resolved once, every address is checked, and the connection is pinned to
exactly those addresses (`Route.addresses`: libcurl's resolve override, and a refusal of
any other address at connect time), so a DNS answer that changes between check and
connect (rebinding) reaches nothing new. Header names and values are held to what an HTTP
header can carry, so no value can end a header line and start another request.
"""
from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from functools import lru_cache
from typing import Mapping, Sequence

from app.providers.base import Target

DEFAULT_PORTS = {"http": 80, "https": 443}
METADATA_HOSTS = frozenset({"metadata", "metadata.google.internal", "metadata.goog",
                            "instance-data", "instance-data.ec2.internal"})
# Characters RFC 3986 allows in a URL; no controls, spaces, backslashes or non-ASCII.
_URL = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")
_HOST_NAME = re.compile(r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*\.?")
_NUMERIC_LABEL = re.compile(r"(0x[0-9a-f]*|[0-9]+)\.?")
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")   # RFC 9110 token
_HEADER_VALUE = re.compile(r"[\x20-\x7e\t]*")  # printable ASCII, spaces and tabs
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class UnsafeUpstream(ValueError):
    """A URL, header or address this proxy will not send a request to or with."""


@dataclass(frozen=True)
class Destination:
    scheme: str
    host: str     # lower case; an IPv6 address without brackets
    port: int
    target: str   # path and query, as the request line carries them

    @property
    def origin(self) -> tuple[str, str, int]:
        return self.scheme, self.host, self.port

    @property
    def authority(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.authority}{self.target}"


@dataclass(frozen=True)
class Route:
    """A parsed request URL and how to connect to it."""

    destination: Destination
    addresses: tuple[str, ...] = ()  # the only addresses it may connect to (checked ones)
    isolated: bool = False           # a client's own connection: never pooled with others

    @property
    def pooled(self) -> bool:
        """Pinned routes are isolated too: their pins live in the connection's DNS cache."""
        return not (self.isolated or self.addresses)


@lru_cache(maxsize=1024)
def parse_url(url: str) -> Destination:
    """The one URL parser: an absolute http(s) URL without user info, with a host name, a
    dotted IPv4 address or a bracketed IPv6 address; anything ambiguous is refused."""
    if not isinstance(url, str) or not _URL.fullmatch(url):
        raise UnsafeUpstream("must be a URL of printable ASCII characters (no spaces, "
                             "control characters or backslashes)")
    scheme, separator, rest = url.partition("://")
    scheme = scheme.lower()
    if not separator or scheme not in DEFAULT_PORTS:
        raise UnsafeUpstream("must be an http:// or https:// URL")
    end = min((at for at in map(rest.find, "/?#") if at >= 0), default=len(rest))
    authority, tail = rest[:end], rest[end:].partition("#")[0]
    if "@" in authority:
        raise UnsafeUpstream("must not carry a user name or password")
    host, port = _host_and_port(authority, DEFAULT_PORTS[scheme])
    if {".", ".."} & set(tail.partition("?")[0].split("/")):
        # libcurl would squash them: a model name could climb out of its path
        raise UnsafeUpstream("has . or .. path segments")
    return Destination(scheme, host, port, tail if tail.startswith("/") else f"/{tail}")


def _host_and_port(authority: str, default_port: int) -> tuple[str, int]:
    if authority.startswith("["):
        inside, closed, port_part = authority[1:].partition("]")
        try:
            if not closed or "%" in inside:
                raise ValueError
            host = ipaddress.IPv6Address(inside).compressed
        except ValueError:
            raise UnsafeUpstream("has an invalid IPv6 address") from None
        if port_part and not port_part.startswith(":"):
            raise UnsafeUpstream("has an invalid port")
        port_text = port_part[1:]
    else:
        host, _, port_text = authority.lower().partition(":")
        if not _HOST_NAME.fullmatch(host):
            raise UnsafeUpstream("must name a host")
        if _NUMERIC_LABEL.fullmatch(host.rstrip(".").rpartition(".")[2]):
            try:  # only the dotted form: 2130706433, 0x7f.1 or 0177.0.0.1 read differently
                host = str(ipaddress.IPv4Address(host))
            except ValueError:
                raise UnsafeUpstream("has an IPv4 address that is not in dotted form") from None
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise UnsafeUpstream("has an invalid port")
    return host, int(port_text)


def header_lines(headers: Mapping[str, str]) -> list[str]:
    """`Name: value` lines for libcurl; a name that is not a token, or a value with control
    characters, line breaks or non-ASCII, is refused (it could end the header and smuggle
    another one, or another request). The value itself is never echoed: it may be a key."""
    lines = []
    for name, value in headers.items():
        if not (isinstance(name, str) and _HEADER_NAME.fullmatch(name)):
            raise UnsafeUpstream("a header name is not an HTTP token")
        if not header_safe(value):
            raise UnsafeUpstream(f"the value of header {name} holds characters a header "
                                 f"cannot carry")
        lines.append(f"{name}: {value}")
    return lines


def header_safe(value: object) -> bool:
    """True for a string an HTTP header value can hold as is: printable ASCII and tabs."""
    return isinstance(value, str) and _HEADER_VALUE.fullmatch(value) is not None


def public_addresses(destination: Destination,
                     networks: Sequence[Sequence] = ()) -> tuple[str, ...]:
    """Resolve the host once and return its addresses, each of which must be public unless
    every deployment's allowed networks (`networks`, one list per deployment) hold it."""
    host = destination.host.rstrip(".")
    if host in METADATA_HOSTS:
        raise UnsafeUpstream(f"{host} is a cloud metadata service")
    try:
        found = socket.getaddrinfo(host, destination.port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise UnsafeUpstream(f"host {host} cannot be resolved") from None
    addresses = tuple(dict.fromkeys(entry[4][0].split("%")[0] for entry in found))
    for text in addresses:
        address = ipaddress.ip_address(text)
        if networks and all(any(address in n for n in allowed) for allowed in networks):
            continue
        if not is_public(address):
            raise UnsafeUpstream(f"host {host} resolves to {address}, which is not a public "
                                 f"address (loopback, link-local, private or reserved)")
    return addresses


def is_public(address) -> bool:
    """Globally routable, and so is any IPv4 address an IPv6 one carries (mapped, NAT64,
    6to4, Teredo); IPv4-compatible (::a.b.c.d) and local-use NAT64 forms are reserved."""
    if address.version == 6:
        if address.ipv4_mapped is not None:
            return is_public(address.ipv4_mapped)
        if address in _NAT64:
            return is_public(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        carried = [address.sixtofour, address.teredo[1] if address.teredo else None]
        if not all(is_public(inner) for inner in carried if inner is not None):
            return False
    return address.is_global and not address.is_reserved and not address.is_multicast


def route(url: str, target: Target, documented_base: str | None) -> Route:
    """How `url` may be fetched for `target`. Same origin as the deployment's api_base: as
    that base is (a client's api_base at the addresses checked when it arrived). The
    provider's documented host: after the public-address check. Anything else is refused,
    so an upstream cannot aim a follow-up URL at another host."""
    destination = parse_url(url)
    if destination.origin == parse_url(target.api_base).origin:
        return Route(destination, target.pinned_addresses, target.own_connection)
    if documented_base and destination.origin == parse_url(documented_base).origin:
        return Route(destination, public_addresses(destination), isolated=True)
    raise UnsafeUpstream(f"{destination.scheme}://{destination.authority} is not the "
                         f"deployment's origin")
