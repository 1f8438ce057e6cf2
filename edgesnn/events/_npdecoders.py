"""Numpy reference decoders: the oracle for ``_evtkernels.c`` and the fallback when it is not built.

``decode(kind, data, state, counts, width, height, flags, target)`` has the C kernel's
semantics (see the comment at the top of ``_evtkernels.c``) without an output capacity: it
returns every event of the block. A block that is *clean* (no invalid word, no event outside the
geometry, no time going backwards) is decoded with vectorised numpy; any other block goes through
a word-by-word Python loop that transcribes the C switch statement, so both paths and the kernel
agree on every input, damaged or not (tests/test_events_fuzz.py checks this).
"""

from __future__ import annotations

import numpy as np

from edgesnn.events._dtype import EVENT_DTYPE
from edgesnn.events._kinds import (
    DAT,
    E_NO_ADDR_Y,
    E_NO_TIME_HIGH,
    E_NO_VECT_BASE,
    E_ORPHAN_CONTINUED,
    E_OUT_OF_GEOMETRY,
    E_TIME_BACKWARDS,
    E_UNKNOWN_TYPE,
    EVT2,
    EVT3,
    EVT21,
    F_CONT_OK,
    F_HAVE_LAST,
    F_HAVE_PREV,
    F_HAVE_TH,
    F_HAVE_VBASE,
    F_HAVE_Y,
    P_DAT_V1,
    P_EXTENT,
    P_LEGACY,
    P_LENIENT,
    P_TIME_SHIFT,
    S_FLAGS,
    S_LAST,
    S_LOOP,
    S_POL,
    S_PREV,
    S_SHIFT,
    S_TH,
    S_TL,
    S_X,
    S_XEND,
    S_Y,
    S_YEND,
    WORD_SIZE,
)

_BITS12 = np.arange(12, dtype=np.uint32)
_BITS32 = np.arange(32, dtype=np.uint64)


class _Stop(Exception):
    """Strict-mode error at the current word."""

    def __init__(self, code: int) -> None:
        self.code = code


def decode(kind, data, state, counts, width, height, flags, target):
    """Decode a whole block; returns (events, words consumed, error code, stopped)."""
    n_words = len(data) // WORD_SIZE[kind]
    buf = np.frombuffer(data, dtype=np.uint8, count=n_words * WORD_SIZE[kind])
    result = _FAST[kind](buf, state, width, height, flags, target)
    if result is None:
        result = _LOOP[kind](buf, state, counts, width, height, flags, target)
    events = result[0]
    if flags & P_EXTENT and len(events):  # as the C kernel tracks it: 1 + the largest x and y written
        state[S_XEND] = max(int(state[S_XEND]), int(events["x"].max()) + 1)
        state[S_YEND] = max(int(state[S_YEND]), int(events["y"].max()) + 1)
    return result


def _events(x, y, p, t) -> np.ndarray:
    out = np.empty(len(x), dtype=EVENT_DTYPE)
    out["x"], out["y"], out["p"], out["t"] = x, y, p, t
    return out


def _in_bounds(x, y, width, height) -> bool:
    return not ((width and len(x) and int(x.max()) >= width) or (height and len(y) and int(y.max()) >= height))


def _ffill(values: np.ndarray, is_set: np.ndarray, initial) -> np.ndarray:
    """values[last index <= i where is_set], or ``initial`` before the first."""
    idx = np.where(is_set, np.arange(len(is_set)), -1)
    np.maximum.accumulate(idx, out=idx)
    out = values[np.maximum(idx, 0)].astype(np.int64)
    out[idx < 0] = initial
    return out


def _continued_ok(typ, is_cont, leaders, state_cont_ok) -> bool:
    """Every CONTINUED word follows (through other CONTINUED words) a leader type."""
    if not is_cont.any():
        return True
    non = ~is_cont
    idx = np.where(non, np.arange(len(typ)), -1)
    np.maximum.accumulate(idx, out=idx)
    lead = idx[is_cont]
    ok = np.where(lead < 0, bool(state_cont_ok), np.isin(typ[np.maximum(lead, 0)], leaders))
    return bool(ok.all())


def _final_cont(typ, is_cont, leaders, fl) -> int:
    non = np.flatnonzero(~is_cont)
    if len(non) == 0:
        return fl
    return (fl | F_CONT_OK) if int(typ[non[-1]]) in leaders else (fl & ~F_CONT_OK)


# ---------------------------------------------------------------------------------------------- EVT 3.0


def _fast_evt3(buf, st, width, height, flags, target):
    w = buf.view("<u2").astype(np.int64)
    typ = w >> 12
    if np.isin(typ, (0x1, 0x9, 0xB, 0xC)).any():
        return None
    fl = int(st[S_FLAGS])
    is_cont = (typ == 0x7) | (typ == 0xF)
    if not _continued_ok(typ, is_cont, (0xD, 0xE), fl & F_CONT_OK):
        return None
    n = len(w)
    pos = np.arange(n)
    # Time high: wraps, backward steps, changes (a change resets the time low).
    is_th = typ == 0x8
    th_idx = np.flatnonzero(is_th)
    th_val = w[th_idx] & 0xFFF
    have_th0 = bool(fl & F_HAVE_TH)
    shift = int(st[S_SHIFT])
    if len(th_idx):
        if have_th0:
            prev = np.concatenate(([int(st[S_TH])], th_val[:-1]))
        else:
            prev = np.concatenate(([th_val[0]], th_val[:-1]))
            if flags & P_TIME_SHIFT:
                shift = max(int(th_val[0]) - 1, 0) << 12
        drop = prev - th_val
        if ((drop > 0) & (drop < 2048)).any():
            return None
        wraps = drop >= 2048
        changed = drop != 0
        changed[0] |= not have_th0  # the first time high ever always sets the time
    else:
        wraps = changed = np.zeros(0, bool)
    loop_at_th = int(st[S_LOOP]) + np.cumsum(wraps)
    first_th = int(th_idx[0]) if len(th_idx) else n
    have_th_at = pos >= first_th if not have_th0 else np.ones(n, bool)
    th_at = _ffill_sparse(th_idx, th_val, n, int(st[S_TH]))
    loop_at = _ffill_sparse(th_idx, loop_at_th, n, int(st[S_LOOP]))
    # Time low: sources are TL words and changing TH words (value 0).
    is_tl = typ == 0x6
    chg_idx = th_idx[changed]
    src = is_tl.copy()
    src[chg_idx] = True
    tl_vals = np.where(is_tl, w & 0xFFF, 0)
    tl_at = _ffill(tl_vals, src, int(st[S_TL]))
    # A TL with a time base must not go below the previous time low of the same time high.
    tl_checked = is_tl & have_th_at
    if tl_checked.any():
        prev_tl = np.empty(n, np.int64)
        prev_tl[0] = int(st[S_TL])
        prev_tl[1:] = tl_at[:-1]
        if (tl_vals[tl_checked] < prev_tl[tl_checked]).any():
            return None
    t_at = (loop_at << 24) + (th_at << 12) + tl_at - shift
    # Seek: the first time word whose new time reaches the target is not consumed.
    stop_cand = (tl_checked | np.isin(pos, chg_idx)) & (t_at >= target)
    stopped = 0
    if stop_cand.any():
        cut = int(np.argmax(stop_cand))
        stopped = 2
    else:
        cut = n
    typ_c, w_c = typ[:cut], w[:cut]
    # Rows and vector bases.
    is_y = typ_c == 0x0
    y_at = _ffill(w_c & 0x7FF, is_y, int(st[S_Y]))
    first_y = int(np.argmax(is_y)) if is_y.any() else cut
    is_vb = typ_c == 0x3
    first_vb = int(np.argmax(is_vb)) if is_vb.any() else cut
    is_ax = typ_c == 0x2
    is_v12 = typ_c == 0x4
    is_v8 = typ_c == 0x5
    is_vec = is_v12 | is_v8
    pos_c = pos[:cut]
    have_th_c = have_th_at[:cut]
    have_y = (pos_c >= first_y) | bool(fl & F_HAVE_Y)
    have_vb = (pos_c >= first_vb) | bool(fl & F_HAVE_VBASE)
    if ((is_ax | is_vec) & ~(have_th_c & have_y)).any() or (is_vec & ~have_vb).any():
        return None
    span = np.where(is_v12, 12, np.where(is_v8, 8, 0))
    cum_excl = np.cumsum(span) - span
    base_off = _ffill((w_c & 0x7FF) - cum_excl, is_vb, int(st[S_X]))
    xb_at = base_off + cum_excl
    pol_at = _ffill((w_c >> 11) & 1, is_vb, int(st[S_POL]))
    # Every emitting word as a row of a (words, 12) bit mask: ADDR_X is bit 0 of its own x.
    ev_idx = np.flatnonzero(is_ax | is_vec)
    we = w_c[ev_idx]
    mask = np.where(is_ax[ev_idx], 1, np.where(is_v12[ev_idx], we & 0xFFF, we & 0xFF)).astype(np.uint32)
    base = np.where(is_ax[ev_idx], we & 0x7FF, xb_at[ev_idx])
    pol = np.where(is_ax[ev_idx], (we >> 11) & 1, pol_at[ev_idx])
    bits = ((mask[:, None] >> _BITS12) & 1).astype(bool)
    row, col = np.nonzero(bits)
    x = base[row] + col
    y = y_at[ev_idx][row]
    if not _in_bounds(x, y, width, height):
        return None
    events = _events(x, y, pol[row], t_at[ev_idx][row])
    # Final state after the consumed prefix.
    if cut:
        last = cut - 1
        st[S_TH], st[S_LOOP], st[S_TL] = th_at[last], loop_at[last], tl_at[last]
        st[S_Y], st[S_POL] = y_at[last], pol_at[last]
        st[S_X] = xb_at[last] + span[last]
        fl |= (F_HAVE_TH if first_th < cut else 0) | (F_HAVE_Y if first_y < cut else 0)
        fl |= F_HAVE_VBASE if first_vb < cut else 0
        fl = _final_cont(typ_c, is_cont[:cut], (0xD, 0xE), fl)
        st[S_FLAGS] = fl
    if not have_th0 and first_th <= cut and len(th_idx):
        st[S_SHIFT] = shift  # set by the first time high even when the seek stops on it
    return events, cut, 0, stopped


def _ffill_sparse(idx, vals, n, initial):
    """Forward-fill ``vals`` placed at word indices ``idx`` over ``n`` words."""
    full = np.zeros(n, np.int64)
    is_set = np.zeros(n, bool)
    full[idx] = vals
    is_set[idx] = True
    return _ffill(full, is_set, initial)


def _loop_evt3(buf, st, counts, width, height, flags, target):
    w = buf.view("<u2").tolist()
    th, tl, loop, shift = int(st[S_TH]), int(st[S_TL]), int(st[S_LOOP]), int(st[S_SHIFT])
    y, xb, pol, fl = int(st[S_Y]), int(st[S_X]), int(st[S_POL]), int(st[S_FLAGS])
    lenient = bool(flags & P_LENIENT)
    t = (loop << 24) + (th << 12) + tl - shift
    xs, ys, ps, ts = [], [], [], []
    err = stopped = 0
    i = 0

    def bad(code):
        if lenient:
            counts[code] += 1
            return
        raise _Stop(code)

    def emit(ex, ey, ep):
        if (width and ex >= width) or (height and ey >= height):
            bad(E_OUT_OF_GEOMETRY)
        else:
            xs.append(ex), ys.append(ey), ps.append(ep), ts.append(t)

    try:
        for i, wd in enumerate(w):  # noqa: B007 - i is the stop position after the loop
            k = wd >> 12
            if k == 0x0:
                y = wd & 0x7FF
                fl = (fl | F_HAVE_Y) & ~F_CONT_OK
            elif k == 0x2:
                if not (fl & F_HAVE_TH and fl & F_HAVE_Y):
                    bad(E_NO_ADDR_Y if fl & F_HAVE_TH else E_NO_TIME_HIGH)
                    continue
                fl &= ~F_CONT_OK
                emit(wd & 0x7FF, y, (wd >> 11) & 1)
            elif k == 0x3:
                xb, pol = wd & 0x7FF, (wd >> 11) & 1
                fl = (fl | F_HAVE_VBASE) & ~F_CONT_OK
            elif k in (0x4, 0x5):
                span = 12 if k == 0x4 else 8
                m = wd & (0xFFF if span == 12 else 0xFF)
                if not (fl & F_HAVE_TH and fl & F_HAVE_Y and fl & F_HAVE_VBASE):
                    bad(E_NO_TIME_HIGH if not fl & F_HAVE_TH else E_NO_ADDR_Y if not fl & F_HAVE_Y else E_NO_VECT_BASE)
                    continue
                fl &= ~F_CONT_OK
                for b in range(span):
                    if m >> b & 1:
                        emit(xb + b, y, pol)
                xb += span
            elif k == 0x6:
                ntl = wd & 0xFFF
                if fl & F_HAVE_TH:
                    if ntl < tl:
                        bad(E_TIME_BACKWARDS)
                        continue
                    nt = t + (ntl - tl)
                    if nt >= target:
                        stopped = 2
                        break
                    t = nt
                tl = ntl
                fl &= ~F_CONT_OK
            elif k == 0x8:
                nth, nloop = wd & 0xFFF, loop
                if fl & F_HAVE_TH:
                    if nth < th:
                        if th - nth >= 2048:
                            nloop += 1
                        else:
                            bad(E_TIME_BACKWARDS)
                            continue
                    if nth == th and nloop == loop:
                        fl &= ~F_CONT_OK
                        continue
                elif flags & P_TIME_SHIFT:
                    shift = max(nth - 1, 0) << 12
                nt = (nloop << 24) + (nth << 12) - shift
                if nt >= target:
                    stopped = 2
                    break
                th, loop, tl, t = nth, nloop, 0, nt
                fl = (fl | F_HAVE_TH) & ~F_CONT_OK
            elif k in (0x7, 0xF):
                if not fl & F_CONT_OK:
                    bad(E_ORPHAN_CONTINUED)
            elif k == 0xA:
                fl &= ~F_CONT_OK
            elif k in (0xD, 0xE):
                fl |= F_CONT_OK
            else:
                bad(E_UNKNOWN_TYPE)
        else:
            i = len(w)
    except _Stop as e:
        err = e.code
    st[S_TH], st[S_TL], st[S_LOOP], st[S_SHIFT] = th, tl, loop, shift
    st[S_Y], st[S_X], st[S_POL], st[S_FLAGS] = y, xb, pol, fl
    return _events(xs, ys, ps, ts), i, err, stopped


# ---------------------------------------------------------------------------------------------- EVT 2.0 / 2.1


def _words64(buf, flags):
    """Logical 64-bit EVT2.1 words; legacy (IMX636) streams send the high half first."""
    halves = buf.view("<u4").astype(np.uint64).reshape(-1, 2)
    if flags & P_LEGACY:
        return (halves[:, 0] << np.uint64(32)) | halves[:, 1]
    return (halves[:, 1] << np.uint64(32)) | halves[:, 0]


def _fast_evt2x(kind, buf, st, width, height, flags, target):
    if kind == EVT2:
        hi = buf.view("<u4").astype(np.int64)
        lo = None
        known = (0x0, 0x1, 0x8, 0xA, 0xD, 0xE, 0xF)
        leaders = (0xD, 0xE)
    else:
        w64 = _words64(buf, flags)
        hi = (w64 >> np.uint64(32)).astype(np.int64)
        lo = (w64 & np.uint64(0xFFFFFFFF)).astype(np.uint64)
        known = (0x0, 0x1, 0x8, 0xA, 0xE, 0xF)
        leaders = (0xE,)
    typ = hi >> 28
    if not np.isin(typ, known).all():
        return None
    fl = int(st[S_FLAGS])
    is_cont = typ == 0xF
    if not _continued_ok(typ, is_cont, leaders, fl & F_CONT_OK):
        return None
    n = len(hi)
    is_th = typ == 0x8
    th_idx = np.flatnonzero(is_th)
    th_val = hi[th_idx] & 0x0FFFFFFF
    have_th0 = bool(fl & F_HAVE_TH)
    shift = int(st[S_SHIFT])
    if len(th_idx):
        prev = np.concatenate(([int(st[S_TH]) if have_th0 else th_val[0]], th_val[:-1]))
        if not have_th0 and flags & P_TIME_SHIFT:
            shift = int(th_val[0]) << 6
        drop = prev - th_val
        if ((drop > 0) & (drop <= (1 << 27))).any():
            return None
        loops = int(st[S_LOOP]) + np.cumsum(drop > (1 << 27))
        th_base = (loops << 34) + (th_val << 6) - shift
        stop_th = th_base + 63 >= target
    else:
        loops = th_base = np.zeros(0, np.int64)
        stop_th = np.zeros(0, bool)
    stopped = 0
    cut = n
    if stop_th.any():
        cut = int(th_idx[int(np.argmax(stop_th))])
        stopped = 2
    first_th = int(th_idx[0]) if len(th_idx) else n
    is_ev = (typ[:cut] == 0x0) | (typ[:cut] == 0x1)
    ev_idx = np.flatnonzero(is_ev)
    if not have_th0 and len(ev_idx) and int(ev_idx[0]) < first_th:
        return None
    init_base = (int(st[S_LOOP]) << 34) + (int(st[S_TH]) << 6) - int(st[S_SHIFT])
    base_at = _ffill_sparse(th_idx, th_base, n, init_base)[:cut]
    he = hi[ev_idx]
    t = base_at[ev_idx] + ((he >> 22) & 63)
    # The 6 low time bits must not go back inside a time-high period (nor from the previous block).
    if len(t) and ((fl & F_HAVE_LAST and int(t[0]) < int(st[S_LAST])) or (t[1:] < t[:-1]).any()):
        return None
    word_t = t
    p = he >> 28
    if kind == EVT2:
        x, y = (he >> 11) & 0x7FF, he & 0x7FF
    else:
        bits = ((lo[ev_idx, None] >> _BITS32) & np.uint64(1)).astype(bool)
        row, col = np.nonzero(bits)
        x = ((he >> 11) & 0x7FF)[row] + col
        y, p, t = (he & 0x7FF)[row], p[row], t[row]
    if not _in_bounds(x, y, width, height):
        return None
    events = _events(x, y, p, t)
    if cut:
        k_th = int(np.searchsorted(th_idx, cut))  # time highs consumed
        if k_th:
            st[S_TH], st[S_LOOP] = th_val[k_th - 1], loops[k_th - 1]
            fl |= F_HAVE_TH
        if len(word_t):
            st[S_LAST] = word_t[-1]
            fl |= F_HAVE_LAST
        st[S_FLAGS] = _final_cont(typ[:cut], is_cont[:cut], leaders, fl)
    if not have_th0 and first_th <= cut and len(th_idx):
        st[S_SHIFT] = shift  # set by the first time high even when the seek stops on it
    return events, cut, 0, stopped


def _loop_evt2x(kind, buf, st, counts, width, height, flags, target):
    if kind == EVT2:
        words = [(int(v), 0) for v in buf.view("<u4").tolist()]
        leaders = (0xD, 0xE)
    else:
        words = [(int(v) >> 32, int(v) & 0xFFFFFFFF) for v in _words64(buf, flags).tolist()]
        leaders = (0xE,)
    th, loop, shift, fl = int(st[S_TH]), int(st[S_LOOP]), int(st[S_SHIFT]), int(st[S_FLAGS])
    last = int(st[S_LAST])
    base = (loop << 34) + (th << 6) - shift
    lenient = bool(flags & P_LENIENT)
    xs, ys, ps, ts = [], [], [], []
    err = stopped = 0
    i = 0

    def bad(code):
        if lenient:
            counts[code] += 1
            return
        raise _Stop(code)

    try:
        for i, (hi, lo) in enumerate(words):  # noqa: B007
            k = hi >> 28
            if k in (0x0, 0x1):
                if not fl & F_HAVE_TH:
                    bad(E_NO_TIME_HIGH)
                    continue
                t = base + ((hi >> 22) & 63)
                if fl & F_HAVE_LAST and t < last:
                    bad(E_TIME_BACKWARDS)
                    continue
                last = t
                fl = (fl | F_HAVE_LAST) & ~F_CONT_OK
                x, y = (hi >> 11) & 0x7FF, hi & 0x7FF
                cols = [0] if kind == EVT2 else [b for b in range(32) if lo >> b & 1]
                for b in cols:
                    if (width and x + b >= width) or (height and y >= height):
                        bad(E_OUT_OF_GEOMETRY)
                    else:
                        xs.append(x + b), ys.append(y), ps.append(k), ts.append(t)
            elif k == 0x8:
                nth, nloop = hi & 0x0FFFFFFF, loop
                if fl & F_HAVE_TH:
                    if nth < th:
                        if th - nth > (1 << 27):
                            nloop += 1
                        else:
                            bad(E_TIME_BACKWARDS)
                            continue
                elif flags & P_TIME_SHIFT:
                    shift = nth << 6
                nb = (nloop << 34) + (nth << 6) - shift
                if nb + 63 >= target:
                    stopped = 2
                    break
                th, loop, base = nth, nloop, nb
                fl = (fl | F_HAVE_TH) & ~F_CONT_OK
            elif k == 0xA:
                fl &= ~F_CONT_OK
            elif k in leaders:
                fl |= F_CONT_OK
            elif k == 0xF:
                if not fl & F_CONT_OK:
                    bad(E_ORPHAN_CONTINUED)
            else:
                bad(E_UNKNOWN_TYPE)
        else:
            i = len(words)
    except _Stop as e:
        err = e.code
    st[S_TH], st[S_LOOP], st[S_SHIFT], st[S_FLAGS], st[S_LAST] = th, loop, shift, fl, last
    return _events(xs, ys, ps, ts), i, err, stopped


# ---------------------------------------------------------------------------------------------- DAT


def _dat_fields(v, flags):
    """(x, y, p) of DAT v1 or v2 packed words (ints or int64 arrays); p is clipped to 0/1 as faery does."""
    if flags & P_DAT_V1:
        return v & 0x1FF, (v >> 9) & 0xFF, (v >> 17) & 1
    return v & 0x3FFF, (v >> 14) & 0x3FFF, (v >> 28 != 0) * 1


def _fast_dat(buf, st, width, height, flags, target):
    rec = buf.view("<u4").astype(np.int64).reshape(-1, 2)
    ts, v = rec[:, 0], rec[:, 1]
    fl = int(st[S_FLAGS])
    prev = np.empty(len(ts), np.int64)
    if len(ts):
        prev[0] = int(st[S_PREV]) if fl & F_HAVE_PREV else ts[0]
        prev[1:] = ts[:-1]
    drop = prev - ts
    if ((drop > 0) & (drop <= (1 << 31))).any():
        return None
    loops = int(st[S_LOOP]) + np.cumsum(drop > (1 << 31))
    t = (loops << 32) + ts
    stopped = 0
    cut = len(t)
    reach = t >= target
    if reach.any():
        cut = int(np.argmax(reach))
        stopped = 2
    x, y, p = _dat_fields(v[:cut], flags)
    if not _in_bounds(x, y, width, height):
        return None
    if cut:
        st[S_LOOP], st[S_PREV] = loops[cut - 1], ts[cut - 1]
        st[S_FLAGS] = fl | F_HAVE_PREV
    return _events(x, y, p, t[:cut]), cut, 0, stopped


def _loop_dat(buf, st, counts, width, height, flags, target):
    rec = buf.view("<u4").reshape(-1, 2).tolist()
    loop, prev, fl = int(st[S_LOOP]), int(st[S_PREV]), int(st[S_FLAGS])
    lenient = bool(flags & P_LENIENT)
    xs, ys, ps, tt = [], [], [], []
    err = stopped = 0
    i = 0
    for i, (ts, v) in enumerate(rec):  # noqa: B007
        nloop = loop
        if fl & F_HAVE_PREV and ts < prev:
            if prev - ts > (1 << 31):
                nloop += 1
            elif lenient:
                counts[E_TIME_BACKWARDS] += 1
                continue
            else:
                err = E_TIME_BACKWARDS
                break
        t = (nloop << 32) + ts
        if t >= target:
            stopped = 2
            break
        x, y, p = _dat_fields(v, flags)
        loop, prev, fl = nloop, ts, fl | F_HAVE_PREV
        if (width and x >= width) or (height and y >= height):
            if lenient:
                counts[E_OUT_OF_GEOMETRY] += 1
                continue
            err = E_OUT_OF_GEOMETRY
            break
        xs.append(x), ys.append(y), ps.append(p), tt.append(t)
    else:
        i = len(rec)
    st[S_LOOP], st[S_PREV], st[S_FLAGS] = loop, prev, fl
    return _events(xs, ys, ps, tt), i, err, stopped


_FAST = {
    EVT2: lambda *a: _fast_evt2x(EVT2, *a),
    EVT21: lambda *a: _fast_evt2x(EVT21, *a),
    EVT3: _fast_evt3,
    DAT: _fast_dat,
}
_LOOP = {
    EVT2: lambda *a: _loop_evt2x(EVT2, *a),
    EVT21: lambda *a: _loop_evt2x(EVT21, *a),
    EVT3: _loop_evt3,
    DAT: _loop_dat,
}
