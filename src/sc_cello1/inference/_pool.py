"""A bounded pool of daemon threads whose results arrive one by one, and stop at once.

:class:`concurrent.futures.ThreadPoolExecutor` joins its threads when its ``with``
block ends and again at interpreter exit, so Ctrl-C waits for every request in flight
(minutes with a long timeout). Here the workers are daemon threads: closing the
iterator (or an exception in the consumer, such as ``KeyboardInterrupt``) stops them
from taking new jobs and returns at once; a request already in flight finishes (or
fails) in the background and its result is dropped.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Generator, Sequence
from typing import Any

__all__ = ["run_each"]

# Seconds the consumer waits on the result queue between checks (keeps Ctrl-C prompt on
# platforms where a blocking wait is not interrupted by signals).
_POLL = 0.1


def run_each(
    fn: Callable[[Any], Any], jobs: Sequence[Any], *, max_workers: int
) -> Generator[tuple[int, Any, BaseException | None], None, None]:
    """Run ``fn(job)`` for each job on at most ``max_workers`` daemon threads.

    Yields ``(index, result, None)`` or ``(index, None, error)`` in completion order; an
    ``Exception`` raised by ``fn`` is yielded, never raised. Closing the iterator early
    cancels the jobs not started yet.
    """
    todo: queue.SimpleQueue[int] = queue.SimpleQueue()
    for i in range(len(jobs)):
        todo.put(i)
    results: queue.SimpleQueue[tuple[int, Any, BaseException | None]] = queue.SimpleQueue()
    stop = threading.Event()

    def work() -> None:
        while not stop.is_set():
            try:
                i = todo.get_nowait()
            except queue.Empty:
                return
            try:
                out = fn(jobs[i])
            except Exception as e:  # handed to the consumer
                results.put((i, None, e))
            else:
                results.put((i, out, None))

    threads = [
        threading.Thread(target=work, name=f"sc_cello1-request-{k}", daemon=True)
        for k in range(min(max_workers, len(jobs)))
    ]
    for t in threads:
        t.start()
    try:
        for _ in range(len(jobs)):
            while True:
                try:
                    item = results.get(timeout=_POLL)
                    break
                except queue.Empty:
                    if not any(t.is_alive() for t in threads) and results.empty():
                        msg = "the request threads stopped without a result"  # pragma: no cover
                        raise RuntimeError(msg) from None  # pragma: no cover
            yield item
    finally:
        stop.set()
