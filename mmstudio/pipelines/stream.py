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
# A streamed run's page updates: at most one per this many seconds, times the number of runs
# streaming at once (at most MAX_INTERVAL). Each update costs the server three PNGs, their cache
# files and a message (more than a small model's step), so the whole server sends about ten a
# second however many users stream: smooth for one run, every second or so for a classroom
# (whose steps are slower anyway), and the finished run's slider shows every step.
UPDATE_INTERVAL = 0.1
MAX_INTERVAL = 2.0
HEARTBEAT = 0.25  # with ``heartbeat``: the longest a stream goes without yielding, steps apart
_streaming = [0]  # rate-bounded streams open now
_streaming_lock = threading.Lock()


def in_background(source: Iterator[T], min_interval: float = 0.0,
                  heartbeat: bool = False) -> Iterator[list[T]]:
    """Yield lists of the items ``source`` has produced since the last yield (never empty, but
    see ``heartbeat``).

    ``min_interval``: at least this many seconds between two yields, times the number of such
    streams open in the process (at most ``MAX_INTERVAL``), except that the end of ``source`` is
    passed on at once. Each yield costs the consumer a display update (gradio encodes and sends
    images); bounding their rate bounds that cost whatever the step rate and the number of users.

    ``heartbeat``: while items are held back for the rate bound, yield an empty list (the consumer
    sends nothing for it) when an item arrives ``HEARTBEAT`` seconds or more after the last
    yield. A generator can only be closed between yields, so this keeps the time from Stop to the
    close within a quarter second or one step, whichever is longer, even when updates are seconds
    apart; a lone run (updates a tenth of a second apart) never needs one. At most one heartbeat
    per item: an empty yield still costs the consumer (gradio rebuilds every skipped output), and
    a producer between items has no step to stop.
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

    def drain(held: list) -> None:
        while held[-1] is not _DONE:
            try:
                held.append(items.get_nowait())
            except queue.Empty:
                return

    thread = threading.Thread(target=produce, name="mmstudio-producer", daemon=True)
    thread.start()
    bounded = min_interval > 0
    last_yield = last_beat = 0.0
    held: list = []
    if bounded:
        with _streaming_lock:
            _streaming[0] += 1
    try:
        while True:
            if not held or held[-1] is not _DONE:
                held.append(items.get())
                drain(held)
            if held[-1] is _DONE:
                held.pop()
                if held:
                    yield held
                break
            if bounded:
                interval = min(MAX_INTERVAL, min_interval * max(1, _streaming[0]))
                deadline = last_yield + interval
                # hold the steps back until the update is due; with ``heartbeat``, a step that
                # arrives HEARTBEAT seconds or more after the last yield is answered by one at
                # once (so at most one per step: a yield costs the server even when it carries
                # nothing, and between steps the producer has nothing to stop anyway)
                beat = False
                while (remaining := deadline - time.monotonic()) > 0:
                    try:
                        held.append(items.get(timeout=remaining))
                    except queue.Empty:
                        break
                    if held[-1] is _DONE:
                        break
                    drain(held)
                    if heartbeat and time.monotonic() - last_beat >= HEARTBEAT:
                        beat = True
                        break
                if held[-1] is _DONE:
                    continue  # handled at the top: the end goes out at once
                if beat and time.monotonic() < deadline:  # nothing to show yet
                    last_beat = time.monotonic()
                    yield []
                    continue
            batch, held = held, []
            last_yield = last_beat = time.monotonic()
            yield batch
    finally:
        stop.set()  # normal end, consumer closed (GeneratorExit) or failed: the producer stops
        if bounded:
            with _streaming_lock:
                _streaming[0] -= 1
    thread.join()
    if failure:
        raise failure[0]
