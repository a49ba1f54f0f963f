"""JSON POSTs to a logging service over urllib3, with the service's answer turned into a
DeliveryError that says whether a retry can help. These run in background threads, off the
request's path, where the upstream client's speed (app/service/transport.py) buys nothing."""
from __future__ import annotations

import urllib3

from app.callbacks.queue import DeliveryError
from app.jsonfast import dumps

# Statuses worth retrying: the service is overloaded, restarting or rate limiting.
TRANSIENT_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


class JsonPoster:
    def __init__(self, service: str, timeout: float, connections: int = 1):
        self.service = service
        self.timeout = urllib3.Timeout(connect=min(timeout, 5.0), read=timeout)
        self.http = urllib3.PoolManager(num_pools=2, maxsize=connections, retries=False)

    def post(self, url: str, body, headers: dict[str, str]) -> None:
        try:
            response = self.http.request("POST", url, body=dumps(body), timeout=self.timeout,
                                         headers={"Content-Type": "application/json", **headers})
        except urllib3.exceptions.HTTPError as exc:
            raise DeliveryError(f"{self.service} unreachable: {type(exc).__name__}") from None
        if 200 <= response.status < 300:
            return
        detail = response.data[:300].decode("utf-8", "replace").strip()
        raise DeliveryError(f"{self.service} answered HTTP {response.status}: {detail}",
                            transient=response.status in TRANSIENT_STATUSES)

    def close(self) -> None:
        self.http.clear()
