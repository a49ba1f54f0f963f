"""Upstream connection settings a client sends in its request (api_base, api_key, api_version).

Refused unless every deployment of the requested model says `allow_client_connection: true`.
Even then the api_base must be http(s) and every address its host resolves to must be
public: no loopback, link-local (where cloud metadata services live), private, shared or
reserved address, unless the deployment lists that network in `client_networks`. Without
this, anyone who can call the proxy could make it fetch URLs inside the operator's network.
When a client names its own api_base, the configured key is never sent there.

Limit: the host is resolved here and again when connecting; a DNS server that answers
differently the second time (rebinding) can aim the second lookup elsewhere. Where this is
turned on, block private egress at the network too.
"""
from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from app.errors import InvalidRequestError
from app.providers.base import Target

CONNECTION_FIELDS = ("api_base", "base_url", "api_key", "api_version", "organization",
                     "extra_headers")
CLIENT_SETTABLE = ("api_base", "base_url", "api_key", "api_version")
METADATA_HOSTS = frozenset({"metadata", "metadata.google.internal", "metadata.goog",
                            "instance-data", "instance-data.ec2.internal"})
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
MAX_VALUE_LENGTH = 2048


def _forbidden(name: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"'{name}' cannot be set in a request: upstream connection settings come from the "
        f"proxy's configuration", param=name, code="forbidden_param")


def _refused(reason: str) -> InvalidRequestError:
    return InvalidRequestError(f"Invalid parameter 'api_base': {reason}.", param="api_base",
                               code="api_base_not_allowed")


@dataclass(frozen=True)
class ClientConnection:
    group: str                 # the model name whose deployments it applies to
    api_base: str | None
    api_key: str | None
    api_version: str | None

    def apply(self, target: Target) -> Target:
        changes: dict[str, Any] = {}
        if self.api_base:  # the client's own server: its key or none, never the operator's
            changes.update(api_base=self.api_base, api_key=self.api_key,
                           key_required=self.api_key is not None,
                           deployment_id=f"{target.deployment_id}@{urlsplit(self.api_base).netloc}")
        elif self.api_key:
            changes["api_key"] = self.api_key
        if self.api_key:
            changes["key_source"] = "the request's api_key"
        if self.api_version:
            changes["api_version"] = self.api_version
        return replace(target, **changes)


class ClientRouter:
    """The service's router, with the requested model's deployments aimed where the client
    said; fallback models keep their configured connections."""

    def __init__(self, router, connection: ClientConnection):
        self._router = router
        self._connection = connection

    def resolve(self, name: str) -> tuple[Target, ...]:
        targets = self._router.resolve(name)
        if name != self._connection.group:
            return targets
        return tuple(self._connection.apply(target) for target in targets)

    def __getattr__(self, name: str):
        return getattr(self._router, name)


def take_client_connection(params: dict[str, Any], requested: str,
                           router) -> ClientConnection | None:
    """Remove the connection settings from `params`; None when the client sent none."""
    sent = [name for name in CONNECTION_FIELDS if name in params]
    if not sent:
        return None
    targets = router.resolve(requested)
    allowed = all(t.settings.get("allow_client_connection") is True for t in targets)
    values = {}
    for name in sent:
        if not allowed or name not in CLIENT_SETTABLE:
            raise _forbidden(name)
        value = values[name] = params.pop(name)
        if not isinstance(value, str) or not 0 < len(value) <= MAX_VALUE_LENGTH:
            raise InvalidRequestError(f"Invalid parameter '{name}': must be a non-empty string "
                                      f"of at most {MAX_VALUE_LENGTH} characters.", param=name,
                                      code="invalid_value")
    bases = {values[name] for name in ("api_base", "base_url") if name in values}
    if len(bases) > 1:
        raise _refused("api_base and base_url differ")
    base = bases.pop() if bases else None
    if base is not None:
        networks = [[ipaddress.ip_network(n, strict=False) for n in
                     t.settings.get("client_networks") or ()] for t in targets]
        check_public(base, networks)
    return ClientConnection(requested, base, values.get("api_key"), values.get("api_version"))


def check_public(url: str, networks: list[list]) -> None:
    """Refuse a URL whose host is, or resolves to, an address that is not public, unless
    every deployment's `client_networks` (one list per deployment) holds it."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _refused("must be an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise _refused("must not carry a user name or password")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise _refused("has an invalid port") from None
    host = parts.hostname.rstrip(".").lower()
    if host in METADATA_HOSTS:
        raise _refused(f"{host} is a cloud metadata service")
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise _refused(f"host {host} cannot be resolved") from None
    for entry in found:
        address = ipaddress.ip_address(entry[4][0].split("%")[0])
        if networks and all(any(address in n for n in allowed) for allowed in networks):
            continue
        for candidate in _embedded(address):
            if not candidate.is_global or candidate.is_multicast:
                raise _refused(f"host {host} resolves to {address}, which is not a public "
                               f"address (loopback, link-local, private or reserved)")


def _embedded(address) -> list:
    """The address and any IPv4 address carried inside an IPv6 one (mapped, 6to4, Teredo,
    NAT64), each of which must be public."""
    found = [address]
    if address.version == 6:
        found += [a for a in (address.ipv4_mapped, address.sixtofour) if a is not None]
        if address.teredo:
            found.append(address.teredo[1])
        if address in _NAT64:
            found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return found
