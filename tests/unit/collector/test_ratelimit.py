"""The collector's per-client token buckets, on an injected clock."""

from __future__ import annotations

import pytest

from abstream.errors import ConfigError
from producers.collector.ratelimit import TokenBucketLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_client_bursts_then_is_held_to_the_rate() -> None:
    clock = Clock()
    limiter = TokenBucketLimiter(rate_per_s=2, burst=5, clock=clock)
    assert [limiter.take("a") for _ in range(5)] == [0.0] * 5
    assert limiter.take("a") == pytest.approx(0.5)  # one token short at 2 tokens/s
    clock.now += 0.5
    assert limiter.take("a") == 0.0
    assert limiter.take("a") > 0


def test_refused_requests_cost_nothing_and_refills_stop_at_the_burst() -> None:
    clock = Clock()
    limiter = TokenBucketLimiter(rate_per_s=1, burst=2, clock=clock)
    limiter.take("a"), limiter.take("a")
    for _ in range(10):
        assert limiter.take("a") == pytest.approx(1.0)
    clock.now += 3600
    assert [limiter.take("a") for _ in range(3)][:2] == [0.0, 0.0]


def test_clients_are_independent_and_bounded_in_number() -> None:
    clock = Clock()
    limiter = TokenBucketLimiter(rate_per_s=1, burst=1, max_clients=3, clock=clock)
    assert limiter.take("a") == 0.0 and limiter.take("b") == 0.0
    assert limiter.take("a") > 0 and limiter.take("b") > 0
    for client in ("c", "d", "e"):
        limiter.take(client)
    assert len(limiter) == 3
    assert limiter.take("a") == 0.0  # forgotten (least recently seen), so it starts with a full bucket


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 1), (1, 0)])
def test_nonsense_limits_are_refused(rate: float, burst: int) -> None:
    with pytest.raises(ConfigError, match="rate limiter"):
        TokenBucketLimiter(rate_per_s=rate, burst=burst)
