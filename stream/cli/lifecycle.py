"""How every command runs and ends: until its work is done or Ctrl-C/SIGTERM stops it, then one final
log line and the exit status."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Awaitable

import structlog

from .options import EXIT_INTERRUPTED, EXIT_UNDELIVERED
from ..mqtt.publisher import DeliveryReport, delivery_loss_line

log = structlog.get_logger("ppg_stream")


async def until_done_or_interrupted(work: Awaitable) -> tuple[object, bool]:
    """Run `work` until it ends or Ctrl-C/SIGTERM cancels it; returns (result or None, interrupted).
    The one place signals are handled: the handlers are installed before `work` starts, so a signal
    during start-up ends the run cleanly too."""
    async def awaited():  # a Task of our own: a cancelled gather() future reports an exception, not cancelled()
        return await work

    task = asyncio.create_task(awaited())
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, task.cancel)
    try:
        return await task, False
    except asyncio.CancelledError:
        if not task.cancelled():
            raise  # we were cancelled from outside, not by a signal
        return None, True
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)


def finish(what: str, fields: dict, interrupted: bool, delivery: DeliveryReport | None, outbox: int, flush_timeout_s: float,
           interrupted_status: int = EXIT_INTERRUPTED, target: str = "the MQTT broker") -> int:
    """The final log line and the exit status: 1 if any message was lost (dropped or undelivered)."""
    if delivery is not None:
        fields.update(delivered=delivery.delivered, dropped_overflow=delivery.dropped_overflow, undelivered=delivery.undelivered)
    log.info(f"{what} interrupted" if interrupted else f"{what} finished", **fields)
    if delivery is not None and delivery.lost:
        line = delivery_loss_line(delivery, outbox, flush_timeout_s).replace("the MQTT broker", target)
        print(f"ppg-stream: error: {line}", file=sys.stderr)
        return EXIT_UNDELIVERED
    return interrupted_status if interrupted else 0
