"""Backoff and Retry-After: the delays' schedule, their jitter's bounds, and which answers
are retried."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from auditlog_client.retry import Backoff, RetryPolicy, parse_retry_after, retryable_status


def test_ceilings_double_up_to_the_maximum() -> None:
    policy = RetryPolicy(initial=0.5, multiplier=2, maximum=8)
    assert [policy.ceiling(n) for n in range(1, 8)] == [0.5, 1, 2, 4, 8, 8, 8]


def test_a_very_long_run_of_failures_does_not_overflow() -> None:
    assert RetryPolicy(maximum=30).ceiling(10_000) == 30


@pytest.mark.parametrize("seed", range(20))
def test_each_delay_lies_between_half_and_all_of_its_ceiling(seed: int) -> None:
    policy = RetryPolicy(initial=1, maximum=60)
    backoff = Backoff(policy, rng=random.Random(seed))
    for n in range(1, 12):
        delay = backoff.next_delay()
        assert policy.ceiling(n) / 2 <= delay <= policy.ceiling(n)
    assert backoff.failures == 11


def test_jitter_spreads_the_delays() -> None:
    policy = RetryPolicy(initial=1, maximum=60)
    delays = {policy.delay(5, rng=random.Random(seed)) for seed in range(50)}
    assert len(delays) == 50


def test_reset_starts_the_schedule_again() -> None:
    backoff = Backoff(RetryPolicy(initial=1, maximum=60), rng=random.Random(1))
    for _ in range(5):
        backoff.next_delay()
    backoff.reset()
    assert backoff.next_delay() <= 1


def test_retry_after_is_a_floor_never_a_ceiling() -> None:
    policy = RetryPolicy(initial=0.5, maximum=30)
    assert policy.delay(1, retry_after=7, rng=random.Random(0)) == 7
    assert policy.delay(8, retry_after=0.1, rng=random.Random(0)) >= 15


def test_retry_after_is_capped() -> None:
    policy = RetryPolicy(retry_after_max=300)
    assert policy.delay(1, retry_after=86_400) == 300


def test_max_attempts() -> None:
    assert not RetryPolicy().gives_up(1_000_000)
    policy = RetryPolicy(max_attempts=3)
    assert [policy.gives_up(n) for n in (1, 2, 3)] == [False, False, True]


@pytest.mark.parametrize(
    ("kwargs"),
    [{"initial": 0}, {"initial": 2, "maximum": 1}, {"multiplier": 0.5}, {"max_attempts": 0}],
)
def test_bad_policies_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"must|needs"):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_parse_retry_after_seconds() -> None:
    assert parse_retry_after("3") == 3
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("-4") == 0
    assert parse_retry_after(None) is None
    assert parse_retry_after("") is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("nan") is None
    assert parse_retry_after("inf") is None


def test_parse_retry_after_http_date() -> None:
    now = dt.datetime(2026, 12, 6, 4, 0, 0, tzinfo=dt.UTC)
    assert parse_retry_after("Sun, 06 Dec 2026 04:00:10 GMT", now) == 10
    assert parse_retry_after("Sun, 06 Dec 2026 03:59:00 GMT", now) == 0


@pytest.mark.parametrize(
    ("status", "retried"),
    [(429, True), (503, True), (500, True), (502, True), (504, True), (599, True),
     (400, False), (401, False), (403, False), (404, False), (409, False), (413, False),
     (422, False)],
)  # fmt: skip
def test_which_statuses_are_retried(status: int, retried: bool) -> None:
    assert retryable_status(status) is retried
