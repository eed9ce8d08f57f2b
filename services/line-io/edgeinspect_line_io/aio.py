"""One asyncio event loop on a thread of its own, for the asyncio libraries (asyncua, pymodbus' server).

The rest of the service is threads; they hand coroutines to this loop with ``run`` and wait for the
answer with a timeout, so a hung PLC connection costs a caller its timeout, never its thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    """``start`` once, ``run(coro)`` from any thread, ``stop`` at shutdown."""

    def __init__(self, name: str = "line-io-aio") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._started = False

    def start(self) -> LoopThread:
        if not self._started:
            self._started = True
            self._thread.start()
        return self

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = 10.0) -> T:
        """Run ``coro`` on the loop and return its result (``TimeoutError`` after ``timeout``)."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"no answer within {timeout} s") from None

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def stop(self) -> None:
        """Cancel what still runs on the loop (subscriptions, sessions), then stop it."""
        if self._started and self.loop.is_running():
            with contextlib.suppress(TimeoutError, RuntimeError):
                self.run(_cancel_others(), timeout=5.0)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)


async def _cancel_others() -> None:
    current = asyncio.current_task()
    others = [task for task in asyncio.all_tasks() if task is not current]
    for task in others:
        task.cancel()
    await asyncio.gather(*others, return_exceptions=True)
