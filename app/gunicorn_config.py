"""gunicorn's settings read once per worker instead of at every use.

Each `cfg.name` gunicorn reads goes through `Config.__getattr__` and the setting's `get()`:
parsing one request reads ~16 of them, and `forwarded_allow_ips` is checked against the
peer's address with `ipaddress` for every request of a kept-alive connection. That was ~35 us
of the ~80 us gunicorn's parser took per chat request (one core of this machine, the bench's
request). A worker's settings never change once it is forked (a reload starts new workers),
so `freeze(cfg)`, called first thing in each worker process, keeps every value read and the
trust answer per peer address.
"""
from __future__ import annotations

from gunicorn.config import Config
from gunicorn.http.message import HeaderPolicy

_peer_is_trusted_proxy = HeaderPolicy._peer_is_trusted_proxy
_MAX_HOSTS = 4096  # client addresses remembered (forgotten all at once beyond)


class FrozenConfig(Config):
    """A worker's settings: each read once, then a plain attribute (`Config.__setattr__`
    refuses setting names, so the value goes straight into the instance's dict)."""

    def __getattr__(self, name):
        value = Config.__getattr__(self, name)
        self.__dict__[name] = value
        return value


def freeze(cfg: Config) -> None:
    """Make this worker's `cfg` a FrozenConfig and remember, per peer address, whether it may
    set forwarding headers (the answer depends only on the frozen settings)."""
    cfg.__class__ = FrozenConfig
    trusted_hosts: dict[str, bool] = {}

    def peer_is_trusted_proxy(request) -> bool:
        peer = request.peer_addr
        if request.cfg is not cfg or not isinstance(peer, tuple):
            return _peer_is_trusted_proxy(request)
        trusted = trusted_hosts.get(peer[0])
        if trusted is None:
            if len(trusted_hosts) >= _MAX_HOSTS:
                trusted_hosts.clear()
            trusted = trusted_hosts[peer[0]] = _peer_is_trusted_proxy(request)
        return trusted

    HeaderPolicy._peer_is_trusted_proxy = peer_is_trusted_proxy
