"""The authentication-failure throttle and the per-address connection counter, with a fake clock."""

from __future__ import annotations

import logging

import pytest

from mailtrap import throttle
from mailtrap.throttle import AuthThrottle, ConnectionLimits, Refusal, client_key


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make(clock: FakeClock, **settings: float) -> AuthThrottle:
    settings = {"failure_limit": 10, "lockout": 600.0, "failure_delay": 1.0, **settings}
    return AuthThrottle(clock=clock, **settings)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:1:2:3", "2001:db8:1:2::/64"),
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("fe80::1%eth0", "fe80::/64"),
        ("not an address", "not an address"),
    ],
)
def test_client_key_is_the_ipv4_address_or_the_ipv6_64(host: str, key: str):
    assert client_key(host) == key


def test_delays_start_after_two_failures_double_and_are_capped(clock: FakeClock):
    guard = make(clock, failure_limit=100)
    delays = [guard.failed("192.0.2.1") for _ in range(8)]
    assert delays == [0, 0, 1, 2, 4, 8, 8, 8]
    assert guard.retry_after("192.0.2.1") == 0


def test_the_limit_th_failure_locks_the_address_out_for_the_lockout(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
):
    guard = make(clock, failure_limit=4, lockout=600.0)
    with caplog.at_level(logging.WARNING, logger="mailtrap.throttle"):
        for _ in range(3):
            guard.failed("192.0.2.1")
        assert guard.retry_after("192.0.2.1") == 0
        assert not caplog.records
        guard.failed("192.0.2.1")
    assert guard.retry_after("192.0.2.1") == 600.0
    assert [r.getMessage() for r in caplog.records] == [
        "locking out 192.0.2.1 for 600 s after 4 failed logins"
    ]
    assert (guard.failures, guard.lockouts, guard.locked_addresses) == (4, 1, 1)
    clock.now += 599
    assert guard.retry_after("192.0.2.1") == pytest.approx(1.0)
    clock.now += 1
    assert guard.retry_after("192.0.2.1") == 0
    assert guard.locked_addresses == 0


def test_other_addresses_are_not_affected_but_the_same_ipv6_64_is(clock: FakeClock):
    guard = make(clock, failure_limit=2)
    guard.failed("2001:db8::1")
    guard.failed("2001:db8::2")  # the same /64: the second failure of one client
    assert guard.retry_after("2001:db8::ffff") > 0
    assert guard.retry_after("2001:db8:0:1::1") == 0
    assert guard.retry_after("192.0.2.1") == 0
    assert guard.failed("192.0.2.1") == 0


def test_a_success_forgets_the_failures(clock: FakeClock):
    guard = make(clock, failure_limit=4)
    for _ in range(3):
        guard.failed("192.0.2.1")
    guard.succeeded("192.0.2.1")
    assert [guard.failed("192.0.2.1") for _ in range(3)] == [0, 0, 1]
    assert guard.retry_after("192.0.2.1") == 0


def test_failures_are_forgotten_after_a_lockout_period_without_one(clock: FakeClock):
    guard = make(clock, failure_limit=4, lockout=60.0)
    for _ in range(3):
        guard.failed("192.0.2.1")
    clock.now += 61
    assert guard.failed("192.0.2.1") == 0  # the first again, not the fourth
    assert guard.retry_after("192.0.2.1") == 0


def test_after_a_lockout_the_address_starts_again_from_the_first_failure(clock: FakeClock):
    guard = make(clock, failure_limit=3, lockout=60.0)
    for _ in range(3):
        guard.failed("192.0.2.1")
    clock.now += 60
    assert guard.retry_after("192.0.2.1") == 0
    assert guard.failed("192.0.2.1") == 0
    assert guard.retry_after("192.0.2.1") == 0


def test_a_zero_delay_turns_delays_off(clock: FakeClock):
    guard = make(clock, failure_limit=100, failure_delay=0.0)
    assert {guard.failed("192.0.2.1") for _ in range(10)} == {0}


def test_memory_is_bounded_whatever_the_number_of_addresses(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(throttle, "MAX_TRACKED", 50)
    guard = make(clock, failure_limit=3)
    for number in range(1000):
        guard.failed(f"10.0.{number // 256}.{number % 256}")
    assert len(guard._records) <= 50
    assert guard.failures == 1000


def test_connection_limits_cap_each_address_and_the_total_and_free_on_leave():
    limits = ConnectionLimits("SMTP", total=5, per_client=2)
    assert limits.admit("192.0.2.1") is limits.admit("192.0.2.1") is None
    assert limits.admit("192.0.2.1") is Refusal.CLIENT_FULL
    assert limits.admit("192.0.2.2") is None
    assert limits.admit("2001:db8::1") is limits.admit("2001:db8::2") is None
    assert limits.admit("2001:db8::3") is Refusal.FULL  # five open
    limits.leave("192.0.2.2")
    assert limits.admit("2001:db8::3") is Refusal.CLIENT_FULL  # one /64
    limits.leave("192.0.2.1")
    assert limits.admit("192.0.2.1") is None


def test_a_locked_out_address_gets_no_connection(clock: FakeClock):
    guard = make(clock, failure_limit=1)
    limits = ConnectionLimits("POP3", total=5, throttle=guard)
    guard.failed("192.0.2.1")
    assert limits.admit("192.0.2.1") is Refusal.LOCKED_OUT
    assert limits.admit("192.0.2.2") is None


def test_recent_failures_tell_a_suspect_from_a_client_in_good_standing(clock: FakeClock):
    guard = make(clock, lockout=60.0)
    assert guard.recent_failures("192.0.2.1") == 0
    guard.failed("192.0.2.1")
    guard.failed("192.0.2.1")
    assert guard.recent_failures("192.0.2.1") == 2
    assert guard.recent_failures("192.0.2.2") == 0
    clock.now += 61
    assert guard.recent_failures("192.0.2.1") == 0
