"""Sounds and captions in one CLAP space: the comparison functions of
``mmstudio.pipelines.sound_align``, their pictures, the Similarity tab's sounds handlers and
``similarity --audio``.

Where sounds-clap is not shipped yet, an untrained model of exactly its architecture and folder
layout stands in (``tests/stand_ins.py``): every loader, view and shape is the real one; the
numbers are noise, so structure and behaviour are asserted, not accuracy."""

from __future__ import annotations

import json
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import soundfile as sf
import torch

from mmstudio.catalog import Catalog
from mmstudio.cli import main as cli_main
from mmstudio.config import Settings
from mmstudio.errors import UserError
from mmstudio.manager import ModelManager
from mmstudio.pipelines import align
from mmstudio.pipelines import embedding_pictures as pics
from mmstudio.pipelines import sound_align as sa
from mmstudio.ui import similarity_audio as ui
from mmstudio.ui.common import user_errors
from mmstudio.worlds import sounds
from tests.stand_ins import ASSETS, assets_with

EXAMPLES = ASSETS / "examples"
SWEEP = EXAMPLES / "sweep-22k.wav"  # 3 s at 22.05 kHz
CHORD = EXAMPLES / "chord-stereo-44k.flac"  # 2 s stereo at 44.1 kHz


@pytest.fixture(scope="module")
def clap_assets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return assets_with(tmp_path_factory.mktemp("clap-assets"))


@pytest.fixture(scope="module")
def manager(clap_assets: Path) -> ModelManager:
    settings = Settings(offline=True, assets=clap_assets)
    return ModelManager(settings, Catalog.load(settings))


@pytest.fixture(scope="module")
def clap(manager: ModelManager) -> sa.ClapModel:
    return sa.ClapModel.from_loaded(manager.get("sounds-clap"))


@pytest.fixture
def section(manager: ModelManager) -> ui.AudioSimilarity:
    return ui.AudioSimilarity(manager)


def short_clip(tmp_path: Path) -> Path:
    """A 0.4 s sine at 8 kHz: resampled, then padded by the embedded model."""
    path = tmp_path / "short-8k.wav"
    t = np.arange(3200) / 8000
    sf.write(path, 0.5 * np.sin(2 * np.pi * 330 * t), 8000)
    return path


# ------------------------------------------------------------------------------------ clips
def test_covering_captions_meet_every_pair() -> None:
    caps = sa.covering_captions()
    attrs = [sounds.parse(c) for c in caps]
    assert len(caps) == 12 == len(set(caps))
    assert {(a.timbre, a.pitch) for a in attrs} == {(t, p) for t in sounds.TIMBRES
                                                    for p in sounds.PITCHES}
    assert {(a.timbre, a.pattern) for a in attrs} == {(t, p) for t in sounds.TIMBRES
                                                      for p in sounds.PATTERNS}
    assert {(a.pitch, a.pattern) for a in attrs} == {(p, q) for p in sounds.PITCHES
                                                     for q in sounds.PATTERNS}
    assert sum(sounds.is_held_out(a) for a in attrs) == 2  # high sawtooth, low noise


def test_render_clips_are_seeded_and_named() -> None:
    lines = ["one long note of a low sine wave", "", "two short beeps of a high sawtooth wave"]
    a, b = sa.render_clips(lines, 3), sa.render_clips(lines, 3)
    assert len(a) == 2 and all(c.audio.shape == (16_000,) for c in a)
    np.testing.assert_array_equal(a[1].audio, b[1].audio)
    assert not np.array_equal(a[1].audio, sa.render_clips(lines, 4)[1].audio)
    assert a[0].attrs == sounds.parse(lines[0])
    assert a[1].label == "two short beeps of a high sawtooth wave (held out)"
    # what the analyzer hears is what the label says
    assert sounds.describe(a[0].audio) == a[0].attrs
    with pytest.raises(UserError, match="caption line 2: .*'pink'"):
        sa.render_clips(["one long note of a low sine wave", "a pink circle"], 0)


def test_collect_clips_limits_files_and_bad_files(tmp_path: Path) -> None:
    clips = sa.collect_clips(["one long note of mid noise"], 0, [str(SWEEP), str(CHORD)])
    assert [c.label for c in clips] == ["one long note of mid noise", "sweep-22k.wav",
                                        "chord-stereo-44k.flac"]
    assert clips[1].attrs is None and clips[1].sample_rate == 16_000
    assert any("22,050 Hz -> 16,000 Hz" in n for n in clips[1].notes)
    bad = tmp_path / "notes.wav"
    bad.write_text("not a sound")
    with pytest.raises(UserError, match="^clip 2: notes.wav is not a sound file"):
        sa.collect_clips(["one long note of mid noise"], 0, [str(bad)])
    with pytest.raises(UserError, match="65 clips given; at most 64"):
        sa.collect_clips(["one long note of mid noise"] * 65, 0, [])
    with pytest.raises(UserError, match="no clips given"):
        sa.collect_clips(["", "  "], 0, [])


# ------------------------------------------------------------------------------------ comparison
def test_compare_audio_matrix_truth_notes_and_cache(clap: sa.ClapModel, tmp_path: Path) -> None:
    clips = sa.collect_clips(sa.covering_captions()[:4], 0, [str(SWEEP), str(short_clip(tmp_path))])
    texts = sa.sounds_captions()
    cache = align.EmbeddingCache()
    result = sa.compare_audio(clap, clips, texts, cache)
    assert result.sim.cosine.shape == (6, 36) == result.sim.probs.shape
    np.testing.assert_allclose(result.sim.probs.sum(1), 1.0, atol=1e-5)
    assert np.all(np.abs(result.sim.cosine) <= 1.0 + 1e-5)
    assert result.sim.best_text == result.sim.probs.argmax(1).tolist()
    assert result.truth == [texts.index(c) for c in sa.covering_captions()[:4]] + [None, None]
    assert result.map.images.shape == (6, 2) and result.map.texts.shape == (36, 2)
    assert result.map.pairs == list(enumerate(result.sim.best_text))
    assert len(result.notes) == 2
    assert "clip 5 (sweep-22k.wav)" in result.notes[0]
    assert "3.00 s long: sounds-clap reads its first 1.00 s" in result.notes[0]
    assert "padded with silence to 1.00 s" in result.notes[1]
    data = result.to_dict()
    assert data["clips"][4] == "sweep-22k.wav" and len(data["cosine"]) == 6
    assert data["logit_scale"] == pytest.approx(clap.logit_scale, abs=1e-3)
    # again: every embedding from the cache, the same numbers
    misses = cache.misses
    again = sa.compare_audio(clap, clips, texts, cache)
    assert cache.misses == misses and cache.hits >= 6 + 36
    np.testing.assert_array_equal(again.sim.cosine, result.sim.cosine)


def test_clips_of_any_lengths_embed_as_one_by_one(clap: sa.ClapModel, tmp_path: Path) -> None:
    clips = sa.collect_clips(["three short beeps of a high square wave"], 1,
                             [str(CHORD), str(short_clip(tmp_path))])
    together = sa.embed_clips(clap, [c.audio for c in clips])
    assert together.shape == (3, 64)
    torch.testing.assert_close(together.norm(dim=1), torch.ones(3))
    for i, clip in enumerate(clips):
        alone = clap.embed_audio(clip.audio[None])[0]
        torch.testing.assert_close(together[i], alone, atol=1e-5, rtol=0)


def test_class_sets_and_zero_shot(clap: sa.ClapModel) -> None:
    sets = sa.sounds_class_sets()
    assert {k: len(v) for k, v in sets.items()} == {sa.CAPTIONS_SET: 36, "timbre": 4,
                                                    "pitch": 3, "pattern": 3}
    assert {len(p) for p in sets["timbre"].values()} == {9}
    assert {len(p) for p in sets["pitch"].values()} | {len(p) for p in
                                                        sets["pattern"].values()} == {12}
    assert all("sine" in p for p in sets["timbre"]["sine"])
    clips = sa.collect_clips(sa.covering_captions(), 0, [str(SWEEP)])
    emb = sa.embed_clips(clap, [c.audio for c in clips])
    for name in ("timbre", sa.CAPTIONS_SET):
        rows = sa.zero_shot_clips(clap, emb, clips, name, sets[name])
        assert len(rows) == 13 and rows[-1].truth is None and rows[-1].right is None
        for clip, row in zip(clips[:12], rows, strict=False):
            assert row.truth == (clip.attrs.timbre if name == "timbre"
                                 else sounds.caption(clip.attrs))
            assert row.right == (row.best == row.truth)
            assert row.best == row.zero_shot.ranked[0][0]
            assert row.prob == pytest.approx(row.zero_shot.ranked[0][1])
            assert row.zero_shot.probs.sum() == pytest.approx(1.0, abs=1e-5)
    # a class set of the user's texts: a render is judged only when its caption is one of them
    texts = {t: [t] for t in ["one long note of a low sine wave", "a dog barking"]}
    rows = sa.zero_shot_clips(clap, emb[:2], clips[:2], "the texts", texts)
    assert rows[0].truth == "one long note of a low sine wave" and rows[1].truth is None
    with pytest.raises(UserError, match="at least one class"):
        sa.zero_shot_clips(clap, emb, clips, "none", {})


def test_query_matches_short_captions_and_groups() -> None:
    attrs = sounds.parse("two short beeps of mid noise")
    assert sa.query_matches("Two short beeps of mid noise.", attrs) is True
    assert sa.query_matches("two short beeps of high noise", attrs) is False
    assert sa.query_matches("a dog", attrs) is None and sa.query_matches("x", None) is None
    assert sa.short_caption("three short beeps of a high square wave") == "3 beeps, high square"
    assert sa.short_caption("one long note of low noise") == "long note, low noise"
    assert sa.short_caption("x" * 40, 10) == "x" * 9 + "\u2026"
    assert sa.text_group("one long note of low noise") == 3 and sa.text_group("a dog") is None
    assert len(sa.world_gallery()) == 36
    assert sa.true_text(attrs, ["a", "TWO short beeps of mid noise"]) == 1


# ------------------------------------------------------------------------------------ pictures
def test_pictures_mark_the_best_and_the_true_text() -> None:
    cosine = np.array([[0.9, 0.1, -0.2], [0.0, 0.3, 0.6]])
    probs = np.exp(10 * cosine) / np.exp(10 * cosine).sum(1, keepdims=True)
    picture = pics.matrix_picture(cosine, probs, ["a clip", "another"], ["t1", "t2", "t3"],
                                  10.0, truth=[0, 1])
    assert picture.dtype == np.uint8 and picture.ndim == 3 and picture.shape[1] >= 560
    colours = {tuple(c) for c in picture.reshape(-1, 3)}
    assert pics.BEST in colours and pics.TRUE in colours
    plain = pics.matrix_picture(cosine, probs, ["a clip", "another"], ["t1", "t2", "t3"], 10.0)
    assert pics.TRUE not in {tuple(c) for c in plain.reshape(-1, 3)}
    big = pics.matrix_picture(np.zeros((50, 36)), np.full((50, 36), 1 / 36), ["c"] * 50,
                              ["t"] * 36, 1.0)
    assert big.shape[0] > picture.shape[0]
    bars = pics.bars_picture(["a", "b", "c"], np.array([0.2, 0.7, 0.1]), np.zeros(3), "title",
                             truth="c", top=2)
    assert bars.shape[1] == 720 and pics.TRUE in {tuple(c) for c in bars.reshape(-1, 3)}
    emap = align.pca_map(torch.randn(4, 8), torch.randn(3, 8), [(0, 1), (3, 2)])
    mapped = pics.map_picture(emap, list("1234"), [0, 1, None, 3], ["x", "y", "z"],
                              [0, None, 2], ["sine", "square", "sawtooth", "noise"])
    assert mapped.shape == (660, 1120, 3)
    thumb = pics.mel_thumbnail(sounds.render(sounds.parse("one long note of a low sine wave"),
                                             np.random.default_rng(0)))
    assert thumb.shape == (96, 192, 3) and thumb.std() > 10


# ------------------------------------------------------------------------------------ handlers
def test_compare_fills_every_output(section: ui.AudioSimilarity) -> None:
    out = section.compare("sounds-clap", ui.DEFAULT_CLIPS, 0, [str(CHORD)], ui.DEFAULT_TEXTS,
                          sa.CAPTIONS_SET, ui.DEFAULT_QUERY, "yours+sounds")
    preview, summary, matrix, table, bars, player, ranking, *rest = out
    players, emb_map, data, clip_index = rest[:ui.TOP_K], rest[-3], rest[-2], rest[-1]
    assert len(out) == 7 + ui.TOP_K + 3
    assert len(preview) == 13 and preview[0][0].shape == (96, 192, 3)
    assert preview[12][1] == "13. chord-stereo-44k.flac"
    assert "13 clips x 36 texts" in summary and "Logit scale" in summary
    assert "stereo -> mono" in summary and "of 12 renders" in summary
    assert matrix.ndim == 3 and matrix.shape[1] > 900 and emb_map.shape == (660, 1120, 3)
    assert "world renders" in table and table.count("\n| ") == 15  # head, rule, 13 clips
    assert bars.ndim == 3 and sf.info(player).frames == 16_000
    assert "against 49 clips" in ranking  # 13 + the 36 renders
    assert all(p["visible"] and sf.info(p["value"]).frames == 16_000 for p in players)
    assert players[0]["label"].startswith("#1  cos ")
    assert np.array(data["cosine"]).shape == (13, 36) and data["true_text"][12] is None
    assert len(clip_index["choices"]) == 13


def test_zero_shot_and_retrieval_events(section: ui.AudioSimilarity) -> None:
    args = ("sounds-clap", "one long note of a low sine wave\ntwo short beeps of mid noise", 1,
            None, ui.DEFAULT_TEXTS)
    table, bars, player = section.zero_shot(*args, 1, "pitch")
    assert "| 2. two short beeps of mid noise | " in table and "true class" in table
    assert "chance: 1 in 3" in table and bars.ndim == 3
    assert Path(player).name == "clip-2.wav"
    ranking, *players = section.retrieve(*args, "two short beeps of mid noise", "yours")
    assert "against 2 clips" in ranking and "of the top 2 are renders of exactly" in ranking
    assert [p["visible"] for p in players] == [True, True] + [False] * (ui.TOP_K - 2)
    custom, _, _ = section.zero_shot(*args, 0, ui.CUSTOM)
    assert "chance: 1 in 36" in custom


@pytest.mark.parametrize(("call", "message"), [
    (lambda s: s.compare("sounds-clap", "one long note of mid noise", 0, None, "", "timbre",
                         "x", "yours"), "no texts given"),
    (lambda s: s.compare("sounds-clap", "", 0, None, "a", "timbre", "x", "yours"),
     "no clips given"),
    (lambda s: s.compare("sounds-clap", "a red circle", 0, None, "a", "timbre", "x", "yours"),
     "caption line 1: "),
    (lambda s: s.compare("shapes-clip", "one long note of mid noise", 0, None, "a", "timbre",
                         "x", "yours"), "not an audio-text model"),
    (lambda s: s.compare(None, "one long note of mid noise", 0, None, "a", "timbre", "x",
                         "yours"), "choose a CLAP model"),
    (lambda s: s.compare("sounds-clap", "one long note of mid noise", -1, None, "a", "timbre",
                         "x", "yours"), "the render seed must be"),
    (lambda s: s.zero_shot("sounds-clap", "one long note of mid noise", 0, None, "a", 5,
                           "timbre"), "there is no clip 6"),
    (lambda s: s.zero_shot("sounds-clap", "one long note of mid noise", 0, None, "a", 0,
                           "colour"), "unknown class set"),
    (lambda s: s.retrieve("sounds-clap", "one long note of mid noise", 0, None, "a", "  ",
                          "yours"), "type a caption"),
])
def test_bad_inputs_become_clear_gradio_errors(section: ui.AudioSimilarity, call,
                                               message: str) -> None:
    with pytest.raises(gr.Error, match=message):
        user_errors(call)(section)


def test_bad_upload_and_missing_model_are_named(section: ui.AudioSimilarity,
                                                tmp_path: Path) -> None:
    bad = tmp_path / "table.wav"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(gr.Error, match="clip 2: table.wav is not a sound file"):
        user_errors(section.compare)("sounds-clap", "one long note of mid noise", 0,
                                     [str(bad)], "a", "timbre", "x", "yours")
    root = assets_with(tmp_path / "no-clap", clap=False, skip=("sounds-clap",))
    settings = Settings(offline=True, assets=root)
    empty = ui.AudioSimilarity(ModelManager(settings, Catalog.load(settings)))
    assert ("sounds-clap (not available here)", "sounds-clap") in ui.model_choices(empty.manager)
    with pytest.raises(gr.Error, match="sounds-clap.*unavailable: no weights"):
        user_errors(empty.compare)("sounds-clap", "one long note of mid noise", 0, None, "a",
                                   "timbre", "x", "yours")


def test_section_is_a_sub_tab_of_similarity(clap_assets: Path) -> None:
    from mmstudio.ui import tab_similarity

    settings = Settings(offline=True, assets=clap_assets)
    with gr.Blocks() as demo:
        with gr.Tab("Similarity"):
            tab_similarity.build(ModelManager(settings, Catalog.load(settings)))
    names = {getattr(fn, "api_name", None) for fn in demo.fns.values()}
    assert {"similarity_audio", "similarity_audio_zero_shot", "similarity_audio_zero_shot_classes",
            "similarity_audio_retrieve", "similarity_audio_retrieve_gallery"} <= names
    assert {"similarity", "similarity_zero_shot", "similarity_retrieve"} <= names  # images too
    labels = {getattr(b, "label", None) for b in demo.blocks.values()}
    assert {"Images and texts (CLIP)", "Sounds and captions (CLAP)"} <= labels


# ------------------------------------------------------------------------------------ the CLI
@pytest.fixture
def cli_env(clap_assets: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMSTUDIO_ASSETS", str(clap_assets))
    monkeypatch.setenv("MMSTUDIO_OFFLINE", "1")
    monkeypatch.setenv("MMSTUDIO_DEVICE", "cpu")


def test_cli_json_matrix(cli_env: None, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli_main(["similarity", "--model", "sounds-clap", "--audio", str(SWEEP), str(CHORD),
                     "--render", "one long note of a low sine wave", "--texts",
                     "one long note of a low sine wave", "two short beeps of mid noise",
                     "--json"])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["model"] == "sounds-clap"
    assert data["clips"] == [str(SWEEP), str(CHORD), "render: one long note of a low sine wave"]
    assert np.array(data["cosine"]).shape == (3, 2) and len(data["best_text"]) == 3
    np.testing.assert_allclose(np.array(data["probs"]).sum(1), 1.0, atol=1e-3)
    assert data["true_text"] == [None, None, 0] and data["logit_scale"] > 0
    assert any("reads its first 1.00 s" in n for n in data["notes"])


def test_cli_table_and_the_default_model(cli_env: None,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    code = cli_main(["similarity", "--audio", str(SWEEP), "--texts", "one long note of mid noise",
                     "two short beeps of a high square wave"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("model sounds-clap; logit scale")
    assert f"C1: {SWEEP}" in out and "T2: two short beeps of a high square wave" in out
    assert "softmax over texts (per clip)" in out and "C1 -> T" in out


@pytest.mark.parametrize(("args", "message"), [
    (["--audio", "{bad}", "--texts", "a"], "clip 1: bad.wav is not a sound file"),
    (["--audio", "{sweep}", "{missing}", "--texts", "a"], "clip 2: no such file: missing.wav"),
    (["--model", "shapes-clip", "--audio", "{sweep}", "--texts", "a"],
     "'shapes-clip' is not an audio-text model; try sounds-clap"),
    (["--model", "sounds-clap", "--images", "{sweep}", "--texts", "a"],
     "--images and --audio can't be mixed"),
    (["--model", "sounds-clap", "--texts", "a"], "no clips given"),
    (["--audio", "{sweep}"], "no texts given"),
    (["--model", "sounds-clap", "--render", "a red circle", "--texts", "a"], "caption 1: "),
])
def test_cli_bad_input_is_one_line(args: list[str], message: str, cli_env: None,
                                   tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_text("hello")
    paths = {"bad": bad, "sweep": SWEEP, "missing": tmp_path / "missing.wav"}
    code = cli_main(["similarity", *[a.format(**paths) for a in args]])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and message in err, err
    assert len(err.strip().splitlines()) == 1
