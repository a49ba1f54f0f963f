"""The HTTP client for upstream calls: one urllib3 pool manager per process.

urllib3 directly (not requests) because it costs about half the CPU per call here;
its PoolManager keeps keep-alive connections per host and is safe to share between
a worker's threads.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Mapping

import urllib3
from urllib3.exceptions import HTTPError, NewConnectionError, TimeoutError as Urllib3Timeout

from app.jsonfast import dumps
from app.providers.base import UpstreamRequest


class TransportError(Exception):
    """The upstream could not be reached or did not answer in time."""

    def __init__(self, message: str, timed_out: bool):
        super().__init__(message)
        self.timed_out = timed_out


@dataclass
class RawResponse:
    status: int
    headers: Mapping[str, str]
    data: bytes
    seconds: float


class Transport:
    def __init__(self, pool_size: int = 64, connect_timeout: float = 10.0):
        self.connect_timeout = connect_timeout
        self.pool = urllib3.PoolManager(num_pools=64, maxsize=pool_size, block=False,
                                        retries=False)

    def _timeout(self, read_timeout: float) -> urllib3.Timeout:
        return urllib3.Timeout(connect=min(self.connect_timeout, read_timeout), read=read_timeout)

    def send(self, request: UpstreamRequest, read_timeout: float) -> RawResponse:
        """Send and read the whole answer."""
        started = time.perf_counter()
        response = self._open(request, read_timeout, preload=True)
        return RawResponse(response.status, response.headers, response.data,
                           time.perf_counter() - started)

    def open_stream(self, request: UpstreamRequest, read_timeout: float) -> urllib3.BaseHTTPResponse:
        """Send and return the response unread, for an event stream; the caller releases it."""
        return self._open(request, read_timeout, preload=False)

    def _open(self, request: UpstreamRequest, read_timeout: float, preload: bool):
        body = None if request.json is None else dumps(request.json)
        try:
            return self.pool.request(request.method, request.url, body=body,
                                     headers=request.headers, timeout=self._timeout(read_timeout),
                                     preload_content=preload, redirect=False)
        except NewConnectionError as exc:  # urllib3 files it under timeouts; it is a refusal
            raise TransportError(f"connection failed: {exc.__cause__ or 'refused'}",
                                 timed_out=False) from None
        except Urllib3Timeout as exc:
            raise TransportError(f"timed out after {read_timeout:g} s ({type(exc).__name__})",
                                 timed_out=True) from None
        except (HTTPError, OSError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise TransportError(f"connection failed: {type(reason).__name__}",
                                 timed_out=False) from None
