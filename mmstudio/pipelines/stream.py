"""Run a generator in a background thread and consume what it has produced so far.

Used to stream a denoising run to the browser without slowing the run down: the loop computes
step after step in its own thread, while the consumer converts and sends whatever steps are ready
(every step is kept; when the consumer is slower, it sends the newest and skips ahead).

Stopping: when the consumer stops (the browser's Stop button or a closed tab make gradio close
the handler's generator, which closes this one), the producer is told at once and stops after
the step it is computing: at most one step is computed after the consumer has gone. Closing never
waits for that step, because gradio closes generators on its event loop.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")
_DONE = object()
# A streamed run's page updates: at most one per this many seconds. Each costs the server three
# PNGs and a message per client (more than a small model's step); ten a second animate smoothly,
# and the finished run's slider shows every step.
UPDATE_INTERVAL = 0.1


def in_background(source: Iterator[T], min_interval: float = 0.0) -> Iterator[list[T]]:
    """Yield lists of the items ``source`` has produced since the last yield (never empty).

    ``min_interval``: at least this many seconds between two yields, except that the end of
    ``source`` is passed on at once. Each yield costs the consumer a display update (gradio
    encodes and sends images); bounding their rate bounds that cost whatever the step rate.
    """
    items: queue.Queue = queue.Queue()
    failure: list[BaseException] = []
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in source:  # one item per step: the stop signal is checked between steps
                if stop.is_set():
                    break
                items.put(item)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer's thread
            failure.append(exc)
        finally:
            try:
                close = getattr(source, "close", None)
                if close is not None:
                    close()  # a generator's own cleanup (``finally``, ``with``) runs now
            finally:
                items.put(_DONE)

    thread = threading.Thread(target=produce, name="mmstudio-producer", daemon=True)
    thread.start()
    finished = False
    last_yield = 0.0
    try:
        while not finished:
            batch = [items.get()]
            if batch[-1] is not _DONE and min_interval > 0:
                deadline = last_yield + min_interval
                while batch[-1] is not _DONE and (remaining := deadline - time.monotonic()) > 0:
                    try:
                        batch.append(items.get(timeout=remaining))
                    except queue.Empty:
                        break
            while batch[-1] is not _DONE:
                try:
                    batch.append(items.get_nowait())
                except queue.Empty:
                    break
            if batch[-1] is _DONE:
                finished = True
                batch.pop()
            if batch:
                last_yield = time.monotonic()
                yield batch
    finally:
        stop.set()  # normal end, consumer closed (GeneratorExit) or failed: the producer stops
    thread.join()
    if failure:
        raise failure[0]
