"""Shared forward passes across runs (``pipelines.batching``): concurrent denoising runs with
different prompts, seeds, guidance, step counts and schedulers share passes, and each gets the
result it gets alone.

Tolerance: batching changes only the batch a sample is computed in, and with it the order in which
float32 kernels sum (oneDNN picks blockings by batch size). That is a relative difference of about
1e-7 per pass; the loop's 4 to 9 steps keep it far below half a uint8 level (2e-3 of the [-1, 1]
range), so an image may differ only where a value sits on a rounding boundary: at most 1 level.
Measured here and on shapes-unet (8 and 16 runs of 25 steps): 0.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from mmstudio.catalog import Catalog, ModelSpec
from mmstudio.config import Settings
from mmstudio.devices import DeviceInfo
from mmstudio.manager import ModelManager
from mmstudio.pipelines.batching import BatchedDenoiser, Batcher, batched, batcher_for
from mmstudio.pipelines.denoise import DenoiseSettings, denoiser_for, run
from tests import tiny_models

JOBS = [
    DenoiseSettings(("a red circle",), steps=6, guidance=3.0, seed=1, scheduler="ddim"),
    DenoiseSettings(("a blue square in the top left",), steps=9, guidance=0.0, seed=2,
                    scheduler="euler_a"),
    DenoiseSettings(("",), steps=4, guidance=2.0, seed=3, scheduler="dpmpp_2m", n=2),
    DenoiseSettings(("a green cross",), steps=7, guidance=1.5, seed=4, scheduler="ddim"),
    DenoiseSettings(("a red circle",), steps=6, guidance=3.0, seed=5, scheduler="euler"),
]


@pytest.fixture(scope="module")
def manager(tmp_path_factory: pytest.TempPathFactory) -> ModelManager:
    root = tmp_path_factory.mktemp("batching")
    settings = Settings(offline=True, assets=root)
    clip = tiny_models.make_open_clip(root / "clip")
    specs = [
        ModelSpec(id="clip", tasks=("similarity",), source="local", loader="open_clip",
                  path=str(clip), resolution=32),
        ModelSpec(id="pixel", tasks=("denoise",), source="local", loader="pixel_unet",
                  path=str(tiny_models.make_pixel_unet(root / "pixel", "clip")), resolution=32),
        ModelSpec(id="dit", tasks=("dit",), source="local", loader="dit",
                  path=str(tiny_models.make_dit(root / "dit")), resolution=16),
    ]
    return ModelManager(settings, Catalog(specs, settings), [DeviceInfo("cpu", 10**10, 10**10)])


def run_concurrently(denoiser, batcher: Batcher, jobs: list[DenoiseSettings]) -> list[np.ndarray]:
    results: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(jobs))

    def work(i: int) -> None:
        try:
            barrier.wait()
            results[i] = run(BatchedDenoiser(denoiser, batcher), jobs[i]).images
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    return [results[i] for i in range(len(jobs))]


@pytest.mark.parametrize("lanes", [1, 2])
def test_concurrent_runs_share_passes_and_match_alone(manager: ModelManager, lanes: int) -> None:
    with denoiser_for(manager, "pixel") as denoiser:
        alone = [run(denoiser, job).images for job in JOBS]
        batcher = Batcher(lanes=lanes)
        together = run_concurrently(denoiser, batcher, JOBS)
    steps = sum(job.steps for job in JOBS)  # passes the runs would make one by one
    assert batcher.passes < steps * 0.75, (batcher.passes, steps)  # really shared
    assert batcher.samples == sum(job.n * (2 if job.guidance > 1 else 1) * job.steps
                                  for job in JOBS)  # every sample went through one pass
    worst = max(int(np.abs(a.astype(int) - b.astype(int)).max())
                for a, b in zip(alone, together, strict=True))
    assert worst <= 1, worst


def test_class_conditional_dit_runs_share_passes(manager: ModelManager) -> None:
    jobs = [DenoiseSettings(("3",), steps=5, guidance=2.0, seed=1),
            DenoiseSettings(("7",), steps=8, guidance=0.0, seed=2, scheduler="euler"),
            DenoiseSettings(("",), steps=5, guidance=0.0, seed=3, n=3)]
    with denoiser_for(manager, "dit") as denoiser:
        alone = [run(denoiser, job).images for job in jobs]
        batcher = Batcher(lanes=1)
        together = run_concurrently(denoiser, batcher, jobs)
    assert batcher.passes < sum(job.steps for job in jobs)
    for a, b in zip(alone, together, strict=True):
        assert int(np.abs(a.astype(int) - b.astype(int)).max()) <= 1


def test_a_lone_run_is_the_unbatched_run(manager: ModelManager) -> None:
    """One run alone goes through exactly its own calls: same passes, same bits."""
    with denoiser_for(manager, "pixel") as denoiser:
        job = JOBS[0]
        batcher = Batcher(lanes=1)
        assert np.array_equal(run(BatchedDenoiser(denoiser, batcher), job).images,
                              run(denoiser, job).images)
    assert batcher.passes == job.steps and batcher.samples == 2 * job.steps
    assert len(batcher._active) == 0  # the run ended when it decoded


def test_one_batcher_per_network_and_it_goes_with_the_network(manager: ModelManager) -> None:
    import gc
    import weakref

    with denoiser_for(manager, "pixel") as first, denoiser_for(manager, "pixel") as second:
        assert batcher_for(first.unet) is batcher_for(second.unet)
        wrapped = batched(first)
        assert isinstance(wrapped, BatchedDenoiser) and wrapped.size == first.size
    network = torch.nn.Linear(2, 2)
    gone = weakref.ref(batcher_for(network))
    del network
    gc.collect()
    assert gone() is None


def test_a_failing_pass_fails_every_run_in_it_and_the_batcher_goes_on() -> None:
    def broken(x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("out of memory")

    class Run:  # a run's identity: anything weakly referable
        pass

    batcher, failures = Batcher(lanes=1), []
    barrier = threading.Barrier(3)

    def work() -> None:
        barrier.wait()
        try:
            batcher.predict(broken, torch.zeros(1, 1), torch.tensor(1), torch.zeros(1, 1),
                            run=Run())
        except RuntimeError as exc:
            failures.append(str(exc))

    runs = [threading.Thread(target=work) for _ in range(3)]
    for thread in runs:
        thread.start()
    for thread in runs:
        thread.join(30)
    assert failures == ["out of memory"] * 3
    assert not batcher._pending and batcher._running == 0
    out = batcher.predict(lambda x, t, c: x + t, torch.zeros(2, 1), torch.tensor(1.0),
                          torch.zeros(2, 1))
    assert out.tolist() == [[1.0], [1.0]]


@pytest.mark.parametrize("lanes", [1, 3])
def test_many_runs_of_mixed_shapes_each_get_their_own_answer(lanes: int) -> None:
    """32 runs x 20 steps, batch sizes 1 to 3, two input shapes that cannot be joined, a random
    pause between steps: every answer is the run's own (x * 2 + t), nothing hangs."""
    import random

    def predict(x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        t = t.reshape(-1, *([1] * (x.ndim - 1))) if t.ndim else t
        return x * 2 + t + cond.reshape(cond.shape[0], *([1] * (x.ndim - 1)))

    class Run:
        pass

    batcher, failures = Batcher(lanes=lanes), []

    def work(i: int) -> None:
        rng, run = random.Random(i), Run()
        shape = (2, 2) if i % 2 else (3,)
        for step in range(20):
            b = rng.randint(1, 3)
            x = torch.full((b, *shape), float(i))
            got = batcher.predict(predict, x, torch.tensor(float(step)), torch.zeros(b), run=run)
            if not torch.equal(got, x * 2 + step):
                failures.append((i, step))
            time.sleep(rng.random() * 0.002)
        batcher.end(run)

    runs = [threading.Thread(target=work, args=(i,)) for i in range(32)]
    for thread in runs:
        thread.start()
    for thread in runs:
        thread.join(60)
    assert not any(thread.is_alive() for thread in runs), "a run hung"
    assert not failures, failures[:5]
    assert batcher.passes < 32 * 20  # shared
    assert not batcher._pending and batcher._running == 0 and not batcher._active
