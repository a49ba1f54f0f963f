"""Upstream connection settings a client sends in its request (api_base, api_key, api_version).

Refused unless every deployment of the requested model says `allow_client_connection: true`.
Even then the api_base must be http(s) and every address its host resolves to must be
public: no loopback, link-local (where cloud metadata services live), private, shared or
reserved address, unless the deployment lists that network in `client_networks`. Without
this, anyone who can call the proxy could make it fetch URLs inside the operator's network.
When a client names its own api_base, the configured key is never sent there.

The host is resolved once, here; the connection is pinned to the addresses checked
(`Target.pinned_addresses`, see app/service/egress.py), so a second DNS answer never
matters. Values that become upstream headers must be printable ASCII: a line break in an
api_key would otherwise end the header and smuggle a request of the client's making.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace
from typing import Any

from app.errors import InvalidRequestError
from app.providers.base import Target
from app.service.egress import UnsafeUpstream, header_safe, parse_url, public_addresses

CONNECTION_FIELDS = ("api_base", "base_url", "api_key", "api_version", "organization",
                     "extra_headers")
CLIENT_SETTABLE = ("api_base", "base_url", "api_key", "api_version")
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
    addresses: tuple[str, ...] = ()  # what api_base's host resolved to, all checked

    def apply(self, target: Target) -> Target:
        changes: dict[str, Any] = {"own_connection": True}
        if self.api_base:  # the client's own server: its key or none, never the operator's
            changes.update(api_base=self.api_base, api_key=self.api_key,
                           key_required=self.api_key is not None,
                           pinned_addresses=self.addresses,
                           deployment_id=f"{target.deployment_id}@"
                                         f"{parse_url(self.api_base).authority}")
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
        if not (header_safe(value) and 0 < len(value) <= MAX_VALUE_LENGTH):
            raise InvalidRequestError(f"Invalid parameter '{name}': must be a non-empty string "
                                      f"of at most {MAX_VALUE_LENGTH} printable ASCII "
                                      f"characters.", param=name, code="invalid_value")
    bases = {values[name] for name in ("api_base", "base_url") if name in values}
    if len(bases) > 1:
        raise _refused("api_base and base_url differ")
    base = bases.pop() if bases else None
    addresses: tuple[str, ...] = ()
    if base is not None:
        networks = [[ipaddress.ip_network(n, strict=False) for n in
                     t.settings.get("client_networks") or ()] for t in targets]
        try:
            addresses = public_addresses(parse_url(base), networks)
        except UnsafeUpstream as exc:
            raise _refused(str(exc)) from None
    return ClientConnection(requested, base, values.get("api_key"), values.get("api_version"),
                            addresses)
