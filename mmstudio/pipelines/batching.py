"""Shared forward passes: denoising runs of different users on the same model, batched per step.

Thirty students pressing Generate at once would otherwise run thirty forward passes of batch 1
(or 2, with guidance) one after another. ``batched(denoiser)`` wraps a ``Denoiser`` so that its
``predict(x, t, cond)`` goes through the one ``Batcher`` of its network: each run submits its
step and waits; one of the waiting runs (the leader) takes everything that is waiting, joins it
along the batch with one timestep per sample, runs one forward pass, and hands each run its
slice back. Everything else stays per run: the loop, its scheduler and its generators, so each
run's result is the same request's result alone, up to the float rounding of the batch's
composition (kernels sum in a different order at another batch size). Runs with different
prompts, seeds, guidance, step counts and schedulers share passes, since the network sees only
(x_t, t, condition) per sample. Samples that cannot be joined (another shape or dtype) go in
separate passes.

Waiting: a leader waits for the other active runs to submit (they are doing their own scheduler
step, a millisecond), but never longer than a tenth of the last pass (at most 50 ms): a lone run
never waits, and a straggler costs little. Passes at once per network (``lanes``): one on a GPU,
where passes are serial anyway; on a CPU as many as torch's threads (cores - 1,
``config.auto_threads``) fit in the cores (``cpu_lanes``): 2 on 2 cores, where one pass of one
thread left the second core to the Python work around the passes, which holds the GIL and kept
the served app at 1.1 cores with 16 clients (``bench load``); torch's ops release the GIL, so two
passes run side by side. A lone run uses one lane, as before.
"""

from __future__ import annotations

import math
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

import torch

# Samples per pass: bounds the memory and the latency a pass adds to everyone in it. On a CPU the
# cost per sample stops falling at about 16 to 32 (shapes-unet, one thread: 14.8 ms at 2, 11.2 at
# 8, 10.4 at 16, 10.8 at 32, 12.0 at 48: the activations outgrow the caches); a GPU keeps gaining.
MAX_SAMPLES = {"cpu": 32}
MAX_SAMPLES_GPU = 128
MAX_WAIT = 0.05  # seconds a leader waits at most for the other active runs
WAIT_SHARE = 0.1  # ... and at most this share of the last pass's duration

_BATCHERS: weakref.WeakKeyDictionary[Any, Batcher] = weakref.WeakKeyDictionary()
_BATCHERS_LOCK = threading.Lock()


@dataclass(eq=False)
class _Request:
    predict: Any  # the submitting denoiser's own predict (any one of a group computes the same)
    x: torch.Tensor  # (b, C, h, w)
    t: torch.Tensor  # () or (b,)
    cond: Any  # tensor (b, ...) or tuple of tensors (b, ...)
    run: Any  # who submitted (one denoising run)
    wake: threading.Event = field(default_factory=threading.Event)  # done, or lead
    done: bool = False
    lead: bool = False  # handed a free lane: the submitting thread runs the next pass
    result: torch.Tensor | None = None
    error: BaseException | None = None
    seconds: float = 0.0  # the pass's duration (on a group's first request)

    @property
    def size(self) -> int:
        return self.x.shape[0]

    def key(self) -> tuple:
        """Requests with equal keys can share a pass."""
        conds = self.cond if isinstance(self.cond, tuple) else (self.cond,)
        return (tuple(self.x.shape[1:]), self.x.dtype, self.x.device,
                tuple((tuple(c.shape[1:]), c.dtype) for c in conds))


class Batcher:
    """Joins concurrent ``predict`` calls of one network into shared forward passes.

    Each waiting thread sleeps on its own request's event, woken once: when its result is in, or
    when a lane frees up and it is the oldest waiting (it then leads the next pass). Only a
    leader gathering its group listens to new arrivals, so thirty waiting runs cost nothing.
    """

    def __init__(self, lanes: int = 1, max_samples: int = MAX_SAMPLES["cpu"],
                 max_wait: float = MAX_WAIT) -> None:
        self.lanes, self.max_samples, self.max_wait = max(1, lanes), max_samples, max_wait
        self._lock = threading.Lock()
        self._arrival = threading.Condition(self._lock)  # a gathering leader waits on it
        self._pending: list[_Request] = []  # FIFO
        self._running = 0  # lanes taken (gathering or in a pass)
        self._in_flight = 0  # requests in passes
        self._gathering = 0  # leaders waiting for stragglers
        self._active: weakref.WeakSet[Any] = weakref.WeakSet()  # runs between first step and end
        self._last_pass = 0.0  # seconds
        self.passes = 0  # forward passes run (for tests and benchmarks)
        self.samples = 0  # samples through them

    # ------------------------------------------------------------ runs
    def end(self, run: Any) -> None:
        """``run`` makes no more steps (a run is active from its first ``predict``)."""
        with self._lock:
            self._active.discard(run)
            if self._gathering:
                self._arrival.notify_all()

    # ------------------------------------------------------------ one step
    def predict(self, predict: Any, x: torch.Tensor, t: torch.Tensor, cond: Any,
                run: Any = None) -> torch.Tensor:
        request = _Request(predict, x, t, cond, run)
        with self._lock:
            if run is not None:
                self._active.add(run)
            self._pending.append(request)
            if self._running < self.lanes:
                self._running += 1  # a free lane: this thread leads
                request.lead = True
            elif self._gathering:
                self._arrival.notify_all()
        while True:
            if request.lead:  # first: a lane handed to this thread must be used or passed on
                request.lead = False
                self._lead()
                continue
            if request.done:
                break
            request.wake.wait()
            request.wake.clear()
        if request.error is not None:
            raise request.error
        assert request.result is not None
        return request.result

    def _lead(self) -> None:
        """Holding a lane: gather a group, run its pass, hand the lane on."""
        with self._lock:
            group = self._gather()
        if group:
            self._run(group)
        with self._lock:
            if group:
                self._last_pass = group[0].seconds
                self.passes += 1
                self.samples += sum(r.size for r in group)
                self._in_flight -= len(group)
            self._running -= 1
            for request in group:
                request.done = True
            waiting = [r for r in self._pending if not r.lead]
            if waiting and self._running < self.lanes:  # the oldest waiting run leads next
                self._running += 1
                waiting[0].lead = True
                waiting[0].wake.set()
        for request in group:
            request.wake.set()

    def _gather(self) -> list[_Request]:
        """Wait (briefly) for the other active runs, then take a group. Holds the lock."""
        deadline = time.monotonic() + min(self.max_wait, WAIT_SHARE * self._last_pass)
        while True:
            free_lanes = self.lanes - self._running + 1  # this one included
            expected = max(1, len(self._active) - self._in_flight)
            share = math.ceil(expected / free_lanes)  # split what is coming over free lanes
            remaining = deadline - time.monotonic()
            if (len(self._pending) >= share or remaining <= 0
                    or sum(r.size for r in self._pending) >= self.max_samples):
                break
            self._gathering += 1
            self._arrival.wait(remaining)
            self._gathering -= 1
        if not self._pending:
            return []
        key = self._pending[0].key()
        group, rest, samples = [], [], 0
        for request in self._pending:
            fits = samples + request.size <= self.max_samples or not group
            if len(group) < share and fits and request.key() == key:
                group.append(request)
                samples += request.size
            else:
                rest.append(request)
        self._pending = rest
        self._in_flight += len(group)
        return group

    def _run(self, group: list[_Request]) -> None:
        start = time.perf_counter()
        try:
            if len(group) == 1:  # exactly the unbatched call
                only = group[0]
                only.result = only.predict(only.x, only.t, only.cond)
            else:
                x = torch.cat([r.x for r in group])  # (sum b, C, h, w)
                t = torch.cat([r.t.reshape(-1).expand(r.size).to(x.device) for r in group])
                cond = _cat([r.cond for r in group])
                out = group[0].predict(x, t, cond)
                for request, part in zip(group, out.split([r.size for r in group]),
                                         strict=True):
                    request.result = part
        except BaseException as exc:  # noqa: BLE001 - every run in the pass gets the failure
            for request in group:
                request.error = exc
        group[0].seconds = time.perf_counter() - start


def _cat(parts: list[Any]) -> Any:
    """Join conditioning along the batch: tensors, or tuples of tensors (states, mask)."""
    if isinstance(parts[0], tuple):
        return tuple(torch.cat(group) for group in zip(*parts, strict=True))
    return torch.cat(parts)


def _device_type(network: torch.nn.Module) -> str:
    try:
        return next(network.parameters()).device.type
    except StopIteration:
        return "cpu"


def _max_samples(network: torch.nn.Module) -> int:
    return MAX_SAMPLES.get(_device_type(network), MAX_SAMPLES_GPU)


def cpu_lanes() -> int:
    """Passes at once on a CPU: as many as torch's thread count fits in the cores (2 on 2 cores,
    where a pass has 1 thread; 1 on 64 cores, where it has 63). Torch's ops release the GIL, so
    two passes of one thread each run side by side; with one lane, measured with
    ``bench load`` on 2 quiet cores, 16 clients kept the server at 1.1 cores."""
    from mmstudio.config import cpu_cores

    return max(1, cpu_cores() // max(1, torch.get_num_threads()))


def network_of(denoiser: Any) -> Any | None:
    """The module a denoiser's ``predict`` runs (U-Net or transformer): the batching key."""
    for name in ("unet", "transformer"):
        module = getattr(denoiser, name, None)
        if isinstance(module, torch.nn.Module):
            return module
    return None


def batcher_for(network: torch.nn.Module) -> Batcher:
    """The one batcher of ``network``; it goes when the network does (evicted, unloaded)."""
    with _BATCHERS_LOCK:
        batcher = _BATCHERS.get(network)
        if batcher is None:
            lanes = cpu_lanes() if _device_type(network) == "cpu" else 1
            batcher = _BATCHERS[network] = Batcher(lanes=lanes, max_samples=_max_samples(network))
        return batcher


class BatchedDenoiser:
    """A denoiser whose ``predict`` shares forward passes with other runs on the same network.

    Make one per run: it is the run's identity in the batcher, which counts it as active from
    its first step until the loop decodes (or until it is dropped, when a run is cancelled).
    Everything but ``predict`` and ``decode`` is the wrapped denoiser's."""

    def __init__(self, denoiser: Any, batcher: Batcher) -> None:
        object.__setattr__(self, "_denoiser", denoiser)
        object.__setattr__(self, "_batcher", batcher)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._denoiser, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._denoiser, name, value)  # e.g. the attention recorder

    def predict(self, x: torch.Tensor, t: torch.Tensor, cond: Any) -> torch.Tensor:
        if getattr(self._denoiser, "recorder", None) is not None:  # attention maps: this run's
            return self._denoiser.predict(x, t, cond)
        return self._batcher.predict(self._denoiser.predict, x, t, cond, run=self)

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        self._batcher.end(self)  # the loop is done with the network
        return self._denoiser.decode(x)


def batched(denoiser: Any) -> Any:
    """``denoiser`` with shared forward passes, or itself when its network is unknown."""
    network = network_of(denoiser)
    if network is None:
        return denoiser
    return BatchedDenoiser(denoiser, batcher_for(network))
