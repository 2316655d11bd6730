"""The soak's load tasks are stopped even when a cancellation gets lost, and never hang its end."""

from __future__ import annotations

import asyncio

from soak.__main__ import stop_tasks


async def swallow_cancellations(times: int) -> None:
    """Stands for a loop whose cancellation was lost in a race (as 3.11's wait_for can lose one)."""
    swallowed = 0
    while True:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            swallowed += 1
            if swallowed > times:
                raise


async def fail() -> None:
    raise RuntimeError("a load task that failed")


async def test_a_task_that_loses_a_cancellation_is_cancelled_again() -> None:
    plain = asyncio.create_task(asyncio.sleep(10))
    stubborn = asyncio.create_task(swallow_cancellations(times=1))
    failed = asyncio.create_task(fail())
    await asyncio.sleep(0)
    assert await stop_tasks([plain, stubborn, failed], wait_s=0.2) == []
    assert plain.cancelled() and stubborn.cancelled() and failed.done()


async def test_a_task_that_will_not_stop_is_named_instead_of_hanging_the_run() -> None:
    hopeless = asyncio.create_task(swallow_cancellations(times=5))
    await asyncio.sleep(0)
    stuck = await stop_tasks([hopeless], rounds=3, wait_s=0.05)
    assert len(stuck) == 1 and "swallow_cancellations" in stuck[0]
    assert not hopeless.done()
    assert await stop_tasks([hopeless], rounds=3, wait_s=0.2) == []  # three more: it gives in
