"""A worker's gunicorn settings read once (app/gunicorn_config.py): the same values and the
same header policy as gunicorn's own Config, per peer address, without re-reading a setting
per request."""
from __future__ import annotations

import pytest
from gunicorn import config as gunicorn_config
from gunicorn.config import Config
from gunicorn.http.message import HeaderPolicy
from gunicorn.http.parser import RequestParser

from app.gunicorn_config import freeze

FORWARDED = b"GET /x HTTP/1.1\r\nHost: p\r\nX-Forwarded-Proto: https\r\n\r\n"


@pytest.fixture
def frozen(monkeypatch):
    """A frozen Config trusting 10.0.0.1 for forwarding headers (gunicorn's patched method
    restored after the test)."""
    monkeypatch.setattr(HeaderPolicy, "_peer_is_trusted_proxy",
                        HeaderPolicy._peer_is_trusted_proxy)
    cfg = Config()
    cfg.set("forwarded_allow_ips", "10.0.0.1")
    cfg.set("keepalive", 7)
    freeze(cfg)
    return cfg


def scheme(cfg, peer) -> str:
    return next(RequestParser(cfg, [FORWARDED], peer)).scheme


def test_values_are_gunicorns(frozen):
    plain = Config()
    plain.set("forwarded_allow_ips", "10.0.0.1")
    plain.set("keepalive", 7)
    for name in ("keepalive", "forwarded_allow_ips", "limit_request_fields", "is_ssl",
                 "secure_scheme_headers", "http_parser"):
        assert getattr(frozen, name) == getattr(plain, name), name
    with pytest.raises(AttributeError):
        frozen.no_such_setting  # noqa: B018


def test_forwarding_headers_are_trusted_per_peer_address(frozen):
    for _ in range(3):  # remembered answers stay each address's own
        assert scheme(frozen, ("10.0.0.1", 1000)) == "https"
        assert scheme(frozen, ("10.0.0.2", 1000)) == "http"
        assert scheme(frozen, "/run/gunicorn.sock") == "https"  # a UNIX socket peer is trusted
    assert scheme(Config(), ("10.0.0.1", 1000)) == "http"  # another Config: its own settings


def test_a_request_reads_no_setting_again(frozen, monkeypatch):
    scheme(frozen, ("10.0.0.1", 1000))
    reads = []
    real_get = gunicorn_config.Setting.get
    monkeypatch.setattr(gunicorn_config.Setting, "get",
                        lambda setting: reads.append(setting.name) or real_get(setting))
    assert scheme(frozen, ("10.0.0.1", 1001)) == "https"
    assert reads == []
