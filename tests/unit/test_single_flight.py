"""Single flight: overlapping identical work runs once; a cancelled leader hands over."""

from __future__ import annotations

import asyncio

import pytest

from fetchcore.single_flight import SingleFlight


class TestSingleFlight:
    async def test_overlapping_calls_with_one_key_run_the_work_once(self) -> None:
        flight: SingleFlight[int] = SingleFlight()
        runs = 0

        async def work() -> int:
            nonlocal runs
            runs += 1
            await asyncio.sleep(0.01)
            return 42

        outcomes = await asyncio.gather(*(flight.run("k", work) for _ in range(5)))
        assert runs == 1
        assert sorted(outcomes) == [(42, False)] + [(42, True)] * 4

    async def test_other_keys_do_not_wait(self) -> None:
        flight: SingleFlight[str] = SingleFlight()

        async def work(key: str) -> str:
            await asyncio.sleep(0.01)
            return key

        outcomes = await asyncio.gather(
            flight.run("a", lambda: work("a")), flight.run("b", lambda: work("b"))
        )
        assert list(outcomes) == [("a", False), ("b", False)]

    async def test_a_failure_is_shared_with_the_waiters(self) -> None:
        flight: SingleFlight[int] = SingleFlight()

        async def work() -> int:
            await asyncio.sleep(0.01)
            raise ValueError("broken")

        outcomes = await asyncio.gather(
            *(flight.run("k", work) for _ in range(3)), return_exceptions=True
        )
        assert all(isinstance(outcome, ValueError) for outcome in outcomes)
        assert not flight.running("k")

    async def test_a_waiter_runs_the_work_itself_when_the_leader_is_cancelled(self) -> None:
        flight: SingleFlight[int] = SingleFlight()
        started = asyncio.Event()
        runs = 0

        async def work() -> int:
            nonlocal runs
            runs += 1
            started.set()
            await asyncio.sleep(0.05)
            return runs

        leader = asyncio.create_task(flight.run("k", work))
        await started.wait()
        waiter = asyncio.create_task(flight.run("k", work))
        await asyncio.sleep(0)
        leader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await leader
        assert await waiter == (2, False)

    async def test_a_cancelled_waiter_leaves_the_leader_running(self) -> None:
        flight: SingleFlight[int] = SingleFlight()

        async def work() -> int:
            await asyncio.sleep(0.05)
            return 7

        leader = asyncio.create_task(flight.run("k", work))
        await asyncio.sleep(0)
        waiter = asyncio.create_task(flight.run("k", work))
        await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert await leader == (7, False)
