"""Reading ahead: batches decoded in a thread while the model works on the current one.

Decoders (PyAV, Pillow) release the GIL, so a producer thread overlaps decoding with inference; the queue
between them is bounded, so memory stays bounded too. Used by the detection pass over videos and by the
patch-feature streams.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from queue import Full, Queue
from typing import Any, TypeVar

__all__ = ["batched", "prefetch"]

T = TypeVar("T")


def prefetch(batches: Iterator[T], depth: int = 1) -> Iterator[T]:
    """Produce the next items of ``batches`` in a thread while the caller works on the current one.

    At most ``depth`` items wait (bounded memory). An exception in the producer (e.g. a
    :class:`~dinoscope.errors.VideoError`) is raised here, in order; closing this generator stops the thread
    after its current item and closes ``batches``.

    Args:
        batches: Any iterator, typically of lists from :func:`batched`.
        depth: Items produced ahead.

    Returns:
        The same items, in the same order.

    Example:
        >>> list(prefetch(batched(iter(range(5)), 2)))
        [[0, 1], [2, 3], [4]]
    """
    done = object()
    queue: Queue[Any] = Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in batches:
                while not stop.is_set():
                    try:
                        queue.put(item, timeout=0.1)
                        break
                    except Full:
                        continue
                if stop.is_set():
                    return
            queue.put(done)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            queue.put(exc)
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="dinoscope-decode", daemon=True)
    thread.start()
    try:
        while (item := queue.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while not queue.empty():  # unblock a producer waiting on a full queue
            queue.get_nowait()
        thread.join()


def batched(items: Iterator[T], size: int) -> Iterator[list[T]]:
    """Lists of ``size`` consecutive items (the last one may be shorter).

    Example:
        >>> list(batched(iter("abcde"), 2))
        [['a', 'b'], ['c', 'd'], ['e']]
    """
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
