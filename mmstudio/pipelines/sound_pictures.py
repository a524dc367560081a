"""Pictures of sounds as uint8 RGB arrays, drawn with numpy and PIL.

Not matplotlib: its drawing holds the GIL, and on the shared server it was measured to cost about
30% of the CPU that the tabs need. Every picture has the same width and margins, so time axes line
up when pictures are stacked: a waveform of the whole clip with the zoom window highlighted,
the zoom itself showing each sample as a dot on a stem, and spectrograms (frequency up, time
right) in a perceptual colormap (magma, from a 9-stop lookup table) with a colour bar.
"""

from __future__ import annotations

from functools import cache, lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from mmstudio.pipelines.sound import STFT_DB_RANGE, bin_frequencies
from mmstudio.worlds import audio

WIDE = 960  # every picture: stacked, their time axes line up
WAVE_HEIGHT = 190
SPEC_HEIGHT = 270
#: margins; the right one leaves room for a spectrogram's colour bar in every picture
LEFT, RIGHT, TOP, BOTTOM = 58, 92, 24, 34

BACKGROUND = (255, 255, 255)
PLOT_BG = (248, 249, 252)
INK = (55, 65, 81)
GRID = (226, 230, 238)
PEAK = (129, 140, 248)  # the waveform's min/max per pixel column
RMS = (55, 48, 163)  # its RMS per column, darker, inside
HIGHLIGHT = (245, 158, 11)
STEM = (79, 70, 229)
ENVELOPE_S = 0.01  # the overview's min/max/RMS look at least this far around each column

#: magma (Smith & van der Walt, matplotlib, 2015) at 9 evenly spaced stops, 0..1.
MAGMA_STOPS = np.array([
    (0, 0, 4), (29, 17, 71), (81, 18, 124), (131, 38, 129), (183, 55, 121),
    (231, 82, 99), (252, 137, 97), (254, 196, 136), (252, 253, 191),
], dtype=np.float64)


@cache
def colormap_lut() -> np.ndarray:
    """(256, 3) uint8: the magma stops interpolated linearly."""
    at = np.linspace(0.0, 1.0, len(MAGMA_STOPS))
    x = np.linspace(0.0, 1.0, 256)
    lut = np.stack([np.interp(x, at, MAGMA_STOPS[:, c]) for c in range(3)], axis=1)
    lut = lut.round().astype(np.uint8)
    lut.setflags(write=False)
    return lut


def colorize(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """(...,) values -> (..., 3) uint8 magma colours, ``lo`` darkest, ``hi`` brightest."""
    span = max(hi - lo, 1e-12)
    index = np.clip((np.asarray(values, np.float64) - lo) / span * 255.0, 0, 255)
    return colormap_lut()[index.round().astype(np.intp)]


@cache
def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)  # Pillow's bundled font: nothing downloaded
    except TypeError:  # very old Pillow: fixed-size bitmap font
        return ImageFont.load_default()


@lru_cache(maxsize=8192)
def _text_mask(text: str, size: int, anchor: str) -> tuple[Image.Image, int, int]:
    """``text`` rendered once as a coverage mask, with its offset from the anchor point."""
    font = _font(size)
    left, top, right, bottom = font.getbbox(text, anchor=anchor)
    mask = Image.new("L", (max(1, right - left), max(1, bottom - top)), 0)
    ImageDraw.Draw(mask).text((-left, -top), text, fill=255, font=font, anchor=anchor)
    return mask, left, top


def draw_text(image: Image.Image, xy: tuple[float, float], text: str,
              fill: tuple[int, int, int], size: int, anchor: str = "la") -> None:
    """``ImageDraw.text`` with the default font, from a cache of rendered strings: the numbers in
    matrix cells and token grids repeat across requests, and rendering glyphs holds the GIL,
    which a classroom of requests at once then waits on."""
    mask, left, top = _text_mask(text, size, anchor)
    x, y = round(xy[0] + left), round(xy[1] + top)
    image.paste(fill, (x, y, x + mask.width, y + mask.height), mask)


class _CachedTextDraw(ImageDraw.ImageDraw):
    """``ImageDraw`` whose ``text`` with one of the default fonts (``_font``) and a colour goes
    through ``draw_text``'s cache; anything else is drawn as usual."""

    def text(self, xy, text, fill=None, font=None, anchor=None, **kwargs):  # noqa: ANN001, ANN201
        size = getattr(font, "size", None)
        if (kwargs or size is None or font is not _font(int(size)) or not isinstance(text, str)
                or "\n" in text or not isinstance(fill, tuple)):
            return super().text(xy, text, fill=fill, font=font, anchor=anchor, **kwargs)
        draw_text(self._image, xy, text, fill, int(size), anchor or "la")
        return None


def text_draw(image: Image.Image) -> ImageDraw.ImageDraw:
    """``ImageDraw.Draw(image)`` whose labels come from the cache of rendered strings: labels
    (captions, titles, axis names) repeat across requests as the matrix numbers do."""
    return _CachedTextDraw(image)


@lru_cache(maxsize=8192)
def text_width(text: str, size: int) -> int:
    """Width in pixels of ``text`` in the default font of ``size`` (cached)."""
    left, _, right, _ = _font(size).getbbox(text)
    return int(right - left)


def _nice_step(span: float, max_ticks: int) -> float:
    """The smallest 1-2-5 step giving at most ``max_ticks`` ticks over ``span``."""
    for exponent in range(-6, 6):
        for mantissa in (1, 2, 5):
            step = mantissa * 10.0**exponent
            if span / step <= max_ticks:
                return step
    return span


def _ticks(lo: float, hi: float, max_ticks: int) -> tuple[list[float], float]:
    step = _nice_step(hi - lo, max_ticks)
    first = np.ceil(lo / step - 1e-9) * step
    values = np.arange(first, hi + step * 1e-6, step)
    return [float(v) for v in values], step


def _fmt(value: float, step: float) -> str:
    decimals = max(0, int(np.ceil(-np.log10(step) - 1e-9)))
    text = f"{value:.{decimals}f}"
    return "0" if float(text) == 0 else text


class _Canvas:
    """A white picture with one plot area (x0, y0)-(x1, y1), pixel coordinates inclusive."""

    def __init__(self, width: int, height: int, right: int) -> None:
        self.image = Image.new("RGB", (width, height), BACKGROUND)
        self.draw = text_draw(self.image)
        self.x0, self.y0 = LEFT, TOP
        self.x1, self.y1 = width - right - 1, height - BOTTOM - 1
        self.font = _font(12)
        self.small = _font(11)

    @property
    def pw(self) -> int:
        return self.x1 - self.x0 + 1

    @property
    def ph(self) -> int:
        return self.y1 - self.y0 + 1

    def time_axis(self, start: float, stop: float, unit: str = "s", scale: float = 1.0,
                  grid: bool = True) -> None:
        """Ticks along the bottom for times ``start``..``stop`` seconds, shown x ``scale``."""
        values, step = _ticks(start * scale, stop * scale, max(2, self.pw // 90))
        for v in values:
            x = self.x0 + (v / scale - start) / (stop - start) * (self.pw - 1)
            if grid:
                self.draw.line((x, self.y0, x, self.y1), fill=GRID)
            self.draw.line((x, self.y1 + 1, x, self.y1 + 5), fill=INK)
            self.draw.text((x, self.y1 + 7), _fmt(v, step), fill=INK, font=self.font,
                           anchor="ma")
        self.draw.text((self.x1, self.y1 + 21), unit, fill=INK, font=self.small, anchor="ra")

    def value_axis(self, ticks: list[tuple[float, str]], unit: str, grid: bool = True) -> None:
        """Ticks on the left at fractions of the height (0 = bottom, 1 = top)."""
        for frac, label in ticks:
            y = self.y1 - frac * (self.ph - 1)
            if grid:
                self.draw.line((self.x0, y, self.x1, y), fill=GRID)
            self.draw.line((self.x0 - 5, y, self.x0 - 1, y), fill=INK)
            self.draw.text((self.x0 - 8, y), label, fill=INK, font=self.font, anchor="rm")
        self.draw.text((6, 5), unit, fill=INK, font=self.small, anchor="la")

    def frame(self) -> None:
        self.draw.rectangle((self.x0 - 1, self.y0 - 1, self.x1 + 1, self.y1 + 1), outline=INK)

    def array(self) -> np.ndarray:
        return np.asarray(self.image, dtype=np.uint8).copy()


def _amplitude_ticks(limit: float) -> list[tuple[float, str]]:
    values, step = _ticks(-limit, limit, 4)
    return [((v + limit) / (2 * limit), _fmt(v, step)) for v in values]


def waveform_picture(y: np.ndarray, sample_rate: int = audio.SAMPLE_RATE,
                     window: tuple[float, float] | None = None,
                     width: int = WIDE, height: int = WAVE_HEIGHT) -> np.ndarray:
    """The whole clip, amplitude -1..1 up, time right: per pixel column the min..max of the
    samples around it (light) and their RMS (dark). ``window`` = (start, width) in seconds is
    highlighted. Returns (height, width, 3) uint8."""
    y = np.asarray(y, np.float32)  # (N,)
    n = y.shape[0]
    seconds = n / sample_rate
    c = _Canvas(width, height, RIGHT)
    c.draw.rectangle((c.x0, c.y0, c.x1, c.y1), fill=PLOT_BG)
    if window is not None:
        start, span = window
        a = c.x0 + start / seconds * c.pw
        b = max(a + 2, c.x0 + (start + span) / seconds * c.pw)
        c.draw.rectangle((a, c.y0, b, c.y1), fill=(253, 236, 200))
    c.time_axis(0.0, seconds)
    c.value_axis(_amplitude_ticks(1.0), "amplitude")
    # per pixel column: min, max and RMS over the column's samples, widened to at least
    # ENVELOPE_S so that a tone draws as its envelope rather than as a moire of partial periods
    from scipy.ndimage import maximum_filter1d, minimum_filter1d, uniform_filter1d

    edges = np.linspace(0, n, c.pw + 1)
    centres = np.minimum(((edges[:-1] + edges[1:]) / 2).astype(np.intp), n - 1)  # (pw,)
    size = max(int(np.ceil(n / c.pw)), int(ENVELOPE_S * sample_rate), 1)
    hi = maximum_filter1d(y, size, mode="constant", cval=0.0)[centres]
    lo = minimum_filter1d(y, size, mode="constant", cval=0.0)[centres]
    power = uniform_filter1d(y.astype(np.float64) ** 2, size, mode="constant", cval=0.0)
    rms = np.sqrt(np.maximum(power[centres], 0.0))

    def row(v: np.ndarray) -> np.ndarray:
        return c.y0 + (1.0 - (np.clip(v, -1, 1) + 1.0) / 2.0) * (c.ph - 1)

    pixels = np.array(c.image)
    rows = np.arange(c.ph)[:, None] + c.y0  # (ph, 1)
    top, bottom = np.floor(row(hi)), np.ceil(row(lo))  # (pw,)
    peak = (rows >= top) & (rows <= bottom)
    inner = (rows >= np.floor(row(np.minimum(rms, hi)))) & (rows <= np.ceil(row(-rms)))
    region = pixels[c.y0:c.y1 + 1, c.x0:c.x1 + 1]
    region[peak] = PEAK
    region[inner & peak] = RMS
    if window is not None:  # tint the window over the waveform too
        ia, ib = int(a) - c.x0, int(np.ceil(b)) - c.x0 + 1
        tinted = region[:, ia:ib].astype(np.float32) * 0.7 + np.float32(HIGHLIGHT) * 0.3
        region[:, ia:ib] = tinted.round().astype(np.uint8)
    c.image = Image.fromarray(pixels)
    c.draw = text_draw(c.image)
    zero = row(np.zeros(1))[0]
    c.draw.line((c.x0, zero, c.x1, zero), fill=(160, 166, 180))
    if window is not None:
        c.draw.rectangle((a, c.y0, b, c.y1), outline=HIGHLIGHT, width=2)
    c.frame()
    return c.array()


def zoom_picture(y: np.ndarray, start_s: float, width_s: float,
                 sample_rate: int = audio.SAMPLE_RATE, width: int = WIDE,
                 height: int = WAVE_HEIGHT) -> np.ndarray:
    """The samples from ``start_s`` for ``width_s`` seconds, each a dot on a stem from zero
    (when they are more than a quarter of the pixels, a line through small dots); the amplitude
    axis fits the window's loudest sample. Returns (height, width, 3) uint8."""
    y = np.asarray(y, np.float32)
    n = y.shape[0]
    a = int(np.clip(round(start_s * sample_rate), 0, max(n - 1, 0)))
    b = int(np.clip(a + max(1, round(width_s * sample_rate)), a + 1, n))
    part = y[a:b]
    count = part.shape[0]
    limit = float(np.abs(part).max()) * 1.15
    limit = _round_up(max(limit, 1e-3))
    c = _Canvas(width, height, RIGHT)
    c.draw.rectangle((c.x0, c.y0, c.x1, c.y1), fill=(255, 251, 240))
    t0, t1 = a / sample_rate, (a + count) / sample_rate
    c.time_axis(t0, t1, unit="ms", scale=1000.0)
    c.value_axis(_amplitude_ticks(limit), "amplitude")
    xs = c.x0 + (np.arange(count) + 0.5) / count * (c.pw - 1)
    ys = c.y0 + (1.0 - (part / limit + 1.0) / 2.0) * (c.ph - 1)
    zero = c.y0 + 0.5 * (c.ph - 1)
    c.draw.line((c.x0, zero, c.x1, zero), fill=(160, 166, 180))
    if count * 4 <= c.pw:
        radius = 3 if count * 8 <= c.pw else 2
        c.draw.line(list(zip(xs, ys, strict=True)), fill=(196, 200, 240), width=1)
        for x, v in zip(xs, ys, strict=True):
            c.draw.line((x, zero, x, v), fill=STEM, width=1)
            c.draw.ellipse((x - radius, v - radius, x + radius, v + radius), fill=STEM)
    else:
        c.draw.line(list(zip(xs, ys, strict=True)), fill=STEM, width=1)
        if count * 2 <= c.pw:
            for x, v in zip(xs, ys, strict=True):
                c.draw.ellipse((x - 1, v - 1, x + 1, v + 1), fill=STEM)
    text = (f"samples {a:,} to {a + count - 1:,}: {count:,} numbers, "
            f"1/{sample_rate:,} s apart")
    c.draw.text((c.x1, 5), text, fill=INK, font=c.font, anchor="ra")
    c.frame()
    return c.array()


def _round_up(value: float) -> float:
    """The next 1-2-5 value (with 2.5 too) at or above ``value``."""
    exponent = np.floor(np.log10(value))
    for mantissa in (1.0, 2.0, 2.5, 5.0, 10.0):
        if mantissa * 10**exponent >= value * (1 - 1e-9):
            return float(mantissa * 10**exponent)
    return float(value)


def _resize(values: np.ndarray, width: int, height: int) -> np.ndarray:
    """(F, T) float -> (height, width): averaged where shrunk (BOX), repeated where enlarged
    (NEAREST: each frame and band stays a visible block); row 0 of the input ends at the
    bottom."""
    image = Image.fromarray(np.ascontiguousarray(values[::-1], np.float32), mode="F")
    rows, cols = values.shape
    image = image.resize((cols, height), Image.Resampling.BOX if rows > height
                         else Image.Resampling.NEAREST)
    image = image.resize((width, height), Image.Resampling.BOX if cols > width
                         else Image.Resampling.NEAREST)
    return np.asarray(image, np.float32)


def spectrogram_picture(values: np.ndarray, seconds: float, lo: float, hi: float,
                        freq_ticks: list[tuple[float, str]], freq_unit: str,
                        bar_ticks: list[tuple[float, str]], bar_unit: str,
                        width: int = WIDE, height: int = SPEC_HEIGHT) -> np.ndarray:
    """(F, T) values, row 0 the lowest frequency, drawn frequency up and time right in magma
    (``lo`` darkest, ``hi`` brightest) with a colour bar on the right. ``freq_ticks`` and
    ``bar_ticks`` are (fraction of the height from the bottom, label)."""
    c = _Canvas(width, height, RIGHT)
    pixels = colorize(_resize(values, c.pw, c.ph), lo, hi)  # (ph, pw, 3)
    c.image.paste(Image.fromarray(pixels), (c.x0, c.y0))
    c.time_axis(0.0, seconds, grid=False)
    c.value_axis(freq_ticks, freq_unit, grid=False)
    c.frame()
    bx0 = c.x1 + 16
    bar = colorize(np.linspace(hi, lo, c.ph)[:, None].repeat(14, axis=1), lo, hi)
    c.image.paste(Image.fromarray(bar), (bx0, c.y0))
    c.draw.rectangle((bx0 - 1, c.y0 - 1, bx0 + 14, c.y1 + 1), outline=INK)
    for frac, label in bar_ticks:
        yy = c.y1 - frac * (c.ph - 1)
        c.draw.line((bx0 + 14, yy, bx0 + 18, yy), fill=INK)
        c.draw.text((bx0 + 21, yy), label, fill=INK, font=c.font, anchor="lm")
    c.draw.text((width - 4, c.y1 + 21), bar_unit, fill=INK, font=c.small, anchor="ra")
    return c.array()


def _bar_ticks(lo: float, hi: float) -> list[tuple[float, str]]:
    values, step = _ticks(lo, hi, 6)
    return [((v - lo) / (hi - lo), _fmt(v, step)) for v in values]


def _khz(hz: float) -> str:
    return f"{hz / 1000:g}k" if hz >= 1000 else f"{hz:g}"


def stft_picture(stft_db: np.ndarray, seconds: float, width: int = WIDE,
                 height: int = SPEC_HEIGHT) -> np.ndarray:
    """The STFT magnitude in dB (0 = the loudest bin, down to -80), linear frequency axis."""
    top = float(bin_frequencies()[-1])
    ticks = [(f / top, _khz(f)) for f in np.arange(0.0, top + 1, 1000.0)]
    lo, hi = -STFT_DB_RANGE, 0.0
    return spectrogram_picture(stft_db, seconds, lo, hi, ticks, "Hz", _bar_ticks(lo, hi),
                               "dB", width, height)


def mel_picture(logmel: np.ndarray, seconds: float, width: int = WIDE,
                height: int = SPEC_HEIGHT) -> np.ndarray:
    """The log-mel spectrogram as a model reads it (natural log of power, floor
    ``LOG_MEL_MIN``), one equal-height row per mel band; ticks name band frequencies in Hz."""
    mel_hz = audio.mel_frequencies()  # (64,)
    bands = np.arange(len(mel_hz))
    ticks: list[tuple[float, str]] = []
    min_gap = 16 / (height - TOP - BOTTOM)  # labels at least 16 px apart
    for hz in (50, 100, 200, 500, 1000, 2000, 4000, 8000):
        frac = (np.interp(hz, mel_hz, bands) + 0.5) / len(mel_hz)
        if mel_hz[0] <= hz <= mel_hz[-1] and (not ticks or frac - ticks[-1][0] >= min_gap):
            ticks.append((float(frac), _khz(hz)))
    lo = audio.LOG_MEL_MIN
    hi = max(float(np.max(logmel)), lo + 1.0)
    return spectrogram_picture(logmel, seconds, lo, hi, ticks, "Hz", _bar_ticks(lo, hi),
                               "ln power", width, height)


GRID_ROW = 34  # pixels per codebook level in the token grid


def code_colors(codes: np.ndarray, codebook_size: int) -> np.ndarray:
    """(...,) code ids -> (..., 3) uint8: a fixed colour per id, neighbouring ids far apart
    (hue by the golden ratio), so equal codes read as equal colours across the grid."""
    ids = np.asarray(codes, np.int64) % max(codebook_size, 1)
    hue = (ids * 0.6180339887) % 1.0
    light = 0.45 + 0.2 * ((ids * 7) % 3) / 2  # three lightness steps
    sat = 0.75
    # HSL -> RGB, vectorised
    c = (1 - np.abs(2 * light - 1)) * sat
    h6 = hue * 6
    x = c * (1 - np.abs(h6 % 2 - 1))
    zero = np.zeros_like(c)
    sector = np.floor(h6).astype(int) % 6
    rgb = np.select([sector[..., None] == s for s in range(6)], [
        np.stack([c, x, zero], -1), np.stack([x, c, zero], -1), np.stack([zero, c, x], -1),
        np.stack([zero, x, c], -1), np.stack([x, zero, c], -1), np.stack([c, zero, x], -1)])
    rgb = rgb + (light - c / 2)[..., None]
    return (rgb * 255).round().clip(0, 255).astype(np.uint8)


def token_grid_picture(codes: np.ndarray, frame_rate: float, codebook_size: int,
                       width: int = WIDE, highlight: tuple[int, int] | None = None,
                       dimmed: list[int] | None = None) -> np.ndarray:
    """The codec's tokens: one row per residual level (level 1 on top: the coarsest), one column
    per frame, each cell coloured by its code id (``code_colors``); ids written in the cells
    when they are wide enough. ``highlight`` = (level, frame) outlined; ``dimmed`` levels are
    drawn pale (dropped or replaced)."""
    levels, frames = codes.shape
    c = _Canvas(width, TOP + levels * GRID_ROW + BOTTOM, RIGHT)
    colors = code_colors(codes, codebook_size)  # (L, F, 3)
    for level in dimmed or []:
        colors[level] = (colors[level].astype(np.int32) // 4 + 190).astype(np.uint8)
    cell = c.pw / frames
    xs = [c.x0 + round(f * cell) for f in range(frames + 1)]
    for level in range(levels):
        y0 = c.y0 + level * GRID_ROW
        for f in range(frames):
            c.draw.rectangle((xs[f], y0, max(xs[f], xs[f + 1] - 1), y0 + GRID_ROW - 2),
                             fill=tuple(int(v) for v in colors[level, f]))
            if cell >= 26:
                c.draw.text(((xs[f] + xs[f + 1]) / 2, y0 + GRID_ROW / 2 - 1),
                            str(int(codes[level, f])), fill=(255, 255, 255), font=c.small,
                            anchor="mm")
        c.draw.text((c.x0 - 8, y0 + GRID_ROW / 2), f"level {level + 1}", fill=INK,
                    font=c.font, anchor="rm")
    if highlight is not None:
        level, f = highlight
        if 0 <= level < levels and 0 <= f < frames:
            y0 = c.y0 + level * GRID_ROW
            c.draw.rectangle((xs[f] - 2, y0 - 2, xs[f + 1] + 1, y0 + GRID_ROW), outline=INK,
                             width=2)
    c.time_axis(0.0, frames / frame_rate, grid=False)
    c.frame()
    return c.array()


def grid_cell(x: float, y: float, levels: int, frames: int, width: int = WIDE) -> tuple[int, int]:
    """The (level, frame) under pixel (x, y) of ``token_grid_picture``; (-1, -1) outside."""
    x0, x1 = LEFT, width - RIGHT - 1
    f = int((x - x0) / (x1 - x0 + 1) * frames)
    level = int((y - TOP) // GRID_ROW)
    if 0 <= f < frames and 0 <= level < levels:
        return level, f
    return -1, -1
