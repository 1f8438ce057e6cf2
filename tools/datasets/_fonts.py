"""Fonts and glyphs: find the Noto files, draw one code point as an ink mask, tell real glyphs from tofu.

A font without a glyph for a code point draws its ``.notdef`` glyph instead (an empty box in
Noto) or nothing at all. :func:`has_glyph` rejects both: the mask must hold ink, and must differ
from the font's own ``.notdef`` mask, drawn once per font and size from a code point no font
maps (U+10FFFD, private use). Text is laid out with Pillow's basic layout, one code point at a
time, so no shaping engine can substitute contextual forms: every glyph is the isolated form.
"""

from __future__ import annotations

import functools
import logging
import os
import unicodedata
from pathlib import Path

import numpy as np

from edgesnn.errors import MissingDependencyError
from tools.datasets._scripts import FONT_PACKAGE, Alphabet

log = logging.getLogger("edgesnn.datasets.glyphs")

#: Where Debian installs the Noto fonts (the first is fonts-noto-core's own directory);
#: ``EDGESNN_FONT_DIR`` is searched first when set.
FONT_DIRS: tuple[str, ...] = (
    "/usr/share/fonts/truetype/noto",
    "/usr/share/fonts/opentype/noto",
    "/usr/share/fonts/noto",
)
#: A private-use code point of plane 16: no Noto font maps it, so it draws ``.notdef``.
NOTDEF_PROBE = 0x10FFFD
#: A mask with less ink than this (sum of coverage, in pixels) counts as empty.
MIN_INK = 4.0


def _pil():
    try:
        from PIL import Image, ImageDraw, ImageFont
    except ImportError as exc:
        raise MissingDependencyError("the glyph dataset needs Pillow (pip install Pillow)") from exc
    return Image, ImageDraw, ImageFont


def font_dirs() -> tuple[str, ...]:
    """The directories searched for font files, in order."""
    extra = os.environ.get("EDGESNN_FONT_DIR")
    return ((extra,) if extra else ()) + FONT_DIRS


@functools.cache
def find_font(file_name: str) -> Path:
    """Path of a font file; MissingDependencyError naming the Debian package when it is nowhere."""
    for d in font_dirs():
        path = Path(d) / file_name
        if path.is_file():
            return path
    raise MissingDependencyError(
        f"font {file_name} not found in {', '.join(font_dirs())}; install the Debian package {FONT_PACKAGE} "
        f"(apt-get install {FONT_PACKAGE}) or set EDGESNN_FONT_DIR",
        path=file_name,
    )


@functools.lru_cache(maxsize=64)
def _font(file_name: str, size_px: int):
    _, _, image_font = _pil()
    return image_font.truetype(str(find_font(file_name)), size_px, layout_engine=image_font.Layout.BASIC)


def render_mask(file_name: str, codepoint: int, *, size_px: int, stroke_px: int = 0) -> np.ndarray:
    """Ink coverage in [0, 1] of one code point, cropped to its ink: float64 (h, w), (0, 0) when blank."""
    image, draw_mod, _ = _pil()
    font = _font(file_name, int(size_px))
    ch = chr(codepoint)
    left, top, right, bottom = font.getbbox(ch, stroke_width=stroke_px)
    pad = 2 + stroke_px
    w, h = max(right - left, 1) + 2 * pad, max(bottom - top, 1) + 2 * pad
    img = image.new("L", (w, h), 0)
    draw_mod.Draw(img).text((pad - left, pad - top), ch, font=font, fill=255, stroke_width=stroke_px, stroke_fill=255)
    mask = np.asarray(img, dtype=np.float64) / 255.0
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if not len(rows):
        return np.zeros((0, 0))
    return mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


@functools.cache
def notdef_mask(file_name: str, size_px: int) -> np.ndarray:
    """What the font draws for a code point it lacks (its ``.notdef`` glyph), cropped like render_mask."""
    return render_mask(file_name, NOTDEF_PROBE, size_px=size_px)


def is_notdef(mask: np.ndarray, notdef: np.ndarray) -> bool:
    """True when ``mask`` is blank or is the ``.notdef`` glyph (same shape, same ink within rounding)."""
    if mask.sum() < MIN_INK:
        return True
    return mask.shape == notdef.shape and float(np.abs(mask - notdef).mean()) < 0.02


def has_glyph(file_name: str, codepoint: int, *, size_px: int = 64) -> bool:
    """Whether the font draws a real glyph (ink, not its .notdef box) for ``codepoint``."""
    return not is_notdef(render_mask(file_name, codepoint, size_px=size_px), notdef_mask(file_name, size_px))


def fingerprint(mask: np.ndarray, grid: int = 24) -> np.ndarray:
    """The mask fitted (aspect kept) and centred in a ``grid`` x ``grid`` square, zero-mean unit-norm, flat."""
    image, _, _ = _pil()
    h, w = mask.shape
    scale = grid / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    small = image.fromarray(np.uint8(np.round(mask * 255))).resize((nw, nh), image.Resampling.BOX)
    out = np.zeros((grid, grid))
    top, left = (grid - nh) // 2, (grid - nw) // 2
    out[top : top + nh, left : left + nw] = np.asarray(small, dtype=np.float64) / 255.0
    out = out.ravel() - out.mean()
    norm = np.linalg.norm(out)
    return out / norm if norm > 0 else out


def candidates(alphabet: Alphabet) -> list[int]:
    """Code points of the alphabet's ranges whose Unicode category is one of its categories."""
    return [
        cp
        for lo, hi in alphabet.ranges
        for cp in range(lo, hi + 1)
        if unicodedata.category(chr(cp)) in alphabet.categories
    ]


def drawable(alphabet: Alphabet, *, size_px: int = 64) -> list[tuple[int, np.ndarray]]:
    """(code point, fingerprint) of every candidate the alphabet's font really draws; skipped ones are logged."""
    out, skipped = [], []
    notdef = notdef_mask(alphabet.font, size_px)
    for cp in candidates(alphabet):
        mask = render_mask(alphabet.font, cp, size_px=size_px)
        if is_notdef(mask, notdef):
            skipped.append(cp)
        else:
            out.append((cp, fingerprint(mask)))
    if skipped:
        log.info("%s: %s has no glyph for %d code points (first U+%04X)", alphabet.name, alphabet.font,
                 len(skipped), skipped[0])  # fmt: skip
    return out
