"""What a streamed run costs the server per page update: the shared component schema
(``ui.common.share_api_info``) and at most one heartbeat per step (``pipelines.stream``)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from mmstudio.pipelines.stream import HEARTBEAT, in_background
from mmstudio.ui.common import gr, share_api_info


@pytest.mark.parametrize("make", [gr.Image, gr.File, gr.Gallery, gr.Audio, gr.Video, gr.JSON])
def test_shared_schema_equals_the_components_own(make) -> None:
    from gradio.components.base import Component

    assert share_api_info() is False  # installed once, on import of the UI
    first, second = make(render=False), make(render=False)
    own = type(first).api_info
    if own is not Component.api_info:  # computes its own schema: untouched
        return
    schema = first.api_info()
    again = second.api_info()
    assert json.dumps(schema, sort_keys=True) == json.dumps(again, sort_keys=True)
    assert schema is not again  # each instance owns its copy
    again["mutated"] = True
    assert "mutated" not in make(render=False).api_info()
    # the same as the data model's own schema, computed as gradio does
    expected = make(render=False).data_model.model_json_schema()
    expected["additional_description"] = expected.pop("description", None)
    assert json.dumps(schema, sort_keys=True) == json.dumps(expected, sort_keys=True)


def test_at_most_one_heartbeat_per_step() -> None:
    def slow_steps():
        for index in range(6):
            time.sleep(HEARTBEAT * 2.5)  # steps slower than the heartbeat
            yield index

    batches = list(in_background(slow_steps(), min_interval=10.0, heartbeat=True))
    beats = [b for b in batches if not b]
    assert [i for b in batches for i in b] == list(range(6))
    assert 1 <= len(beats) <= 6  # one per step at most, none while waiting between steps


def test_components_build_the_same_with_cached_argspecs() -> None:
    import inspect as real_inspect

    from gradio import component_meta

    from mmstudio.ui.common import cache_argspecs

    assert cache_argspecs() is False  # installed once, on import of the UI
    init = gr.Slider.__init__.__wrapped__  # the function updateable wraps
    assert component_meta.inspect.getfullargspec(init) == real_inspect.getfullargspec(init)
    assert component_meta.inspect.signature is real_inspect.signature  # the rest passes through
    slider = gr.Slider(2, 9, value=3, step=1, label="steps", render=False)
    assert (slider.minimum, slider.maximum, slider.value, slider.label) == (2, 9, 3, "steps")
    assert slider.constructor_args["label"] == "steps"


def test_cached_text_equals_drawn_text() -> None:
    import numpy as np
    from PIL import Image, ImageDraw

    from mmstudio.pipelines.sound_pictures import _font, draw_text

    drawn = Image.new("RGB", (80, 30), (255, 255, 255))
    ImageDraw.Draw(drawn).text((40, 15), "0.83", fill=(0, 0, 0), font=_font(12), anchor="mm")
    cached = Image.new("RGB", (80, 30), (255, 255, 255))
    draw_text(cached, (40, 15), "0.83", (0, 0, 0), 12, "mm")
    difference = np.abs(np.asarray(drawn, int) - np.asarray(cached, int))
    assert difference.max() <= 2 and (np.asarray(cached) < 128).any()  # the same glyphs


def test_text_draw_caches_default_font_labels_and_draws_anything_else_as_usual() -> None:
    import numpy as np
    from PIL import Image, ImageDraw

    from mmstudio.pipelines import sound_pictures
    from mmstudio.pipelines.sound_pictures import _font, text_draw

    def both(mode: str, fill, **kwargs) -> tuple[np.ndarray, np.ndarray]:
        pictures = []
        for make in (ImageDraw.Draw, text_draw):
            image = Image.new(mode, (120, 30), 255 if mode == "L" else (255, 255, 255))
            make(image).text((6, 15), "a red circle", fill=fill, font=_font(12), anchor="lm",
                             **kwargs)
            pictures.append(np.asarray(image, int))
        return pictures[0], pictures[1]

    plain, cached = both("RGB", (55, 65, 81))
    assert np.abs(plain - cached).max() <= 2 and (cached < 128).any()
    hits = sound_pictures._text_mask.cache_info().hits
    both("RGB", (55, 65, 81))
    assert sound_pictures._text_mask.cache_info().hits == hits + 1  # rendered once, reused
    for mode, fill, kwargs in (("L", 0, {}), ("RGB", (0, 0, 0), {"stroke_width": 1})):
        plain, cached = both(mode, fill, **kwargs)  # not the cached kind: drawn by Pillow
        assert np.array_equal(plain, cached) and (cached < 128).any()


def test_skipped_outputs_pass_straight_through_and_the_rest_as_gradio_makes_them() -> None:
    import asyncio

    import numpy as np
    from gradio.blocks import Blocks
    from gradio.state_holder import SessionState

    from mmstudio.ui.common import skip_skips

    assert skip_skips() is False  # installed once, on import of the UI
    patched = Blocks.postprocess_data
    original = patched.original
    with gr.Blocks() as demo:
        image = gr.Image(format="png")
        text = gr.Markdown()
        slider = gr.Slider(1, 5)
        gr.Button().click(lambda: None, None, [image, text, slider])
    block_fn = demo.fns[0]
    picture = np.full((4, 4, 3), 7, np.uint8)
    cases = [(picture, gr.skip(), gr.skip()), (gr.skip(), "words", gr.skip()),
             (gr.skip(), gr.skip(), gr.skip()), (picture, "words", gr.update(maximum=9)),
             (gr.skip(), gr.skip(), gr.update(maximum=9))]
    for predictions in cases:
        ours, theirs = SessionState(demo), SessionState(demo)
        got = asyncio.run(patched(demo, block_fn, [*predictions], ours))
        expected = asyncio.run(original(demo, block_fn, [*predictions], theirs))
        assert json.dumps(got, sort_keys=True, default=str) == \
            json.dumps(expected, sort_keys=True, default=str), predictions
        assert ours[slider._id].maximum == theirs[slider._id].maximum
        assert ours.config_values[slider._id] == theirs.config_values[slider._id]
        if predictions[2] != gr.skip():
            assert ours[slider._id].maximum == 9


def test_cache_files_appear_whole_and_the_same_content_is_not_written_again(tmp_path) -> None:
    import threading

    import numpy as np
    from gradio import processing_utils as pu
    from PIL import Image

    from mmstudio.ui.common import atomic_cache_writes

    assert atomic_cache_writes() is False  # installed once, on import of the UI
    picture = Image.fromarray(np.random.default_rng(0).integers(0, 255, (256, 256, 3), np.uint8))
    first = pu.save_pil_to_cache(picture, str(tmp_path), format="png")
    stamp = Path(first).stat().st_mtime_ns, Path(first).stat().st_ino
    broken, stop = [], threading.Event()

    def read() -> None:
        while not stop.is_set():
            try:
                with Image.open(first) as image:
                    image.load()
            except Exception as exc:  # noqa: BLE001 - collected and reported
                broken.append(exc)

    readers = [threading.Thread(target=read) for _ in range(2)]
    for reader in readers:
        reader.start()
    for _ in range(40):  # the same picture again and again, as a classroom on one prompt
        assert pu.save_pil_to_cache(picture, str(tmp_path), format="png") == first
    stop.set()
    for reader in readers:
        reader.join()
    assert not broken, broken[:1]
    assert Path(first).stat().st_ino == stamp[1]  # never replaced: the same file, touched
    assert not [p for p in Path(first).parent.iterdir() if p.name.startswith(".")]  # no leftovers
    data = b"RIFF\x00\x00\x00\x00WAVEfmt "
    saved = pu.save_bytes_to_cache(data, "clip", str(tmp_path))
    assert saved.endswith("clip.wav") and Path(saved).read_bytes() == data
    tone = (np.sin(np.arange(1600) / 5) * 16000).astype(np.int16)
    audio = pu.save_audio_to_cache(tone, 16000, "wav", str(tmp_path))
    assert Path(audio).suffix == ".wav" and Path(audio).stat().st_size > 3000
    assert pu.save_audio_to_cache(tone, 16000, "wav", str(tmp_path)) == audio
