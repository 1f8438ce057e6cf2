"""The on-disk form of one glyph split: a compressed .npz of flat arrays, validated when read.

Members (N samples, E events in all, C classes, A alphabets, P pose parameters):

=======================  =============  ====================================================
``x``, ``y``             uint16 (E,)    pixel column and row
``p``                    int8 (E,)      polarity, 1 = ON (brighter), 0 = OFF
``t``                    int64 (E,)     µs from the sample's start, in [0, duration_us)
``offsets``              int64 (N+1,)   sample i is events ``offsets[i]:offsets[i+1]``
``labels``               int64 (N,)     class index into ``class_names``
``class_names``          str (C,)       ``Script U+XXXX``
``class_codepoints``     int64 (C,)     the code point drawn
``class_alphabet``       int32 (C,)     index into ``alphabets``
``alphabets``            str (A,)       script names of this split
``alphabet_fonts``       str (A,)       font file name per alphabet (Debian fonts-noto-core)
``pose_params``          float64 (N,P)  columns named by ``pose_param_names``
``pose_param_names``     str (P,)
``width``, ``height``    int64 ()       sensor geometry
``duration_us``          int64 ()       sample length
``split``, ``generator_version``, ``config_hash``, ``config_json``, ``pillow_version``,
``freetype_version``: str ()
``seed``                 int64 ()
=======================  =============  ====================================================

Within a sample events are sorted by time (ties by pixel), as the simulator emits them.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from edgesnn.errors import EventFileError
from edgesnn.events._dtype import EVENT_DTYPE
from tools.datasets._npz import read_members, write_members

_MEMBERS: dict[str, tuple[str, int]] = {
    "x": ("uint16", 1),
    "y": ("uint16", 1),
    "p": ("int8", 1),
    "t": ("int64", 1),
    "offsets": ("int64", 1),
    "labels": ("int64", 1),
    "class_names": ("str", 1),
    "class_codepoints": ("int64", 1),
    "class_alphabet": ("int32", 1),
    "alphabets": ("str", 1),
    "alphabet_fonts": ("str", 1),
    "pose_params": ("float64", 2),
    "pose_param_names": ("str", 1),
    "width": ("int64", 0),
    "height": ("int64", 0),
    "duration_us": ("int64", 0),
    "split": ("str", 0),
    "generator_version": ("str", 0),
    "config_hash": ("str", 0),
    "config_json": ("str", 0),
    "pillow_version": ("str", 0),
    "freetype_version": ("str", 0),
    "seed": ("int64", 0),
}


@dataclass(frozen=True, eq=False)
class GlyphSplit:
    """One split of the glyph dataset as read from disk (see the module docstring for each field)."""

    x: np.ndarray
    y: np.ndarray
    p: np.ndarray
    t: np.ndarray
    offsets: np.ndarray
    labels: np.ndarray
    class_names: np.ndarray
    class_codepoints: np.ndarray
    class_alphabet: np.ndarray
    alphabets: np.ndarray
    alphabet_fonts: np.ndarray
    pose_params: np.ndarray
    pose_param_names: np.ndarray
    width: np.ndarray
    height: np.ndarray
    duration_us: np.ndarray
    split: np.ndarray
    generator_version: np.ndarray
    config_hash: np.ndarray
    config_json: np.ndarray
    pillow_version: np.ndarray
    freetype_version: np.ndarray
    seed: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def events(self, i: int) -> np.ndarray:
        """Events of sample ``i`` as an EVENT_DTYPE array."""
        lo, hi = int(self.offsets[i]), int(self.offsets[i + 1])
        out = np.empty(hi - lo, dtype=EVENT_DTYPE)
        for name in ("x", "y", "p", "t"):
            out[name] = getattr(self, name)[lo:hi]
        return out


def write_glyph_split(path: Path, split: GlyphSplit) -> None:
    """Write ``split`` to ``path`` atomically (temporary file, then rename)."""
    write_members(path, {f.name: getattr(split, f.name) for f in fields(GlyphSplit)}, _MEMBERS)


def read_glyph_split(path: Path) -> GlyphSplit:
    """Read and validate one split file; EventFileError names the file and member at fault."""
    arrays = read_members(path, _MEMBERS, "glyph event split")
    _check_consistency(path, arrays)
    return GlyphSplit(**arrays)


def _check_consistency(path: Path, a: dict[str, np.ndarray]) -> None:
    """Shapes agree, offsets partition the events, pixels on the sensor, times sorted and inside the window."""

    def fail(member: str, message: str) -> None:
        raise EventFileError(message, path=f"{path}/{member}")

    n, e = len(a["labels"]), len(a["t"])
    for name in ("x", "y", "p"):
        if len(a[name]) != e:
            fail(name, f"expected {e} entries like t, got {len(a[name])}")
    offsets = a["offsets"]
    if len(offsets) != n + 1 or offsets[0] != 0 or offsets[-1] != e or np.any(np.diff(offsets) < 0):
        fail("offsets", f"expected {n + 1} non-decreasing entries from 0 to {e}")
    c, n_alpha = len(a["class_names"]), len(a["alphabets"])
    for name in ("class_codepoints", "class_alphabet"):
        if len(a[name]) != c:
            fail(name, f"expected {c} entries like class_names, got {len(a[name])}")
    if len(a["alphabet_fonts"]) != n_alpha:
        fail("alphabet_fonts", f"expected {n_alpha} entries like alphabets, got {len(a['alphabet_fonts'])}")
    if a["pose_params"].shape != (n, len(a["pose_param_names"])):
        fail("pose_params", f"expected shape ({n}, {len(a['pose_param_names'])}), got {a['pose_params'].shape}")
    for name, bound, table in (("labels", c, "class_names"), ("class_alphabet", n_alpha, "alphabets")):
        if len(a[name]) and (a[name].min() < 0 or a[name].max() >= bound):
            fail(name, f"expected indices into {table} (0..{bound - 1})")
    w, h, d = int(a["width"]), int(a["height"]), int(a["duration_us"])
    if w < 1 or h < 1 or d < 1:
        fail("width", f"expected a positive geometry and duration, got {w}x{h}, {d} µs")
    if e and (a["x"].max() >= w or a["y"].max() >= h):
        fail("x", f"expected pixels inside the {w}x{h} sensor")
    if e and not np.all((a["p"] == 0) | (a["p"] == 1)):
        fail("p", "expected polarities 0 or 1")
    t = a["t"]
    if e and (t.min() < 0 or t.max() >= d):
        fail("t", f"expected times in [0, {d}) µs, got [{t.min()}, {t.max()}]")
    drops = np.flatnonzero(np.diff(t) < 0) + 1  # times may only go back where a new sample starts
    if not np.all(np.isin(drops, offsets)):
        bad = int(np.searchsorted(offsets, drops[~np.isin(drops, offsets)][0], side="right") - 1)
        fail("t", f"sample {bad}: event times are not sorted")
