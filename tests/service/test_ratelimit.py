"""Failed-login limits and per-credential request rates (``auditlog.service.ratelimit``), on a
clock the tests move."""

from __future__ import annotations

import pytest

from auditlog.errors import RateLimited
from auditlog.service.ratelimit import MAX_KEY, LoginLimiter, RequestLimiter, TokenBuckets


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_a_bucket_allows_its_capacity_then_waits_for_the_refill(clock: Clock) -> None:
    buckets = TokenBuckets(3, 60, clock)
    for _ in range(3):
        assert buckets.wait("alice") == 0
        buckets.take("alice")
    assert buckets.tokens("alice") == 0
    assert buckets.wait("alice") == 60
    clock.now += 45
    assert buckets.wait("alice") == pytest.approx(15)
    clock.now += 15
    assert buckets.wait("alice") == 0
    assert buckets.tokens("alice") == pytest.approx(1)
    clock.now += 3600
    assert buckets.tokens("alice") == 3  # never more than the capacity


def test_buckets_are_per_key(clock: Clock) -> None:
    buckets = TokenBuckets(1, 60, clock)
    buckets.take("alice")
    assert buckets.wait("alice") == 60
    assert buckets.wait("bob") == 0
    assert buckets.wait("Alice") == 0


def test_giving_back_restores_a_token(clock: Clock) -> None:
    buckets = TokenBuckets(2, 10, clock)
    buckets.take("alice")
    buckets.take("alice")
    buckets.give_back("alice")
    assert buckets.tokens("alice") == pytest.approx(1)
    buckets.give_back("alice")
    assert buckets.tokens("alice") == 2
    assert len(buckets) == 0  # a full bucket is no bucket
    buckets.give_back("nobody")
    assert len(buckets) == 0


def test_a_full_table_drops_full_buckets_first_then_the_oldest(clock: Clock) -> None:
    buckets = TokenBuckets(2, 10, clock, max_keys=3)
    buckets.take("old")  # refilled by the time the table overflows
    clock.now += 100
    for key in ("a", "b", "c"):
        buckets.take(key)
    assert len(buckets) == 3
    assert buckets.tokens("a") == 1
    assert buckets.tokens("old") == 2  # dropped: it was full again
    for i in range(100):
        buckets.take(f"spray-{i}")
    assert len(buckets) == 3


def test_long_keys_are_cut(clock: Clock) -> None:
    buckets = TokenBuckets(1, 10, clock)
    buckets.take("x" * 10_000)
    assert buckets.wait("x" * MAX_KEY) == 10
    assert buckets.wait("x" * (MAX_KEY + 1)) == 10


def test_a_bucket_needs_a_capacity_and_a_refill() -> None:
    with pytest.raises(ValueError, match="capacity"):
        TokenBuckets(0, 10)
    with pytest.raises(ValueError, match="refill"):
        TokenBuckets(1, 0)


def limiter(clock: Clock, per_user: int = 3, per_address: int = 10) -> LoginLimiter:
    return LoginLimiter(TokenBuckets(per_user, 60, clock), TokenBuckets(per_address, 15, clock))


def test_failures_for_one_username_are_limited_from_any_address(clock: Clock) -> None:
    limits = limiter(clock)
    for address in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):
        limits.begin("alice", address)  # and fails: nothing given back
    with pytest.raises(RateLimited) as info:
        limits.begin("alice", "10.0.0.4")
    assert info.value.retry_after == 60
    assert info.value.status == 429
    limits.begin("bob", "10.0.0.4")  # other users are not affected
    clock.now += 59.5
    with pytest.raises(RateLimited) as info:
        limits.begin("alice", "10.0.0.4")
    assert info.value.retry_after == 1  # rounded up, never 0
    clock.now += 0.5
    limits.begin("alice", "10.0.0.4")


def test_failures_from_one_address_are_limited_whatever_the_username(clock: Clock) -> None:
    limits = limiter(clock, per_user=100, per_address=4)
    for i in range(4):
        limits.begin(f"user{i}", "10.0.0.9")
    with pytest.raises(RateLimited) as info:
        limits.begin("someone-else", "10.0.0.9")
    assert info.value.retry_after == 15
    limits.begin("someone-else", "10.0.0.10")


def test_successes_cost_nothing(clock: Clock) -> None:
    limits = limiter(clock, per_user=2, per_address=2)
    for _ in range(50):
        limits.succeeded(limits.begin("alice", "10.0.0.1"))
    limits.begin("alice", "10.0.0.1")
    limits.begin("alice", "10.0.0.1")
    with pytest.raises(RateLimited):
        limits.begin("alice", "10.0.0.1")


def test_attempts_in_flight_hold_their_tokens(clock: Clock) -> None:
    # Concurrent attempts all begin before any is decided: they cannot exceed the limit.
    limits = limiter(clock, per_user=3)
    attempts = [limits.begin("alice", f"10.0.0.{i}") for i in range(3)]
    with pytest.raises(RateLimited):
        limits.begin("alice", "10.0.0.99")
    limits.succeeded(attempts[0])
    limits.begin("alice", "10.0.0.99")


def test_a_refused_attempt_takes_nothing(clock: Clock) -> None:
    limits = limiter(clock, per_user=1, per_address=5)
    limits.begin("alice", "10.0.0.1")
    for _ in range(10):
        with pytest.raises(RateLimited):
            limits.begin("alice", "10.0.0.1")
    assert limits.per_address.tokens("10.0.0.1") == 4


# -- per-credential request rates --------------------------------------------------------------


def requests(clock: Clock, writes: int = 3, reads: int = 2, rate: float = 2.0) -> RequestLimiter:
    """Buckets of ``writes`` and ``reads`` tokens, refilled at ``rate`` per second."""
    return RequestLimiter(
        TokenBuckets(writes, 1 / rate, clock), TokenBuckets(reads, 1 / rate, clock)
    )


def test_a_credential_makes_its_burst_of_requests_then_is_limited(clock: Clock) -> None:
    limits = requests(clock)
    for _ in range(3):
        limits.check("key-a", "write")
    with pytest.raises(RateLimited, match="over its write rate") as info:
        limits.check("key-a", "write")
    assert info.value.status == 429
    assert info.value.retry_after == 1  # 0.5 s, rounded up: never 0


def test_writes_and_reads_have_buckets_of_their_own(clock: Clock) -> None:
    limits = requests(clock)
    for _ in range(3):
        limits.check("key-a", "write")
    limits.check("key-a", "read")
    limits.check("key-a", "read")
    with pytest.raises(RateLimited, match="over its read rate"):
        limits.check("key-a", "read")
    with pytest.raises(RateLimited, match="over its write rate"):
        limits.check("key-a", "write")


def test_each_credential_has_its_own_buckets(clock: Clock) -> None:
    limits = requests(clock)
    for _ in range(3):
        limits.check("key-a", "write")
    for _ in range(3):
        limits.check("key-b", "write")
    with pytest.raises(RateLimited):
        limits.check("key-b", "write")


def test_buckets_refill_at_the_rate_up_to_the_burst(clock: Clock) -> None:
    limits = requests(clock, writes=3, rate=2.0)
    for _ in range(3):
        limits.check("key-a", "write")
    clock.now += 0.25
    with pytest.raises(RateLimited) as info:
        limits.check("key-a", "write")
    assert info.value.retry_after == 1
    clock.now += 0.25  # one token every 0.5 s
    limits.check("key-a", "write")
    with pytest.raises(RateLimited):
        limits.check("key-a", "write")
    clock.now += 3600
    for _ in range(3):
        limits.check("key-a", "write")
    with pytest.raises(RateLimited):
        limits.check("key-a", "write")


def test_retry_after_is_the_wait_rounded_up(clock: Clock) -> None:
    limits = RequestLimiter(TokenBuckets(1, 7.5, clock), None)
    limits.check("key-a", "write")
    with pytest.raises(RateLimited) as info:
        limits.check("key-a", "write")
    assert info.value.retry_after == 8


def test_a_refused_request_takes_nothing(clock: Clock) -> None:
    limits = requests(clock, writes=1, rate=1.0)
    limits.check("key-a", "write")
    for _ in range(10):
        with pytest.raises(RateLimited):
            limits.check("key-a", "write")
    clock.now += 1.0
    limits.check("key-a", "write")


def test_no_buckets_is_no_limit(clock: Clock) -> None:
    limits = RequestLimiter(None, None)
    for _ in range(10_000):
        limits.check("key-a", "write")
        limits.check("key-a", "read")


@pytest.mark.parametrize(
    ("write_rate", "read_rate"),
    [(0, 0), (0, 5), (5, 0)],
    ids=["both-off", "writes-off", "reads-off"],
)
def test_from_rates_makes_no_bucket_for_a_rate_of_0(write_rate: int, read_rate: int) -> None:
    limits = RequestLimiter.from_rates(write_rate, 1, read_rate, 1)
    assert (limits.writes is None) == (write_rate == 0)
    assert (limits.reads is None) == (read_rate == 0)
    for _ in range(100):
        if write_rate == 0:
            limits.check("key-a", "write")
        if read_rate == 0:
            limits.check("key-a", "read")


def test_from_rates_makes_buckets_of_the_burst_refilled_at_the_rate() -> None:
    limits = RequestLimiter.from_rates(20000, 40000, 200, 1000)
    assert limits.writes is not None
    assert limits.reads is not None
    assert limits.writes.capacity == 40000
    assert limits.writes.refill_seconds == pytest.approx(1 / 20000)
    assert limits.reads.capacity == 1000
    assert limits.reads.refill_seconds == pytest.approx(1 / 200)
