"""Run a generator in a background thread and consume what it has produced so far.

Used to stream a denoising run to the browser without slowing the run down: the loop computes
step after step in its own thread, while the consumer converts and sends whatever steps are ready
(every step is kept; when the consumer is slower, it sends the newest and skips ahead).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")
_DONE = object()


def in_background(source: Iterator[T]) -> Iterator[list[T]]:
    """Yield lists of the items ``source`` has produced since the last yield (never empty)."""
    items: queue.Queue = queue.Queue()
    failure: list[BaseException] = []

    def produce() -> None:
        try:
            for item in source:
                items.put(item)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer's thread
            failure.append(exc)
        finally:
            items.put(_DONE)

    thread = threading.Thread(target=produce, name="mmstudio-producer", daemon=True)
    thread.start()
    finished = False
    while not finished:
        batch = [items.get()]
        while True:
            try:
                batch.append(items.get_nowait())
            except queue.Empty:
                break
        if batch[-1] is _DONE:
            finished = True
            batch.pop()
        if batch:
            yield batch
    thread.join()
    if failure:
        raise failure[0]
