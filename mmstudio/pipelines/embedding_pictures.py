"""Pictures of an embedding comparison as uint8 RGB arrays, drawn with numpy and PIL (not
matplotlib, whose drawing holds the GIL: see ``sound_pictures``).

- ``matrix_picture``: the items x texts cosine matrix above the softmax over texts per item, one
  shared column of rotated text labels, each row's best text boxed in pink and its true caption
  (when known) marked in green; values in the cells when they fit;
- ``bars_picture``: one item's zero-shot probabilities, best on top;
- ``map_picture``: the PCA map of items and texts (``align.EmbeddingMap``), coloured by group,
  each item joined to its best text;
- ``mel_thumbnail``: a small log-mel picture of a clip, for a gallery of the clips compared.

Each takes optional thumbnails of the items (images, for the image side of the Similarity tab),
drawn with crisp pixels beside the matrix rows, in the corner of the bars and as the map's points.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache, lru_cache

import numpy as np
from PIL import Image, ImageDraw

from mmstudio.pipelines.sound_pictures import (
    _font,
    _resize,
    colorize,
    draw_text,
    text_draw,
    text_width,
)
from mmstudio.worlds import audio

BACKGROUND = (255, 255, 255)
INK = (55, 65, 81)
FAINT = (120, 128, 144)
GRID = (226, 230, 238)
BEST = (255, 61, 127)  # each row's best text
TRUE = (22, 163, 74)  # its true caption
BAR = (203, 210, 255)
BAR_BEST = (79, 70, 229)

#: RdBu reversed (blue = -1, white = 0, red = +1) and viridis, 9 stops each (ColorBrewer, 2002;
#: Smith & van der Walt, matplotlib, 2015).
DIVERGING_STOPS = np.array([
    (33, 102, 172), (67, 147, 195), (146, 197, 222), (209, 229, 240), (247, 247, 247),
    (253, 219, 199), (244, 165, 130), (214, 96, 77), (178, 24, 43)], dtype=np.float64)
VIRIDIS_STOPS = np.array([
    (68, 1, 84), (71, 45, 123), (59, 82, 139), (44, 114, 142), (33, 145, 140),
    (40, 174, 128), (94, 201, 98), (173, 220, 48), (253, 231, 37)], dtype=np.float64)
#: group colours on the map (Tableau 10), and the colour of items without a group
GROUP_COLORS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
                (140, 86, 75), (227, 119, 194), (188, 189, 34), (23, 190, 207)]
NO_GROUP = (127, 127, 127)


@cache
def _lut(name: str) -> np.ndarray:
    stops = DIVERGING_STOPS if name == "diverging" else VIRIDIS_STOPS
    at = np.linspace(0.0, 1.0, len(stops))
    x = np.linspace(0.0, 1.0, 256)
    lut = np.stack([np.interp(x, at, stops[:, c]) for c in range(3)], axis=1)
    lut = lut.round().astype(np.uint8)
    lut.setflags(write=False)
    return lut


def paint(values: np.ndarray, lo: float, hi: float, name: str) -> np.ndarray:
    """(...,) values -> (..., 3) uint8 through the ``diverging`` or ``viridis`` table."""
    index = np.clip((np.asarray(values, np.float64) - lo) / max(hi - lo, 1e-12) * 255.0, 0, 255)
    return _lut(name)[index.round().astype(np.intp)]


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "\u2026"


def _vertical_text(image: Image.Image, xy: tuple[int, int], text: str, size: int,
                   fill: tuple[int, int, int]) -> None:
    """``text`` written bottom to top, its end at ``xy`` (x centre, y top)."""
    strip = _vertical_mask(text, size)
    x, y = xy[0] - strip.width // 2, xy[1]
    image.paste(fill, (x, y, x + strip.width, y + strip.height), strip)


@lru_cache(maxsize=4096)
def _vertical_mask(text: str, size: int) -> Image.Image:
    """``text`` rendered once as a coverage mask, turned to read bottom to top."""
    font = _font(size)
    left, top, right, bottom = font.getbbox(text)
    strip = Image.new("L", (int(right - left) + 2, int(bottom - top) + 2), 0)
    ImageDraw.Draw(strip).text((-left + 1, -top + 1), text, fill=255, font=font)
    return strip.rotate(90, expand=True)


def _colorbar(draw: ImageDraw.ImageDraw, image: Image.Image, x0: int, y0: int, height: int,
              lo: float, hi: float, name: str, ticks: Sequence[float]) -> None:
    bar = paint(np.linspace(hi, lo, height)[:, None].repeat(12, axis=1), lo, hi, name)
    image.paste(Image.fromarray(bar), (x0, y0))
    draw.rectangle((x0 - 1, y0 - 1, x0 + 12, y0 + height), outline=INK)
    for v in ticks:
        y = y0 + (hi - v) / (hi - lo) * (height - 1)
        draw.line((x0 + 12, y, x0 + 16, y), fill=INK)
        draw.text((x0 + 19, y), f"{v:g}", fill=INK, font=_font(11), anchor="lm")


def thumbnail(image: np.ndarray, size: int) -> Image.Image:
    """``image`` (H, W, 3) uint8 fitted into ``size`` x ``size`` px with crisp pixels (nearest
    neighbour), as a PIL image."""
    image = np.asarray(image, dtype=np.uint8)
    h, w = image.shape[:2]
    scale = size / max(h, w)
    return Image.fromarray(image).resize((max(1, round(w * scale)), max(1, round(h * scale))),
                                         Image.NEAREST)


def matrix_picture(cosine: np.ndarray, probs: np.ndarray, row_labels: Sequence[str],
                   texts: Sequence[str], logit_scale: float,
                   truth: Sequence[int | None] | None = None, item: str = "clip",
                   thumbs: Sequence[np.ndarray] | None = None) -> np.ndarray:
    """Cosine (N, M) on top, softmax over the M texts per row below, sharing the text labels
    (written vertically under the lower panel). Each row's best text is boxed in pink, its true
    caption (``truth[i]``, an index or None) outlined in green inside the cell. ``thumbs``: one
    picture per row, drawn beside its label (up to 16 rows). Returns (height, width, 3) uint8."""
    cosine, probs = np.asarray(cosine, np.float64), np.asarray(probs, np.float64)
    n, m = cosine.shape
    cw = int(np.clip(860 // max(m, 1), 16, 60))
    rh = int(np.clip(320 // max(n, 1), 12, 30))
    thumbs = list(thumbs) if thumbs is not None and n <= 16 else None
    if thumbs:
        rh = max(rh, 28)
    annotate = cw >= 34 and rh >= 16
    size = 12 if rh >= 16 else 10
    rows = [_short(f"{i + 1}. {lab}", 40 if thumbs else 56) for i, lab in enumerate(row_labels)]
    cols = [_short(t, 46) for t in texts]
    thumb_w = rh - 4 if thumbs else 0
    smalls = [thumbnail(t, thumb_w) for t in thumbs] if thumbs else []  # once, for both panels
    left = 16 + max(text_width(r, size) for r in rows) + (thumb_w + 8 if thumbs else 0)
    col_h = 12 + max(text_width(c, 11) for c in cols)
    top, title_h, gap, right = 28, 22, 18, 70
    panel_w, panel_h = m * cw, n * rh
    width = max(left + panel_w + right, 560)
    height = top + 2 * (title_h + panel_h) + gap + col_h + 8
    image = Image.new("RGB", (width, height), BACKGROUND)
    draw = text_draw(image)
    best = probs.argmax(1)
    bound = max(0.25, float(np.abs(cosine).max()))
    bound = float(np.ceil(bound * 20) / 20)
    legend_x = 8
    draw.rectangle((legend_x, 8, legend_x + 12, 20), outline=BEST, width=2)
    draw.text((legend_x + 18, 14), f"each {item}'s best text", fill=INK, font=_font(12),
              anchor="lm")
    if truth is not None and any(t is not None for t in truth):
        x = legend_x + 40 + text_width(f"each {item}'s best text", 12)
        draw.rectangle((x, 8, x + 12, 20), outline=TRUE, width=2)
        draw.text((x + 18, 14), "its true caption (world renders)", fill=INK, font=_font(12),
                  anchor="lm")
    panels = [(cosine, f"cosine similarity ({item} x text)", -bound, bound, "diverging",
               [-bound, 0.0, bound]),
              (probs, f"softmax over the {m} texts per {item} (logit scale {logit_scale:.1f})",
               0.0, 1.0, "viridis", [0.0, 0.5, 1.0])]
    y = top
    for values, title, lo, hi, name, ticks in panels:
        draw.text((left, y + title_h // 2), title, fill=INK, font=_font(13), anchor="lm")
        y0 = y + title_h
        cells = paint(values, lo, hi, name)  # (n, m, 3)
        block = np.repeat(np.repeat(cells, rh, axis=0), cw, axis=1)
        image.paste(Image.fromarray(block), (left, y0))
        if cw >= 8 and rh >= 8:  # thin white lines between cells
            for j in range(1, m):
                draw.line((left + j * cw, y0, left + j * cw, y0 + panel_h - 1), fill=BACKGROUND)
            for i in range(1, n):
                draw.line((left, y0 + i * rh, left + panel_w - 1, y0 + i * rh), fill=BACKGROUND)
        draw.rectangle((left - 1, y0 - 1, left + panel_w, y0 + panel_h), outline=INK)
        for i, label in enumerate(rows):
            shift = 0
            if smalls:
                small = smalls[i]
                image.paste(small, (left - 6 - small.width, y0 + i * rh + (rh - small.height) // 2))
                shift = thumb_w + 8
            draw.text((left - 8 - shift, y0 + i * rh + rh / 2), label, fill=INK,
                      font=_font(size), anchor="rm")
        if annotate:
            light = cells.astype(np.float64) @ np.array([0.299, 0.587, 0.114]) > 140
            for i in range(n):
                for j in range(m):
                    draw_text(image, (left + j * cw + cw / 2, y0 + i * rh + rh / 2),
                              f"{values[i, j]:.2f}", (0, 0, 0) if light[i, j] else
                              (255, 255, 255), 10, "mm")
        for i in range(n):
            t = truth[i] if truth is not None else None
            if t is not None:
                draw.rectangle((left + t * cw + 3, y0 + i * rh + 3, left + (t + 1) * cw - 4,
                                y0 + (i + 1) * rh - 4), outline=TRUE, width=2)
            j = int(best[i])
            draw.rectangle((left + j * cw, y0 + i * rh, left + (j + 1) * cw - 1,
                            y0 + (i + 1) * rh - 1), outline=BEST, width=2)
        _colorbar(draw, image, left + panel_w + 14, y0, panel_h, lo, hi, name, ticks)
        y = y0 + panel_h + gap // 2
    y += gap // 2 - 4
    for j, label in enumerate(cols):
        _vertical_text(image, (left + j * cw + cw // 2, y), label, 11, INK)
    return np.asarray(image, dtype=np.uint8).copy()


def bars_picture(labels: Sequence[str], probs: np.ndarray, cosine: np.ndarray, title: str,
                 truth: str | None = None, top: int = 10, width: int = 720,
                 thumb: np.ndarray | None = None) -> np.ndarray:
    """The ``top`` most probable classes as horizontal bars, best on top, each with its
    probability and cosine; the true class (when known) in green, named even when it is not in
    the top; ``thumb``: the item classified, drawn in the lower right corner. Returns
    (height, width, 3) uint8."""
    probs, cosine = np.asarray(probs, np.float64), np.asarray(cosine, np.float64)
    order = list(np.argsort(-probs, kind="stable")[:top])
    labels = list(labels)
    if truth is not None and truth in labels and labels.index(truth) not in order:
        order.append(labels.index(truth))
    row, head = 26, 34
    names = [_short(labels[k], 44) for k in order]
    left = 14 + max(text_width(n, 12) for n in names)
    x0, x1 = left, width - 130
    height = max(head + row * len(order) + 34, head + 110 if thumb is not None else 0)
    image = Image.new("RGB", (width, height), BACKGROUND)
    draw = text_draw(image)
    draw.text((8, head // 2), _short(title, 96), fill=INK, font=_font(13), anchor="lm")
    if thumb is not None:
        small = thumbnail(thumb, 96)
        corner = (width - 8 - small.width, height - 8 - small.height)
        draw.rectangle((corner[0] - 2, corner[1] - 2, corner[0] + small.width + 1,
                        corner[1] + small.height + 1), outline=INK)
        image.paste(small, corner)
    for r, k in enumerate(order):
        y = head + r * row
        is_true = truth is not None and labels[k] == truth
        color = TRUE if is_true else (BAR_BEST if r == 0 else BAR)
        draw.text((left - 8, y + row / 2), names[r], anchor="rm", font=_font(12),
                  fill=TRUE if is_true else INK)
        draw.rectangle((x0, y + 4, x0 + max(1.0, probs[k] * (x1 - x0)), y + row - 4),
                       fill=color)
        draw.text((x0 + probs[k] * (x1 - x0) + 6, y + row / 2),
                  f"{probs[k]:.1%}  (cos {cosine[k]:.2f})", anchor="lm", font=_font(11),
                  fill=INK)
    base = head + row * len(order)
    draw.line((x0, head, x0, base), fill=INK)
    for v in (0.0, 0.25, 0.5, 0.75, 1.0):
        x = x0 + v * (x1 - x0)
        draw.line((x, base, x, base + 4), fill=INK)
        draw.text((x, base + 6), f"{v:g}", anchor="ma", font=_font(11), fill=INK)
    return np.asarray(image, dtype=np.uint8).copy()


def map_picture(emap, item_numbers: Sequence[str], item_groups: Sequence[int | None],
                text_labels: Sequence[str], text_groups: Sequence[int | None],
                groups: Sequence[str], item: str = "clip", width: int = 1120,
                height: int = 660, item_thumbs: Sequence[np.ndarray] | None = None
                ) -> np.ndarray:
    """The PCA map (``align.EmbeddingMap``): items as numbered discs (or as their thumbnails,
    ``item_thumbs``, framed in their group's colour), texts as diamonds with their labels, both
    coloured by group (``groups[g]`` names group g; None: grey), a dashed line from each item to
    its best text. Returns (height, width, 3) uint8."""
    items, texts = np.asarray(emap.images, np.float64), np.asarray(emap.texts, np.float64)
    image = Image.new("RGB", (width, height), BACKGROUND)
    draw = text_draw(image)
    x0, y0, x1, y1 = 70, 36, width - 190, height - 50
    points = np.concatenate([items, texts])
    lo, hi = points.min(0), points.max(0)
    span = np.maximum(hi - lo, 1e-6)
    lo, hi = lo - 0.06 * span, hi + 0.06 * span

    def at(p: np.ndarray) -> tuple[float, float]:
        return (x0 + (p[0] - lo[0]) / (hi[0] - lo[0]) * (x1 - x0),
                y1 - (p[1] - lo[1]) / (hi[1] - lo[1]) * (y1 - y0))

    draw.rectangle((x0, y0, x1, y1), fill=(250, 251, 253), outline=INK)
    for frac in (0.25, 0.5, 0.75):
        draw.line((x0 + frac * (x1 - x0), y0, x0 + frac * (x1 - x0), y1), fill=GRID)
        draw.line((x0, y0 + frac * (y1 - y0), x1, y0 + frac * (y1 - y0)), fill=GRID)

    def color(g: int | None) -> tuple[int, int, int]:
        return NO_GROUP if g is None else GROUP_COLORS[g % len(GROUP_COLORS)]

    for i, j in emap.pairs:  # dashed: item -> its best text
        (ax, ay), (bx, by) = at(items[i]), at(texts[j])
        length = max(np.hypot(bx - ax, by - ay), 1e-6)
        for s in np.arange(0.0, length, 8.0):
            e = min(s + 4.0, length)
            draw.line((ax + (bx - ax) * s / length, ay + (by - ay) * s / length,
                       ax + (bx - ax) * e / length, ay + (by - ay) * e / length),
                      fill=(170, 176, 200))
    label_font = _font(10)
    side = 30 if len(items) <= 24 else 18  # thumbnail size on the map
    half = side / 2 + 2 if item_thumbs is not None else 7
    taken = [(x - 7, y - 7, x + 7, y + 7) for x, y in map(at, texts)]
    taken += [(x - half, y - half, x + half, y + half) for x, y in map(at, items)]
    hidden = 0
    for p, label, g in zip(texts, text_labels, text_groups, strict=True):
        x, y = at(p)
        r = 6
        draw.polygon([(x, y - r), (x + r, y), (x, y + r), (x - r, y)], fill=BACKGROUND,
                     outline=color(g), width=2)
        text = _short(label, 30)
        w, h = text_width(text, 10), 11
        for bx, by in ((x + 9, y - h / 2), (x - 9 - w, y - h / 2), (x - w / 2, y - r - h - 1),
                       (x - w / 2, y + r + 1)):
            box = (bx - 1, by - 1, bx + w + 1, by + h + 1)
            inside = box[0] >= x0 and box[2] <= x1 and box[1] >= y0 and box[3] <= y1
            if inside and not any(box[0] < t[2] and t[0] < box[2] and box[1] < t[3]
                                  and t[1] < box[3] for t in taken):
                taken.append(box)
                draw.text((bx, by + h / 2), text, fill=tuple(int(c * 0.7) for c in color(g)),
                          font=label_font, anchor="lm")
                break
        else:
            hidden += 1
    for k, (p, number, g) in enumerate(zip(items, item_numbers, item_groups, strict=True)):
        x, y = at(p)
        if item_thumbs is not None:
            small = thumbnail(item_thumbs[k], side)
            bx, by = round(x - small.width / 2), round(y - small.height / 2)
            draw.rectangle((bx - 2, by - 2, bx + small.width + 1, by + small.height + 1),
                           outline=color(g), width=2)
            image.paste(small, (bx, by))
            continue
        r = 8
        draw.ellipse((x - r, y - r, x + r, y + r), fill=color(g), outline=BACKGROUND)
        draw.text((x, y), number, fill=BACKGROUND, font=_font(10), anchor="mm")
    ex = emap.explained
    draw.text(((x0 + x1) / 2, y1 + 24), f"PC 1 ({ex[0]:.0%} of the variance)", fill=INK,
              font=_font(12), anchor="ma")
    _vertical_text(image, (20, (y0 + y1) // 2 - 70), f"PC 2 ({ex[1]:.0%} of the variance)", 12,
                   INK)
    marks = "thumbnails" if item_thumbs is not None else "numbered discs"
    draw.text((x0, 18), f"{item}s ({marks}) and texts (diamonds), PCA of both together; "
              f"dashed: {item} -> its most similar text", fill=INK, font=_font(12), anchor="lm")
    ly = y0 + 4
    for g, name in enumerate(groups):
        draw.ellipse((x1 + 16, ly, x1 + 28, ly + 12), fill=color(g))
        draw.text((x1 + 34, ly + 6), name, fill=INK, font=_font(12), anchor="lm")
        ly += 20
    if any(g is None for g in list(item_groups) + list(text_groups)):
        draw.ellipse((x1 + 16, ly, x1 + 28, ly + 12), fill=NO_GROUP)
        draw.text((x1 + 34, ly + 6), "other", fill=INK, font=_font(12), anchor="lm")
        ly += 20
    if hidden:
        draw.text((x1 + 16, ly + 10), f"{hidden} text label(s) left out", fill=FAINT,
                  font=_font(11), anchor="lm")
        draw.text((x1 + 16, ly + 26), "where they would overlap", fill=FAINT, font=_font(11),
                  anchor="lm")
    return np.asarray(image, dtype=np.uint8).copy()


def mel_thumbnail(clip: np.ndarray, width: int = 192, height: int = 96) -> np.ndarray:
    """A clip's whole log-mel fitted to ``width`` x ``height``, low bands at the bottom, in magma,
    without axes (a gallery of the clips compared). Returns (height, width, 3) uint8."""
    logmel = audio.mel_spectrogram(np.asarray(clip, np.float32))  # (64, T)
    lo, hi = audio.LOG_MEL_MIN, max(float(logmel.max()), audio.LOG_MEL_MIN + 1.0)
    return colorize(_resize(logmel, width, height), lo, hi)
