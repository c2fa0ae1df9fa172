"""The webhook retry schedule (service/webhook_retry.py): exponential, capped, jittered within its bounds, and it
gives up after its attempts or its age."""

from __future__ import annotations

import random

import pytest
from fleetsense.service.webhook_retry import RetryPolicy
from hypothesis import given
from hypothesis import strategies as st

from fleetsense.errors import ConfigError


def test_the_default_schedule_doubles_from_one_second_and_is_capped_at_five_minutes() -> None:
    policy = RetryPolicy()
    assert policy.nominal_schedule_s() == [1, 2, 4, 8, 16, 32, 64, 128, 256]
    assert RetryPolicy(max_attempts=12).nominal_schedule_s() == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]
    assert policy.nominal_delay_s(10_000) == 300  # no overflow far past the cap


def test_the_schedule_stops_where_the_next_wait_would_pass_the_max_age() -> None:
    assert RetryPolicy(max_attempts=100, max_age_s=20).nominal_schedule_s() == [1, 2, 4, 8]


def test_next_delay_gives_up_after_the_last_attempt_or_past_the_age() -> None:
    policy = RetryPolicy(max_attempts=3, max_age_s=100, jitter=0)
    assert policy.next_delay_s(1, age_s=0, unit=0.5) == 1
    assert policy.next_delay_s(2, age_s=1, unit=0.5) == 2
    assert policy.next_delay_s(3, age_s=3, unit=0.5) is None  # three attempts made
    assert policy.next_delay_s(1, age_s=99.5, unit=0.5) is None  # 99.5 + 1 > 100


def test_a_seeded_run_of_thousands_of_draws_stays_within_the_jitter_bounds_and_spreads() -> None:
    rng = random.Random(17)
    for _ in range(200):
        policy = RetryPolicy(
            first_delay_s=rng.uniform(0.01, 5),
            factor=rng.uniform(1, 4),
            max_delay_s=rng.uniform(5, 600),
            jitter=rng.uniform(0, 0.9),
            max_attempts=rng.randint(1, 30),
            max_age_s=rng.uniform(1, 10_000),
        )
        draws = []
        for attempt in range(1, 40):
            unit = rng.random()
            nominal = policy.nominal_delay_s(attempt)
            delay = policy.delay_s(attempt, unit)
            draws.append(delay / nominal)
            assert nominal * (1 - policy.jitter) <= delay <= nominal * (1 + policy.jitter) + 1e-9
            assert nominal <= policy.max_delay_s
            if attempt > 1:
                assert nominal >= policy.nominal_delay_s(attempt - 1)  # never shrinks
        if policy.jitter > 0.1:
            assert max(draws) - min(draws) > policy.jitter / 2  # the jitter really spreads the waits


@given(
    attempts=st.integers(min_value=1, max_value=20),
    age_s=st.floats(min_value=0, max_value=1e5),
    unit=st.floats(min_value=0, max_value=1, exclude_max=True),
)
def test_a_retry_is_never_scheduled_past_the_age_or_attempt_bound(attempts: int, age_s: float, unit: float) -> None:
    policy = RetryPolicy(max_attempts=8, max_age_s=600)
    delay = policy.next_delay_s(attempts, age_s, unit)
    if delay is not None:
        assert attempts < 8 and age_s + delay <= 600 and delay > 0


@pytest.mark.parametrize(
    "bad", [{"first_delay_s": 0}, {"factor": 0.5}, {"max_delay_s": 0.5}, {"jitter": 1}, {"max_attempts": 0}]
)
def test_a_policy_out_of_bounds_is_refused_naming_the_field(bad: dict[str, float]) -> None:
    with pytest.raises(ConfigError, match=next(iter(bad))):
        RetryPolicy(**bad)  # type: ignore[arg-type]
