"""Retry budget, backoff, Retry-After parsing and short failure causes."""

from __future__ import annotations

import socket
import threading

import pytest
import requests
import urllib3.exceptions

from xnatfs.errors import Unavailable
from xnatfs.xnat.retry import (
    Attempts,
    RetriesExhausted,
    RetryPolicy,
    describe,
    parse_retry_after,
)


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, delay: float, cancel: threading.Event | None) -> None:
        self.waits.append(delay)
        self.now += delay


def attempts(policy: RetryPolicy, t: FakeTime, cancel: threading.Event | None = None) -> Attempts:
    return Attempts(policy, "GET http://x/data", clock=t.clock, sleep=t.sleep, cancel=cancel)


def test_policy_delay_doubles_with_jitter_and_is_capped() -> None:
    policy = RetryPolicy(backoff=1.0, max_backoff=4.0)
    for failures, full in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 4.0), (10, 4.0)]:
        for _ in range(20):
            assert full / 2 <= policy.delay(failures, None) <= full
    assert policy.delay(1, 12.0) == 12.0
    assert policy.delay(1, 999.0) == policy.max_retry_after
    assert policy.delay(1, -5.0) == 0.0


def test_attempts_count_bound() -> None:
    t = FakeTime()
    a = attempts(RetryPolicy(retries=2, deadline=1000), t)
    a.failed("HTTP 503")
    a.failed("HTTP 503")
    with pytest.raises(RetriesExhausted) as info:
        a.failed("connection reset")
    assert info.value.cause == "connection reset"
    assert str(info.value) == "GET http://x/data: connection reset (gave up after 3 attempts)"
    assert len(t.waits) == 2


def test_attempts_deadline_bound_and_progress_resets_budget() -> None:
    t = FakeTime()
    a = attempts(RetryPolicy(retries=100, deadline=10, backoff=4, max_backoff=4), t)
    a.failed("x")  # waits <= 4
    a.failed("x")  # waits <= 4, total <= 8
    t.now = 9.0
    with pytest.raises(RetriesExhausted, match="10 s of retries"):
        a.failed("x")
    a.progressed()
    a.failed("x")  # a fresh budget after progress


def test_attempts_cancel_during_wait() -> None:
    cancel = threading.Event()
    t = FakeTime()
    a = attempts(RetryPolicy(), t, cancel)
    a.check_cancel()
    cancel.set()
    with pytest.raises(Unavailable, match="cancelled"):
        a.failed("HTTP 503")
    with pytest.raises(Unavailable, match="cancelled"):
        a.check_cancel()


def test_parse_retry_after() -> None:
    assert parse_retry_after(None) is None
    assert parse_retry_after("") is None
    assert parse_retry_after(" 120 ") == 120.0
    assert parse_retry_after("soon") is None
    now = 1445412480.0  # Wed, 21 Oct 2015 07:28:00 GMT
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now) == 30.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now) == 0.0


def test_describe_walks_wrapped_causes() -> None:
    refused = requests.exceptions.ConnectionError(
        urllib3.exceptions.MaxRetryError(None, "/", ConnectionRefusedError(111, "refused"))  # type: ignore[arg-type]
    )
    assert describe(refused) == "connection refused"
    assert describe(ConnectionResetError(104, "reset")) == "connection reset"
    assert describe(socket.gaierror(-2, "Name or service not known")) == "host name not resolved"
    assert describe(requests.exceptions.ConnectTimeout()) == "connection timed out"
    assert describe(requests.exceptions.ReadTimeout()) == "no reply within the read timeout"
    assert describe(TimeoutError()) == "no reply within the read timeout"
    incomplete = urllib3.exceptions.ProtocolError("x", urllib3.exceptions.IncompleteRead(1, 2))
    assert describe(incomplete) == "connection closed before the reply was complete"
    assert describe(ValueError("secret-ish text")) == "ValueError"
