"""The Tokenize (VQ) tab: an image becomes a grid of codebook tokens and back.

``build(manager)`` fills the enclosing ``gr.Tab``. The work is done by
``mmstudio.pipelines.tokenize`` (no gradio); the handlers here keep the current token grid in a
``gr.State`` (so edits compose) and draw it: the token grid as an image with each cell coloured by
its code and the id written in it, nearest-neighbour enlargements, an error heatmap, histograms.
"""

from __future__ import annotations

import colorsys
import threading
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from mmstudio.checks import whole_number
from mmstudio.errors import UserError
from mmstudio.manager import ModelManager
from mmstudio.pipelines import tokenize as tk
from mmstudio.pipelines.sound_pictures import _font, _nice_step, draw_text, text_draw
from mmstudio.ui import downloads
from mmstudio.ui.common import explain, gr, model_work, upscale, user_errors
from mmstudio.worlds import shapes

INTRO = """\
### What you are seeing
A **vector-quantised autoencoder** turns an image into a small grid of integers. The encoder maps
each 4 x 4 pixel patch (for the 32 x 32 shapes models; 8 x 8 for the harder-compressing `-f8` ones,
16 x 16 for aMUSEd's 256 x 256 VQGAN) to a vector, and each vector is replaced by the nearest entry
of a learned **codebook**: the image becomes a grid of **tokens**, words of a visual vocabulary.
The decoder turns any grid of tokens back into an image, so you can *edit the tokens* and watch the
picture change.

- **Token grid**: each cell is coloured by its code (same code, same colour) with its id written in
  it. Click a cell to select it for editing.
- **Reconstruction**: the decoded token grid; **error map**: per-pixel |input - reconstruction|.
- **Compression**: the image's bits (pixels x 3 channels x 8 bits) against the tokens' bits
  (tokens x log2(codebook size)).
- **shapes-vqvae** learned with reconstruction, codebook and commitment losses only;
  **shapes-vqgan** has the same tokens and adds a patch discriminator (a GAN critic), which pushes
  the decoder to draw sharp edges instead of a safe blur. **shapes-vqvae-f8** / **shapes-vqgan-f8**
  are the same pair at a harder compression (4 x 4 tokens). Compare them at the bottom, at either
  compression: the figures there, measured on the evaluation set, say how much sharper the
  VQGAN's edges are and what that costs in PSNR.

Any image is accepted: it is converted to RGB, centre-cropped to a square and resized to the
model's input (the notes under the input say what was done).
"""

SHAPES_CANVAS = shapes.CANVAS
ERROR_SCALE = 64.0  # error map: 0 -> black, >= this (mean over channels, of 255) -> brightest
BROWSE_PAGE_SMALL = 64  # codes per codebook page for models of up to 64 px
BROWSE_PAGE_LARGE = 16  # ... and for larger (hub) models, whose decoding is heavier
EVAL_HIST_N = {True: 500, False: 64}  # renders for the eval-set histogram: 32 px model / other
COMPARED = tk.PAIRS["f4"]  # the side by side's default pair
#: The side by side's choices: (label, compression); ``tk.PAIRS`` names each compression's pair.
COMPRESSIONS = (("f4: 8 x 8 tokens (each for a 4 x 4 px patch)", "f4"),
                ("f8: 4 x 4 tokens (each for an 8 x 8 px patch)", "f8"))
SAME_SHARPNESS = 0.02  # edge sharpness closer to 1.0 by less than this: "practically as sharp"
SAME_PSNR = 0.1  # dB: a PSNR difference below this is "practically none"
BROWSE_MODES = ("whole grid of one code", "one code in the centre of the current image")


# ------------------------------------------------------------------------------ drawing


def code_color(code: int) -> tuple[int, int, int]:
    """A stable colour per code id: golden-ratio hues, so neighbouring ids look different."""
    hue = (code * 0.618033988749895) % 1.0
    sat = 0.45 + 0.35 * ((code * 7) % 5) / 4
    val = 0.70 + 0.25 * ((code * 3) % 4) / 3
    r, g, b = colorsys.hsv_to_rgb(hue, sat, val)
    return int(r * 255), int(g * 255), int(b * 255)


def grid_cell_px(grid: int) -> int:
    """Side of one token cell in the token-grid image."""
    return max(32, 384 // grid)


def render_token_grid(indices: np.ndarray, selected: tuple[int, int] | None = None,
                      edited: np.ndarray | None = None) -> np.ndarray:
    """(h, w) token ids -> an RGB image: one coloured cell per token with its id written in it.
    The selected cell gets a thick outline, edited cells (``edited`` True) a dashed white one."""
    rows, cols = indices.shape
    cell = grid_cell_px(max(rows, cols))
    image = Image.new("RGB", (cols * cell, rows * cell), (30, 30, 36))
    draw = text_draw(image)
    digits = len(str(int(indices.max()))) if indices.size else 1
    size = max(8, min(cell // 3, int(cell * 0.9 / max(digits, 2) * 1.6)))
    for r in range(rows):
        for c in range(cols):
            code = int(indices[r, c])
            color = code_color(code)
            box = (c * cell + 1, r * cell + 1, (c + 1) * cell - 2, (r + 1) * cell - 2)
            draw.rectangle(box, fill=color)
            light = 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2] > 140
            draw_text(image, ((c + 0.5) * cell, (r + 0.5) * cell), str(code),
                      (10, 10, 10) if light else (250, 250, 250), size, "mm")
            if edited is not None and edited[r, c]:
                for k in range(box[0], box[2], 6):
                    draw.line((k, box[1], min(k + 3, box[2]), box[1]), fill="white", width=2)
                    draw.line((k, box[3], min(k + 3, box[2]), box[3]), fill="white", width=2)
                for k in range(box[1], box[3], 6):
                    draw.line((box[0], k, box[0], min(k + 3, box[3])), fill="white", width=2)
                    draw.line((box[2], k, box[2], min(k + 3, box[3])), fill="white", width=2)
    if selected is not None:
        r, c = selected
        draw.rectangle((c * cell, r * cell, (c + 1) * cell - 1, (r + 1) * cell - 1),
                       outline=(255, 220, 0), width=4)
    return np.asarray(image)


def error_heatmap(error: np.ndarray) -> np.ndarray:
    """(H, W) absolute error in [0, 255] -> RGB heatmap (magma), 0 .. ERROR_SCALE."""
    from matplotlib import colormaps

    rgb = colormaps["magma"](np.clip(error / ERROR_SCALE, 0, 1))[..., :3]
    return (rgb * 255).round().astype(np.uint8)


def histogram_image(counts: np.ndarray, title: str, width: int = 648,
                    height: int = 216) -> np.ndarray:
    """Bar chart of code use (x: code id, y: count) as an RGB image, each used code's bar in its
    token-grid colour. Drawn with PIL (matplotlib's drawing holds the GIL, which concurrent
    requests then wait on)."""
    counts = np.asarray(counts, dtype=np.int64)
    ink, faint = (55, 65, 81), (226, 230, 238)
    image = Image.new("RGB", (width, height), (255, 255, 255))
    draw = text_draw(image)
    top = max(int(counts.max()) if counts.size else 0, 1)
    step = max(1, int(_nice_step(top, 4)))
    y_top = ((top + step - 1) // step) * step
    left, right, upper, lower = 48, width - 12, 26, height - 34
    draw.text((width / 2, 12), title, fill=ink, font=_font(12), anchor="mm")

    def y_of(value: float) -> float:
        return lower - value / y_top * (lower - upper)

    for value in range(0, y_top + 1, step):
        y = y_of(value)
        draw.line((left, y, right, y), fill=faint)
        draw.text((left - 6, y), f"{value:,}", fill=ink, font=_font(11), anchor="rm")
    n = max(len(counts), 1)
    bar = max(1.0, (right - left) / n)
    for code in np.flatnonzero(counts):
        x = left + code / n * (right - left)
        draw.rectangle((x, y_of(counts[code]), x + bar - 1 if bar > 2 else x + 1, lower),
                       fill=code_color(int(code)))
    draw.line((left, lower, right, lower), fill=ink)
    draw.line((left, upper, left, lower), fill=ink)
    x_step = max(1, int(_nice_step(n, 8)))
    for code in range(0, n + 1, x_step):
        x = left + code / n * (right - left)
        draw.line((x, lower, x, lower + 4), fill=ink)
        draw.text((x, lower + 6), str(code), fill=ink, font=_font(11), anchor="ma")
    draw.text(((left + right) / 2, height - 4), "code id", fill=ink, font=_font(11),
              anchor="md")
    ylabel = Image.new("RGB", (60, 14), (255, 255, 255))
    ImageDraw.Draw(ylabel).text((30, 7), "tokens", fill=ink, font=_font(11), anchor="mm")
    image.paste(ylabel.rotate(90, expand=True), (2, int((upper + lower) / 2 - 30)))
    return np.asarray(image, dtype=np.uint8).copy()


def code_atlas(images: np.ndarray, codes: list[int], tile: int = 64) -> np.ndarray:
    """Decoded code images in a labelled grid (8 per row), each enlarged to ``tile`` px."""
    per_row = 8
    label_h = 16
    rows = (len(codes) + per_row - 1) // per_row
    atlas = Image.new("RGB", (per_row * (tile + 6), rows * (tile + label_h + 6)), (24, 24, 28))
    draw = text_draw(atlas)
    font = _font(12)
    for k, (image, code) in enumerate(zip(images, codes, strict=True)):
        factor = max(1, tile // image.shape[0])
        big = Image.fromarray(upscale(image, image.shape[0] * factor))
        if big.size[0] != tile:
            big = big.resize((tile, tile), Image.Resampling.NEAREST)
        x, y = (k % per_row) * (tile + 6) + 3, (k // per_row) * (tile + label_h + 6) + 3
        atlas.paste(big, (x, y))
        draw.rectangle((x, y + tile + 1, x + tile - 1, y + tile + label_h - 1),
                       fill=code_color(code))
        draw.text((x + tile / 2, y + tile + label_h / 2), str(code), anchor="mm", font=font,
                  fill=(10, 10, 10))
    return np.asarray(atlas)


def view(image: np.ndarray) -> np.ndarray:
    """A model-sized image enlarged with nearest neighbour (at least 256 px)."""
    return upscale(image, 256)


# ------------------------------------------------------------------------------ the tab's logic


def _figures_table(results: list[tk.TokenizeResult], sharpness: bool = False) -> str:
    head = "| figure | " + " | ".join(f"`{r.model_id}`" for r in results) + " |"
    rows = [head, "| --- |" + " --- |" * len(results)]

    def row(name: str, values: list[str]) -> None:
        rows.append(f"| {name} | " + " | ".join(values) + " |")

    row("PSNR", [f"{r.psnr:.2f} dB" for r in results])
    if sharpness:
        row("edge sharpness (1.0 = as the input)", [
            f"{tk.edge_sharpness(r.image, r.reconstruction):.3f}" for r in results])
    row("token grid", [f"{r.indices.shape[0]} x {r.indices.shape[1]}" for r in results])
    row("distinct codes in this image", [f"{r.usage.used} of {r.info.num_codes}"
                                         for r in results])
    row("bits of the image", [f"{r.bits_image:,} ({r.image.shape[0]} x {r.image.shape[1]} x 3 "
                              "x 8)" for r in results])
    row("bits of the tokens", [f"{r.bits_tokens:,} ({r.indices.size} x "
                               f"{r.info.bits_per_token})" for r in results])
    row("compression", [f"{r.compression:.0f}x" for r in results])
    return "\n".join(rows)


class TokenizeTab:
    """Handlers of the tab; ``state`` is a dict: model, image, indices, original, notes,
    selected."""

    def __init__(self, manager: ModelManager) -> None:
        self.manager = manager
        self._eval_counts: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- helpers
    def model_choices(self) -> list[str]:
        return [spec.id for spec in self.manager.catalog.for_task("tokenize")]

    def _check_model(self, model_id: str | None) -> str:
        if not model_id:
            raise UserError("choose a model first")
        spec = self.manager.catalog.get(model_id)
        if "tokenize" not in spec.tasks:
            raise UserError(f"'{model_id}' is not a tokenize model")
        return model_id

    def _tokenize(self, model_id: str, source: Any) -> tk.TokenizeResult:
        spec = self.manager.catalog.get(self._check_model(model_id))
        with self.manager.use(model_id) as loaded:
            return tk.tokenize_image(loaded["vq"], source, model_id, spec.resolution)

    def _result(self, state: dict[str, Any]) -> tk.TokenizeResult:
        with self.manager.use(state["model"]) as loaded:
            vq = loaded["vq"]
            info = tk.vq_info(vq, state["image"].shape[0])
            indices = np.asarray(state["indices"], np.int64)
            recon = tk.decode_indices(vq, indices)[0]
        return tk.TokenizeResult(state["model"], info, state["image"], indices, recon,
                                 list(state["notes"]))

    @staticmethod
    def _need(state: dict[str, Any] | None) -> dict[str, Any]:
        if not state:
            raise UserError("tokenize an image first (upload one, pick an example or render a "
                            "caption)")
        return state

    def _outputs(self, state: dict[str, Any], message: str = "",
                 result: tk.TokenizeResult | None = None) -> tuple:
        """(state, input, token grid, reconstruction, error map, figures, notes, histogram)."""
        result = result or self._result(state)
        original = np.asarray(state["original"], np.int64)
        edited = result.indices != original
        selected = tuple(state["selected"]) if state.get("selected") else None
        grid = render_token_grid(result.indices, selected, edited)
        figures = _figures_table([result])
        if edited.any():
            figures += (f"\n\n**{int(edited.sum())} token(s) edited** (dashed outline); the PSNR "
                        "is still against the input.")
        if message:
            figures += f"\n\n{message}"
        notes = "; ".join(result.notes) if result.notes else "used as is"
        notes_md = (f"**Model input:** {result.image.shape[1]} x {result.image.shape[0]} RGB "
                    f"({notes}).")
        hist = histogram_image(tk.code_histogram(result.indices, result.info.num_codes),
                               f"codes in this image: {result.usage.used} distinct of "
                               f"{result.info.num_codes}, perplexity {result.usage.perplexity:.1f}")
        return (state, view(result.image), grid, view(result.reconstruction),
                view(error_heatmap(result.error)), figures, notes_md, hist)

    # ---------------------------------------------------------------- events
    def tokenize(self, model_id: str, image: Any) -> tuple:
        if image is None:
            raise UserError("upload an image, pick an example or render a caption first")
        result = self._tokenize(model_id, image)
        state = {"model": model_id, "image": result.image, "indices": result.indices.tolist(),
                 "original": result.indices.tolist(), "notes": result.notes, "selected": None}
        return self._outputs(state, result=result)

    def auto_tokenize(self, model_id: str, image: Any) -> tuple:
        """Tokenize when the input or the model changes; nothing when the input was cleared."""
        if image is None or not model_id:
            return tuple(gr.skip() for _ in range(8))
        return self.tokenize(model_id, image)

    def render_caption(self, caption: str | None, seed: float | None) -> str:
        """A shapes render of ``caption`` written to a PNG; its path goes to the image input."""
        text = (caption or "").strip()
        if not text:
            raise UserError("type a shapes caption, e.g. 'a small red circle in the top left'")
        attrs = shapes.parse(text)
        if attrs.color is None:
            raise UserError("a shapes caption names a color and a shape, e.g. 'a red circle'")
        seed = whole_number(0 if seed is None else seed, "the render seed", 0, 2**63 - 1)
        image = shapes.render(attrs, np.random.default_rng(seed))
        path = downloads.new_folder("tokenize") / "caption.png"
        Image.fromarray(image).save(path)
        return str(path)

    def select_cell(self, state: dict[str, Any] | None, evt: gr.SelectData) -> tuple:
        """A click on the token grid selects that cell: row, column and its current code."""
        state = self._need(state)
        indices = np.asarray(state["indices"])
        cell = grid_cell_px(max(indices.shape))
        x, y = evt.index[0], evt.index[1]
        row = int(min(max(y // cell, 0), indices.shape[0] - 1))
        col = int(min(max(x // cell, 0), indices.shape[1] - 1))
        return self._select(state, row, col)

    def _select(self, state: dict[str, Any], row: int, col: int) -> tuple:
        state = {**state, "selected": [row, col]}
        code = int(np.asarray(state["indices"])[row, col])
        grid = render_token_grid(np.asarray(state["indices"]), (row, col),
                                 np.asarray(state["indices"]) != np.asarray(state["original"]))
        return state, grid, row, col, code, self.selection_text(state)

    @staticmethod
    def selection_text(state: dict[str, Any] | None) -> str:
        """The sentence about the selected cell (empty when none is selected)."""
        if not state or not state.get("selected"):
            return ""
        row, col = state["selected"]
        code = int(np.asarray(state["indices"])[row, col])
        return (f"Selected cell (row {row}, column {col}) holding code **{code}**. Give it "
                "another code and press *Set token*.")

    def set_token(self, state: dict[str, Any] | None, row: float | None, col: float | None,
                  code: float | None) -> tuple:
        state = self._need(state)
        num_codes = self._num_codes(state)
        r, c, k = (_whole(v, name) for v, name in ((row, "row"), (col, "column"),
                                                    (code, "code")))
        indices = tk.set_token(np.asarray(state["indices"]), r, c, k, num_codes)
        state = {**state, "indices": indices.tolist(), "selected": [r, c]}
        return self._outputs(state, f"Cell (row {r}, column {c}) now holds code {k}.")

    def replace_code(self, state: dict[str, Any] | None, old: float | None, new: float | None
                     ) -> tuple:
        state = self._need(state)
        indices, count = tk.replace_code(np.asarray(state["indices"]), _whole(old, "old code"),
                                         _whole(new, "new code"), self._num_codes(state))
        state = {**state, "indices": indices.tolist()}
        return self._outputs(state, f"Replaced {count} occurrence(s) of code {int(old)} with "
                                    f"{int(new)}." if count else
                             f"Code {int(old)} does not occur in this grid; nothing changed.")

    def randomize(self, state: dict[str, Any] | None, k: float | None, seed: float | None
                  ) -> tuple:
        state = self._need(state)
        indices, cells = tk.randomize_tokens(np.asarray(state["indices"]), _whole(k, "k"),
                                             self._num_codes(state), _whole(seed or 0, "seed"))
        state = {**state, "indices": indices.tolist()}
        return self._outputs(state, f"Randomized {len(cells)} token(s).")

    def reset(self, state: dict[str, Any] | None) -> tuple:
        state = self._need(state)
        return self._outputs({**state, "indices": state["original"], "selected": None},
                             "Back to the encoder's tokens.")

    def _num_codes(self, state: dict[str, Any]) -> int:
        with self.manager.use(state["model"]) as loaded:
            return int(loaded["vq"].quantize.embedding.weight.shape[0])

    def eval_histogram(self, model_id: str) -> tuple[np.ndarray, str]:
        """Code use over the shapes evaluation renders (cached per model)."""
        from mmstudio.worlds.datasets import eval_set

        model_id = self._check_model(model_id)
        spec = self.manager.catalog.get(model_id)
        small = (spec.resolution or SHAPES_CANVAS) == SHAPES_CANVAS
        n = EVAL_HIST_N[small]
        with self._lock:
            counts = self._eval_counts.get(model_id)
        with self.manager.use(model_id) as loaded:
            vq = loaded["vq"]
            info = tk.vq_info(vq, spec.resolution)
            if counts is None:
                items = eval_set(shapes, n)
                grids = []
                for start in range(0, n, 100 if small else 8):
                    batch = np.stack([upscale(i.sample, info.resolution)
                                      for i in items[start:start + (100 if small else 8)]])
                    if batch.shape[1] != info.resolution:
                        batch = np.stack([np.asarray(Image.fromarray(b).resize(
                            (info.resolution, info.resolution), Image.Resampling.NEAREST))
                            for b in batch])
                    grids.append(tk.encode_indices(vq, batch))
                counts = tk.code_histogram(np.concatenate(grids), info.num_codes)
                with self._lock:
                    self._eval_counts[model_id] = counts
        usage = tk.codebook_usage(np.repeat(np.arange(len(counts)), counts), len(counts))
        title = (f"{model_id} on {n} shapes evaluation renders: {usage.used} of {usage.num_codes} "
                 f"codes used ({usage.share:.0%}), perplexity {usage.perplexity:.0f}")
        text = (f"Over {n} evaluation renders ({usage.tokens:,} tokens) **{usage.used} of "
                f"{usage.num_codes} codes** are used ({usage.share:.0%}); perplexity "
                f"{usage.perplexity:.0f} (the effective number of codes).")
        return histogram_image(counts, title), text

    def browse(self, model_id: str, start: float | None, mode: str,
               state: dict[str, Any] | None) -> tuple[np.ndarray, str]:
        """Decode a page of codes: each as a whole grid of that code, or placed in the centre of
        the current image's token grid."""
        model_id = self._check_model(model_id)
        spec = self.manager.catalog.get(model_id)
        with self.manager.use(model_id) as loaded:
            vq = loaded["vq"]
            info = tk.vq_info(vq, spec.resolution)
            page = BROWSE_PAGE_SMALL if info.resolution <= 64 else BROWSE_PAGE_LARGE
            first = _whole(start or 0, "first code")
            if not 0 <= first < info.num_codes:
                raise UserError(f"the first code must be between 0 and {info.num_codes - 1}")
            codes = list(range(first, min(first + page, info.num_codes)))
            context = None
            if mode == BROWSE_MODES[1]:
                state = self._need(state)
                if state["model"] != model_id:
                    raise UserError(f"the current image was tokenized by {state['model']}; "
                                    f"tokenize it with {model_id} first")
                context = np.asarray(state["indices"], np.int64)
            images = tk.code_images(vq, codes, info.grid, context)
        how = ("each decoded from a grid made of that one code" if context is None else
               "each placed in the centre cell of the current image's tokens")
        return code_atlas(images, codes), (f"Codes {codes[0]} to {codes[-1]} of "
                                           f"{info.num_codes}, {how}.")

    def pair(self, compression: str | None) -> tuple[str, str]:
        """The (VQ-VAE, VQGAN) of a compression, refused with the reason when not installed."""
        if compression not in tk.PAIRS:
            raise UserError(f"choose a compression: {', '.join(tk.PAIRS)}")
        pair = tk.PAIRS[compression]
        for model_id in pair:
            status = self.manager.catalog.availability(model_id)
            if not status.available:
                raise UserError(f"The {compression} models ({' and '.join(pair)}) are not "
                                f"installed here: {model_id} has {status.reason}. Choose another "
                                "compression.")
        return pair

    def compare(self, image: Any, state: dict[str, Any] | None, compression: str = "f4"
                ) -> tuple:
        """The chosen compression's VQ-VAE and VQGAN on the same image, with their figures."""
        pair = self.pair(compression)
        source = image if image is not None else (self._need(state)["image"])
        results = [self._tokenize(model_id, source) for model_id in pair]
        views: list[Any] = []
        for result in results:
            views += [view(result.image), render_token_grid(result.indices),
                      view(result.reconstruction), view(error_heatmap(result.error))]
        table = _figures_table(results, sharpness=True)
        same = int((results[0].indices == results[1].indices).sum())
        size = results[0].indices.size
        table += (f"\n\nBoth give **the same tokens**: {pair[1]} kept {pair[0]}'s encoder and "
                  "codebook and fine-tuned only the decoder, so every difference you see is the "
                  "decoder's." if same == size else
                  f"\n\nThe two encoders agree on {same} of {size} tokens.")
        table += (" Edge sharpness = the reconstruction's Sobel gradient at the input's edges / "
                  "the input's own (1.0 = as sharp; blur lowers it).")
        table += "\n\n" + image_comparison(*results)
        return (*views, table)

    def pair_explanation(self, compression: str | None = "f4") -> str:
        """What the two pairs' measured figures (their ``metrics.json``) say, in words; the chosen
        compression first."""
        chosen = compression if compression in tk.PAIRS else "f4"
        order = [chosen] + [c for c in tk.PAIRS if c != chosen]
        return "\n\n".join(pair_summary(self.manager.catalog, c, c == chosen) for c in order)

    def choose_compression(self, compression: str | None) -> tuple[str, Any]:
        """(the explanation, the compare button's label) for the chosen compression."""
        pair = tk.PAIRS.get(compression or "", COMPARED)
        return (self.pair_explanation(compression),
                gr.update(value=f"Compare {pair[0]} and {pair[1]}"))


def image_comparison(plain: tk.TokenizeResult, gan: tk.TokenizeResult) -> str:
    """The side by side's figures for this one image, in words."""
    s_plain = tk.edge_sharpness(plain.image, plain.reconstruction)
    s_gan = tk.edge_sharpness(gan.image, gan.reconstruction)
    gap = abs(s_plain - 1.0) - abs(s_gan - 1.0)
    if gap > SAME_SHARPNESS:
        sharp = (f"the VQGAN's edges are the closer to the input's sharpness ({s_gan:.3f} vs "
                 f"{s_plain:.3f})")
    elif gap < -SAME_SHARPNESS:
        sharp = (f"the VQ-VAE's edges are the closer to the input's sharpness ({s_plain:.3f} vs "
                 f"{s_gan:.3f})")
    else:
        sharp = f"both are practically as sharp ({s_plain:.3f} and {s_gan:.3f})"
    cost = plain.psnr - gan.psnr
    psnr_words = (f"the VQGAN's PSNR is {cost:.2f} dB lower" if cost > SAME_PSNR else
                  f"the VQGAN's PSNR is {-cost:.2f} dB higher" if cost < -SAME_PSNR else
                  "their PSNRs are practically equal")
    return f"**On this image** {sharp}, and {psnr_words}."


def pair_summary(catalog: Any, compression: str, chosen: bool = False) -> str:
    """One compression's VQ-VAE vs VQGAN in plain words, from the figures their ``eval --write``
    measured on the evaluation set (read from each model folder's ``metrics.json``): what the GAN
    loss buys in edge sharpness and what it costs in PSNR."""
    label = dict((key, text) for text, key in COMPRESSIONS)[compression]
    head = f"**{label}**" + (" (chosen)" if chosen else "")
    plain_id, gan_id = tk.PAIRS[compression]
    for model_id in (plain_id, gan_id):
        status = catalog.availability(model_id)
        if not status.available:
            return (f"{head}: not installed here ({model_id}: {status.reason}). Train "
                    f"`{plain_id}`, then `{gan_id}` from it, and ship both in assets/models/.")
    plain, gan = catalog.get(plain_id).metrics, catalog.get(gan_id).metrics
    keys = ("psnr", "sharpness", "agreement", "n")
    if not all(k in m for m in (plain, gan) for k in keys):
        return (f"{head}: installed, not measured yet (`python -m mmstudio eval {gan_id} "
                "--write`, and the same for its VQ-VAE); the figures of one image below still "
                "compare them.")
    s_plain, s_gan = plain["sharpness"], gan["sharpness"]
    gap = abs(s_plain - 1.0) - abs(s_gan - 1.0)
    words = [f"{head}: over {gan['n']} evaluation renders the VQ-VAE's edges are {s_plain:.2f} "
             f"as steep as the originals' and the VQGAN's {s_gan:.2f} (1.00 = as sharp)."]
    if gap > SAME_SHARPNESS:
        share = gan.get("closer_to_one_share")
        buys = (f"; image by image they are the closer to the original's on {share:.0%} of the "
                "renders" if share is not None else "")
        words.append(f"What the GAN loss buys: edges that keep the original's sharpness instead "
                     f"of a blur{buys}.")
    elif gap < -SAME_SHARPNESS:
        words.append("Here the GAN loss did not bring the edges closer to the original's.")
    else:
        words.append("The two are practically as sharp: at this compression the tokens keep "
                     "nearly every edge, so there is little blur for the GAN loss to remove.")
    cost = plain["psnr"] - gan["psnr"]
    if cost > SAME_PSNR:
        words.append(f"What it costs: {cost:.1f} dB of PSNR ({plain['psnr']:.1f} dB for the "
                     f"VQ-VAE, {gan['psnr']:.1f} dB for the VQGAN), because PSNR counts squared "
                     "error, and a sharp edge a pixel off costs more of it than a blur that "
                     "hedges between the places the edge could be.")
    elif cost < -SAME_PSNR:
        words.append(f"It costs no PSNR here: the VQGAN's is {-cost:.1f} dB higher "
                     f"({gan['psnr']:.1f} vs {plain['psnr']:.1f} dB).")
    else:
        words.append(f"It costs practically no PSNR ({plain['psnr']:.1f} vs {gan['psnr']:.1f} "
                     "dB).")
    words.append(f"The analyzer reads all five attributes the same from {plain['agreement']:.0%} "
                 f"(VQ-VAE) and {gan['agreement']:.0%} (VQGAN) of the reconstructions.")
    return " ".join(words)


def _whole(value: float | None, name: str) -> int:
    return whole_number(value, name)


def example_files(manager: ModelManager) -> list[str]:
    folder = manager.settings.examples_dir
    if not folder.is_dir():
        return []
    return [str(p) for p in sorted(folder.glob("*.png"))]


# ------------------------------------------------------------------------------ layout


def _view_image(caption: str, elem_id: str, pixelated: bool = True) -> gr.Image:
    """A display image with its caption above it (a label badge would cover the image's top)."""
    with gr.Column(min_width=200):
        gr.Markdown(f"**{caption}**", elem_classes=["mm-caption"])
        return gr.Image(show_label=False, label=caption, interactive=False, format="png",
                        height=300, elem_id=elem_id,
                        elem_classes=["mm-pixelated"] if pixelated else None)


def build(manager: ModelManager) -> None:
    tab = TokenizeTab(manager)
    explain(INTRO)
    choices = tab.model_choices()
    default = manager.catalog.default_for("tokenize")
    state = gr.State(None)
    with gr.Row():
        with gr.Column(scale=1, min_width=260):
            model = gr.Dropdown(choices, value=default if default in choices else None,
                                label="Model", elem_id="vq-model")
            image_in = gr.Image(type="filepath", image_mode=None, sources=["upload", "clipboard"],
                                label="Input image (any size or mode)", height=240,
                                elem_id="vq-input", elem_classes=["mm-pixelated", "mm-fill"])
            tokenize_btn = gr.Button("Tokenize", variant="primary", elem_id="vq-tokenize")
            with gr.Row():
                caption = gr.Textbox(label="...or render a shapes caption", scale=3,
                                     placeholder="a large purple triangle on a navy background")
                seed = gr.Number(0, precision=0, minimum=0, label="seed", scale=1, min_width=70)
            render_btn = gr.Button("Render and tokenize")
            examples = example_files(manager)
            if examples:
                gr.Examples([[p] for p in examples], [image_in], label="Examples",
                            examples_per_page=12)
            notes = gr.Markdown(elem_id="vq-notes")
        with gr.Column(scale=4):
            with gr.Row(equal_height=True):
                view_in = _view_image("Model input", "vq-view-input")
                view_grid = _view_image("Token grid: click a cell to edit it", "vq-grid",
                                        pixelated=False)
                view_recon = _view_image("Reconstruction: the decoded tokens", "vq-recon")
                view_err = _view_image(f"Error map: |input - reconstruction|, 0 (black) to "
                                       f"{ERROR_SCALE:.0f}+ (yellow) of 255", "vq-error")
            with gr.Row():
                figures = gr.Markdown(elem_id="vq-figures")
                hist = gr.Image(label="Code use in this image", interactive=False, format="png",
                                height=240, show_label=False, elem_id="vq-hist")
    with gr.Accordion("Edit tokens: tokens are a vocabulary", open=True):
        gr.Markdown("Click a cell of the token grid (or type its row and column), give it another "
                    "code and decode again. Edits compose; *Reset* returns to the encoder's "
                    "tokens.")
        cell_info = gr.Markdown()
        with gr.Row():
            row = gr.Number(0, precision=0, minimum=0, label="row", min_width=80,
                            elem_id="vq-row")
            col = gr.Number(0, precision=0, minimum=0, label="column", min_width=80,
                            elem_id="vq-col")
            code = gr.Number(0, precision=0, minimum=0, label="new code", min_width=80,
                             elem_id="vq-code")
            set_btn = gr.Button("Set token", variant="primary", elem_id="vq-set")
        with gr.Row():
            old_code = gr.Number(0, precision=0, minimum=0, label="replace every code",
                                 min_width=80)
            new_code = gr.Number(0, precision=0, minimum=0, label="with code", min_width=80)
            replace_btn = gr.Button("Replace everywhere")
        with gr.Row():
            k = gr.Number(4, precision=0, minimum=0, label="k tokens", min_width=80)
            k_seed = gr.Number(0, precision=0, minimum=0, label="seed", min_width=80)
            random_btn = gr.Button("Randomize k tokens")
            reset_btn = gr.Button("Reset edits")
    with gr.Accordion("Codebook: what each word looks like", open=False):
        with gr.Row():
            eval_btn = gr.Button("Code use on the evaluation set")
            eval_text = gr.Markdown()
        eval_hist = gr.Image(label="Code use over the shapes evaluation renders",
                             interactive=False, format="png", height=220)
        with gr.Row():
            first = gr.Number(0, precision=0, minimum=0, label="first code", min_width=90)
            mode = gr.Radio(list(BROWSE_MODES), value=BROWSE_MODES[0], label="decode each code as")
            browse_btn = gr.Button("Show codes")
        browse_text = gr.Markdown()
        atlas = gr.Image(label="Codebook page", interactive=False, format="png")
    with gr.Accordion("Side by side: VQ-VAE vs VQGAN on the same image", open=False):
        with gr.Row():
            compression = gr.Radio([(text, key) for text, key in COMPRESSIONS], value="f4",
                                   label="Compression: which pair to compare",
                                   elem_id="vq-cmp-compression", scale=2)
            compare_btn = gr.Button(f"Compare {COMPARED[0]} and {COMPARED[1]}", scale=1,
                                    elem_id="vq-compare")
        cmp_explain = gr.Markdown(tab.pair_explanation("f4"), elem_id="vq-cmp-explain")
        cmp_views = []
        for kind in ("VQ-VAE", "VQGAN"):
            with gr.Row(equal_height=True):
                for what in ("input", "tokens", "reconstruction", "error map"):
                    cmp_views.append(_view_image(
                        f"{kind}: {what}", f"vq-cmp-{kind.lower().replace('-', '')}-{what[:5]}",
                        pixelated=what != "tokens"))
        cmp_table = gr.Markdown(elem_id="vq-cmp-table")

    main_outputs = [state, view_in, view_grid, view_recon, view_err, figures, notes, hist]
    new_grids = [tokenize_btn.click(model_work(manager, tab.tokenize), [model, image_in],
                                    main_outputs, api_name="vq_tokenize")]
    # An upload, an example, a rendered caption or another model: tokenize right away.
    for trigger in (image_in.change, model.change):
        new_grids.append(trigger(model_work(manager, tab.auto_tokenize), [model, image_in],
                                 main_outputs, api_visibility="private",
                                 trigger_mode="always_last"))
    render_btn.click(user_errors(tab.render_caption), [caption, seed], image_in,
                     api_name="vq_render_caption")
    caption.submit(user_errors(tab.render_caption), [caption, seed], image_in,
                   api_visibility="private")
    view_grid.select(user_errors(tab.select_cell), [state],
                     [state, view_grid, row, col, code, cell_info], api_visibility="private")
    edits = [
        set_btn.click(model_work(manager, tab.set_token), [state, row, col, code], main_outputs,
                      api_name="vq_set_token"),
        replace_btn.click(model_work(manager, tab.replace_code), [state, old_code, new_code],
                          main_outputs, api_name="vq_replace_code"),
        random_btn.click(model_work(manager, tab.randomize), [state, k, k_seed], main_outputs,
                         api_name="vq_randomize"),
        reset_btn.click(model_work(manager, tab.reset), [state], main_outputs, api_name="vq_reset"),
    ]
    for edit in new_grids + edits:  # the sentence about the selected cell follows the grid
        edit.then(tab.selection_text, [state], cell_info, api_visibility="private")
    eval_btn.click(model_work(manager, tab.eval_histogram), [model], [eval_hist, eval_text],
                   api_name="vq_codebook_usage")
    browse_btn.click(model_work(manager, tab.browse), [model, first, mode, state],
                     [atlas, browse_text], api_name="vq_codebook")
    compare_btn.click(model_work(manager, tab.compare), [image_in, state, compression],
                      [*cmp_views, cmp_table], api_name="vq_compare")
    compression.change(user_errors(tab.choose_compression), [compression],
                       [cmp_explain, compare_btn], api_visibility="private")
