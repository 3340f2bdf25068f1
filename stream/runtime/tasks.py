"""Stopping asyncio tasks for sure. On Python 3.11, `asyncio.wait_for` can swallow a cancellation that
lands just as its operation completes (fixed in 3.12); the task then runs on, and `asyncio.run`'s
final clean-up waits for it forever. So a task is cancelled again until it is really done."""

from __future__ import annotations

import asyncio


async def cancel_and_wait(*tasks: asyncio.Task | None, attempts: int = 20, wait_s: float = 0.25) -> None:
    pending = {t for t in tasks if t is not None and not t.done()}
    for _ in range(attempts):
        if not pending:
            return
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=wait_s)
