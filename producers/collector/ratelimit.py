"""Per-client token buckets: each client may burst, then is held to a steady rate.

    limiter = TokenBucketLimiter(rate_per_s=20, burst=100)
    wait = limiter.take("token:0")      # 0.0: allowed; > 0: refused, retry after that many seconds

Pure and single-threaded (the collector's event loop owns it); the clock is injected for tests.
Buckets of clients not seen for a while are dropped first once ``max_clients`` is reached, so a
flood of distinct IPs cannot grow memory without bound.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from abstream.errors import ConfigError

__all__ = ["TokenBucketLimiter"]


class TokenBucketLimiter:
    """``burst`` tokens per client, refilled at ``rate_per_s``; a request costs one token."""

    def __init__(
        self,
        *,
        rate_per_s: float,
        burst: int,
        max_clients: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not rate_per_s > 0 or burst < 1 or max_clients < 1:
            raise ConfigError(
                f"rate limiter: need rate_per_s > 0, burst >= 1 and max_clients >= 1, "
                f"got {rate_per_s}, {burst} and {max_clients}"
            )
        self.rate_per_s = float(rate_per_s)
        self.burst = float(burst)
        self._max_clients = max_clients
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client -> (tokens, at)

    def take(self, client: str, cost: float = 1.0) -> float:
        """Spend ``cost`` tokens of ``client``'s bucket: 0.0 if it had them, else the seconds until it will."""
        now = self._clock()
        tokens, at = self._buckets.pop(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate_per_s)
        wait = 0.0
        if tokens >= cost:
            tokens -= cost
        else:
            wait = (cost - tokens) / self.rate_per_s
        self._buckets[client] = (tokens, now)
        if len(self._buckets) > self._max_clients:
            self._buckets.popitem(last=False)
        return wait

    def __len__(self) -> int:
        """Clients currently tracked."""
        return len(self._buckets)
