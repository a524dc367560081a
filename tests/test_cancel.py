"""A cancelled or disconnected run stops within one step.

Gradio stops a streamed handler by closing its generator (the Stop button's ``cancels=``, a
client's ``/cancel``, a closed tab); the handler's ``in_background`` then tells the loop's thread
to stop. Measured here: the U-Net forward passes made after the close (at most the one that was
running), in ``in_background`` itself and through the served app's ``/denoise``.
"""

from __future__ import annotations

import inspect
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from mmstudio.catalog import Catalog, ModelSpec
from mmstudio.config import Settings
from mmstudio.devices import DeviceInfo
from mmstudio.manager import ModelManager
from mmstudio.pipelines.denoise import DenoiseSettings, denoise, denoiser_for
from mmstudio.pipelines.stream import in_background
from tests import tiny_models


class Counter:
    """Counts forward passes of a module (a forward hook), with the time of each."""

    def __init__(self, module) -> None:
        self.times: list[float] = []
        self.handle = module.register_forward_hook(lambda *_: self.times.append(time.monotonic()))

    def after(self, moment: float) -> int:
        return sum(t > moment for t in self.times)


def producers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "mmstudio-producer"]


@pytest.fixture(scope="module")
def manager(tmp_path_factory: pytest.TempPathFactory) -> ModelManager:
    root = tmp_path_factory.mktemp("cancel")
    settings = Settings(offline=True, assets=root)
    clip = tiny_models.make_open_clip(root / "clip")
    specs = [
        ModelSpec(id="clip", tasks=("similarity",), source="local", loader="open_clip",
                  path=str(clip), resolution=32),
        ModelSpec(id="pixel", tasks=("denoise",), source="local", loader="pixel_unet",
                  path=str(tiny_models.make_pixel_unet(root / "pixel", "clip")), resolution=32),
    ]
    return ModelManager(settings, Catalog(specs, settings), [DeviceInfo("cpu", 10**10, 10**10)])


@pytest.mark.parametrize("min_interval", [0.0, 0.1])
def test_closing_the_stream_stops_the_loop_within_one_step(manager: ModelManager,
                                                           min_interval: float) -> None:
    with denoiser_for(manager, "pixel") as denoiser:
        counter = Counter(denoiser.unet)
        source = denoise(denoiser, DenoiseSettings(("a red circle",), steps=400, guidance=3.0))
        stream = in_background(source, min_interval=min_interval)
        for _ in range(3):
            next(stream)
        closed = time.monotonic()
        stream.close()  # what gradio does on Stop, /cancel or a lost client
        assert time.monotonic() - closed < 0.5, "closing must not wait for the loop"
        deadline = time.monotonic() + 30
        while producers() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not producers(), "the loop's thread has ended"
        step = (counter.times[-1] - counter.times[0]) / max(1, len(counter.times) - 1)
        time.sleep(max(0.2, 5 * step))  # room for several more steps, were it still running
        counter.handle.remove()
    assert counter.after(closed) <= 1, f"{counter.after(closed)} steps after the stop"
    assert len(counter.times) < 100  # of 400
    assert inspect.getgeneratorstate(source) == inspect.GEN_CLOSED  # its cleanup ran


def test_the_stream_still_ends_and_fails_as_before(manager: ModelManager) -> None:
    with denoiser_for(manager, "pixel") as denoiser:
        items = [i for batch in in_background(denoise(denoiser, DenoiseSettings(
            ("a red circle",), steps=5)), min_interval=0.05) for i in batch]
    assert len(items) == 6  # 5 steps and the result, none lost to the rate bound

    def failing():
        yield 1
        raise ValueError("bad step")

    with pytest.raises(ValueError, match="bad step"):
        for _ in in_background(failing()):
            pass


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    """The studio served in this process (so the test can count its model's passes)."""
    from mmstudio.ui import LAUNCH_KWARGS, build_app
    from tests.conftest import free_port

    settings = Settings.from_env()
    manager = ModelManager(settings, Catalog.load(settings), [DeviceInfo("cpu", 10**10, 10**10)])
    app = build_app(manager)
    port = free_port()
    app.queue(default_concurrency_limit=4).launch(
        server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
        **LAUNCH_KWARGS)
    yield manager, f"http://127.0.0.1:{port}"
    app.close()


def test_cancelling_a_served_run_stops_it_within_one_step(served, tmp_path: Path) -> None:
    from gradio_client import Client

    manager, url = served
    with manager.use("shapes-unet") as model:
        counter = Counter(model["unet"])
        client = Client(url, verbose=False, download_files=False)
        job = client.submit("a red circle", "shapes-unet", "ddim", 100, 1.5, 0,
                            api_name="/denoise")
        deadline = time.monotonic() + 120
        while len(counter.times) < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(counter.times) >= 5, "the run started"
        asked = time.monotonic()
        job.cancel()  # POST /cancel, as the Stop button does; returns once the run is closed
        answered = time.monotonic()
        time.sleep(1.5)
        counter.handle.remove()
    step = (counter.times[4] - counter.times[0]) / 4
    after = counter.after(answered)
    print(f"cancel: {counter.after(asked)} steps between the request and its answer "
          f"({answered - asked:.2f} s, a step is {step:.3f} s); {after} after it")
    assert after <= 1, f"{after} steps after the cancel was answered"
    assert len(counter.times) < 100


def test_heartbeats_carry_nothing_and_every_step_still_arrives() -> None:
    def slow_steps():
        for index in range(8):
            time.sleep(0.1)
            yield index

    started = time.monotonic()
    batches = [(time.monotonic() - started, batch)
               for batch in in_background(slow_steps(), min_interval=1.0, heartbeat=True)]
    items = [item for _, batch in batches for item in batch]
    assert items == list(range(8))  # every step, in order, none lost to the rate bound
    beats = [t for t, batch in batches if not batch]
    assert beats, "steps were held back for the rate bound: heartbeats kept the stream closable"
    gaps = np.diff([0.0] + [t for t, _ in batches])
    assert gaps.max() < 0.25 + 0.15, gaps  # never long without a yield
    assert batches[0][1] == [0] and batches[-1][1]  # the first step and the end at once
