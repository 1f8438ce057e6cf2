"""Prophesee EVT 3.0 (.raw): 16-bit words, stateful. Reader ``open_evt3`` and writer ``write_evt3``.

Decoding rules (docs.prophesee.ai EVT 3.0 and OpenEB's decoder): ``t = loop·2^24 + TH·2^12 + TL``;
a new, different time high zeroes the time low; a time-high drop of 2048 or more is a wrap of the
24-bit base (loop + 1), a smaller drop is damage. EVT_ADDR_X emits one event at the current row;
VECT_12 / VECT_8 emit one event per set bit from the vector base, which then advances by 12 / 8.
The system-type bit of EVT_ADDR_Y is ignored (faery ignores it too); EXT_TRIGGER, OTHERS and IMU
words and their CONTINUED words carry no CD events and are skipped. Timestamps are absolute
(faery's convention); ``time_shift=True`` subtracts ``(first TH − 1)·2^12`` as OpenEB / Metavision
do, which is how DAT files converted by Metavision are timed.

Time offset: a header key ``% t0 N`` (DAT: ``% T0 N``), faery's key (OpenEB defines none, see
_header.py) is added back to every timestamp. ``write_evt3`` sets it to the first event's time
when that is 2^23 µs or later (past the first time-high step from zero, 2047·2^12 µs), so an
epoch-stamped recording costs no filler words; the 24-bit time base then wraps every 2^24 µs as
in any long recording. ``time_shift=True`` ignores the offset, as OpenEB does.
"""

from __future__ import annotations

import numpy as np

from edgesnn.errors import EventFileError
from edgesnn.events._encode import checked_events, raw_header, time_high_steps, time_offset_for, write_file
from edgesnn.events._header import raw_info, read_header, time_offset
from edgesnn.events._kinds import EVT3, P_TIME_SHIFT
from edgesnn.events._wordstream import WordStreamReader, resolve_geometry


def open_evt3(path, *, lenient=False, geometry=None, chunk_events=1 << 20, time_shift=False, native=None):
    """Open an EVT 3.0 file for streaming (``native=False`` forces the numpy decoder)."""
    header = read_header(path)
    info = raw_info(header, path, lenient=lenient)
    if info.format not in (None, "evt3"):
        raise EventFileError(f"header says {info.format}, not EVT 3.0", path=str(path))
    geometry, source, check = resolve_geometry(info.geometry, geometry)
    offset = 0 if time_shift else time_offset(header, path, lenient=lenient)
    return WordStreamReader(
        path,
        fmt="evt3",
        kind=EVT3,
        data_offset=header.length,
        flags=P_TIME_SHIFT if time_shift else 0,
        geometry=geometry,
        check_geometry=check,
        metadata={
            "header": header.as_dict(),
            "geometry_source": source,
            "time_shift": bool(time_shift),
            "time_offset_us": offset,
        },
        lenient=lenient,
        chunk_events=chunk_events,
        native=native,
        time_offset=offset,
    )


def write_evt3(path, events, *, geometry=None) -> None:
    """Write ``events`` (EVENT_DTYPE, t non-decreasing, µs) as a compact EVT 3.0 file.

    Events sharing time, row and polarity at increasing x go out as VECT_BASE_X + VECT_12/VECT_8
    words when that is shorter than one EVT_ADDR_X per event; time and row words are written only
    when they change. ``geometry`` defaults to (max x + 1, max y + 1). A first time of 2^23 µs or
    later (epoch-stamped) goes to the header as ``% t0`` and the words count from it.
    """
    x, y, p, t, geometry = checked_events(events, geometry, max_coord=(2047, 2047), what="EVT 3.0")
    offset = time_offset_for(t, 1 << 23)
    write_file(path, raw_header("3.0", "EVT3", geometry, offset), encode_evt3(x, y, p, t - offset))


def encode_evt3(x, y, p, t) -> np.ndarray:
    """EVT 3.0 words (uint16) for checked int64 event columns."""
    n = len(t)
    if n == 0:
        return np.zeros(0, np.uint16)
    keys, subs, words = [], [], []

    def add(k, s, w):
        keys.append(np.asarray(k, np.int64))
        subs.append(np.broadcast_to(np.asarray(s, np.int64), np.shape(k)))
        words.append(np.asarray(w, np.int64))

    # Time high (several before one event when a step would be taken for a wrap), then time low.
    hi = t >> 12
    th_ev, th_val = time_high_steps(hi, 2047)
    # Among several time highs for one event the last gets sub 0, earlier ones count down.
    rank = np.zeros(len(th_ev), np.int64)
    if len(th_ev) > 1:
        run_start = np.concatenate(([True], th_ev[1:] != th_ev[:-1]))
        grp = np.cumsum(run_start) - 1
        last_pos = np.zeros(grp[-1] + 1, np.int64)
        np.maximum.at(last_pos, grp, np.arange(len(th_ev)))
        rank = np.arange(len(th_ev)) - last_pos[grp]
    add(th_ev, rank, 0x8000 | (th_val & 0xFFF))
    new_hi = np.ones(n, bool)
    new_hi[1:] = hi[1:] != hi[:-1]
    new_t = np.ones(n, bool)
    new_t[1:] = t[1:] != t[:-1]
    tl = t & 0xFFF
    need_tl = np.where(new_hi, tl != 0, new_t)
    i_tl = np.flatnonzero(need_tl)
    add(i_tl, 1, 0x6000 | tl[i_tl])
    new_y = np.ones(n, bool)
    new_y[1:] = y[1:] != y[:-1]
    i_y = np.flatnonzero(new_y)
    add(i_y, 2, y[i_y])
    # Vector groups: same t, y, p, x rising by 1..12 from one event to the next.
    start = new_t | new_y
    start[1:] |= (p[1:] != p[:-1]) | (x[1:] <= x[:-1]) | (x[1:] - x[:-1] > 12)
    gid = np.cumsum(start) - 1
    g_first = np.flatnonzero(start)
    g_size = np.diff(np.append(g_first, n))
    g_last = g_first + g_size - 1
    g_extent = x[g_last] - x[g_first]
    g_win = g_extent // 12 + 1
    g_vec = (g_size >= 2) & (1 + g_win < g_size)
    ev_vec = g_vec[gid]
    i_ax = np.flatnonzero(~ev_vec)
    add(i_ax, 3, 0x2000 | (p[i_ax] << 11) | x[i_ax])
    vg = np.flatnonzero(g_vec)
    if len(vg):
        f = g_first[vg]
        add(f, 3, 0x3000 | (p[f] << 11) | x[f])
        win_off = np.concatenate(([0], np.cumsum(g_win[vg])[:-1]))
        n_win = int(g_win[vg].sum())
        vec_rank = np.full(len(g_first), -1, np.int64)
        vec_rank[vg] = np.arange(len(vg))
        ev = np.flatnonzero(ev_vec)
        r = vec_rank[gid[ev]]
        d = x[ev] - x[g_first[gid[ev]]]
        mask = np.zeros(n_win, np.int64)
        np.add.at(mask, win_off[r] + d // 12, np.left_shift(1, d % 12))
        w_group = np.repeat(np.arange(len(vg)), g_win[vg])
        w_k = np.arange(n_win) - win_off[w_group]
        is_last = w_k == g_win[vg][w_group] - 1
        short = is_last & ((g_extent[vg][w_group] % 12) < 8)
        add(g_first[vg][w_group], 4 + w_k, np.where(short, 0x5000, 0x4000) | mask)
    k, s, w = np.concatenate(keys), np.concatenate(subs), np.concatenate(words)
    order = np.lexsort((s, k))
    return w[order].astype(np.uint16)
