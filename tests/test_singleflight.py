from __future__ import annotations

import pytest
import trio

from xnatfs.singleflight import Abandoned, SingleFlight


async def test_concurrent_callers_share_one_call() -> None:
    flight: SingleFlight[str, int] = SingleFlight()
    calls = 0

    async def work() -> int:
        nonlocal calls
        calls += 1
        await trio.sleep(0.05)
        return 42

    results: list[int] = []

    async def caller() -> None:
        results.append(await flight.run("k", work))

    async with trio.open_nursery() as nursery:
        for _ in range(10):
            nursery.start_soon(caller)
    assert results == [42] * 10 and calls == 1
    # Nothing is remembered once the work is done: the next call runs it again.
    assert await flight.run("k", work) == 42 and calls == 2


async def test_failure_wakes_everyone_and_is_not_remembered() -> None:
    flight: SingleFlight[str, int] = SingleFlight()
    attempts = 0

    async def flaky() -> int:
        nonlocal attempts
        attempts += 1
        await trio.sleep(0.02)
        if attempts == 1:
            raise OSError("down")
        return 7

    errors: list[BaseException] = []

    async def caller() -> None:
        try:
            await flight.run("k", flaky)
        except OSError as exc:
            errors.append(exc)

    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(caller)
    assert len(errors) == 3 and attempts == 1
    assert await flight.run("k", flaky) == 7 and attempts == 2


async def test_a_cancelled_leader_releases_its_waiters() -> None:
    flight: SingleFlight[str, int] = SingleFlight()

    async def slow() -> int:
        await trio.sleep(10)
        return 1

    async with trio.open_nursery() as nursery:
        leader_scope = trio.CancelScope()

        async def leader() -> None:
            with leader_scope:
                await flight.run("k", slow)

        async def cancel_soon() -> None:
            await trio.sleep(0.02)
            leader_scope.cancel()

        nursery.start_soon(leader)
        await trio.sleep(0.01)
        nursery.start_soon(cancel_soon)
        with pytest.raises(Abandoned):
            await flight.run("k", slow)
