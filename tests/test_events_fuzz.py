"""Fuzzing every Prophesee decoder with hypothesis: no crash, no hang, bounded output, C == numpy.

Per decoder (EVT 2.0, EVT 2.1, EVT 3.0, DAT) 10,000 inputs run in all: 4,800 examples of the
decode step in memory, each run strict and lenient (9,600 inputs; C kernel and numpy reference on
the same bytes, state and options, compared field by field), and 400 whole files through
``open_events``, strict and lenient. The whole file takes well under a minute on two cores.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgesnn.errors import EventFileError
from edgesnn.events import _npdecoders, _wordstream
from edgesnn.events._dtype import EVENT_DTYPE
from edgesnn.events._kinds import (
    DAT,
    EVT2,
    EVT3,
    EVT21,
    MAX_EVENTS_PER_WORD,
    N_CODES,
    N_STATE,
    P_DAT_V1,
    P_LENIENT,
    WORD_SIZE,
)
from edgesnn.events.io import open_events

KINDS = [pytest.param(k, id=n) for k, n in ((EVT2, "evt2"), (EVT21, "evt21"), (EVT3, "evt3"), (DAT, "dat"))]
IN_MEMORY = settings(
    max_examples=4_800, deadline=timedelta(seconds=2), database=None, suppress_health_check=list(HealthCheck)
)
AS_FILES = settings(
    max_examples=400, deadline=timedelta(seconds=2), database=None, suppress_health_check=list(HealthCheck)
)
NO_TARGET = (1 << 63) - 1


_TYPES = {
    EVT2: np.array([0x0, 0x1, 0x8, 0xA, 0xE, 0xF], np.uint8),
    EVT21: np.array([0x0, 0x1, 0x8, 0xA, 0xE, 0xF], np.uint8),
    EVT3: np.array([0x0, 0x2, 0x3, 0x4, 0x5, 0x6, 0x8, 0xE, 0xF, 0x7, 0xA], np.uint8),
}


def _typed(kind, raw: bytes, seed: int) -> bytes:
    """Give most words of ``raw`` a valid type nibble, so decoding gets past the first word."""
    ws = WORD_SIZE[kind]
    buf = np.frombuffer(raw, np.uint8)[: len(raw) // ws * ws].copy().reshape(-1, ws)
    if kind == DAT or not len(buf):
        if kind == DAT and len(buf) and seed & 1:  # mostly rising timestamps
            t = np.cumsum(buf[:, 0].astype(np.uint32) << (seed >> 1) % 16).astype("<u4")
            buf[:, :4] = t.view(np.uint8).reshape(-1, 4)
        return buf.tobytes()
    rng = np.random.default_rng(seed)
    valid = rng.random(len(buf)) < 0.85
    types = rng.choice(_TYPES[kind], len(buf))
    top = ws - 1  # the type nibble sits in the word's last byte (EVT 2.1: of the high half)
    buf[valid, top] = (buf[valid, top] & 0x0F) | (types[valid] << 4)
    return buf.tobytes()


def words(kind):
    """Word streams mixing raw bytes with words of valid types."""
    return st.builds(_typed, st.just(kind), st.binary(max_size=48 * WORD_SIZE[kind]), st.integers(0, 1 << 30))


def options(kind, seed: int):
    """Flags, geometry, seek target and starting state (values a decoder can reach), from one seed.

    One drawn integer instead of a dozen keeps hypothesis's own cost per example low.
    """
    rng = np.random.default_rng(seed)
    flags = int(rng.integers(0, 16)) & (~0 if kind == DAT else ~P_DAT_V1)
    geometry = (0, 0) if rng.random() < 0.4 else (int(rng.integers(1, 2049)), int(rng.integers(1, 2049)))
    target = NO_TARGET if rng.random() < 0.6 else int(rng.integers(0, 1 << 26))
    state = None
    if rng.random() < 0.3:  # th, tl, loop, y, x base, polarity, flags, shift, previous DAT time
        highs = (4096, 4096, 4, 2048, 4096, 2, 32, 1, 1 << 32)
        state = [int(rng.integers(0, h)) for h in highs]
    return flags, geometry, target, state


def run_both(kind, data, flags, geometry, target, state0):
    st_np = np.zeros(N_STATE, np.int64)
    if state0 is not None:
        st_np[:9] = state0
    st_c, c_np, c_c = st_np.copy(), np.zeros(N_CODES, np.int64), np.zeros(N_CODES, np.int64)
    events, used, err, stopped = _npdecoders.decode(kind, data, st_np, c_np, *geometry, flags, target)
    n_words = len(data) // WORD_SIZE[kind]
    assert len(events) <= n_words * MAX_EVENTS_PER_WORD[kind]
    assert 0 <= used <= n_words
    assert err == 0 or not flags & P_LENIENT
    if _wordstream.NATIVE:
        out = np.empty(n_words * MAX_EVENTS_PER_WORD[kind] + 64, EVENT_DTYPE)
        n, used_c, err_c, stopped_c = _wordstream._C.decode(kind, data, 0, out, 0, st_c, c_c, *geometry, flags, target)
        np.testing.assert_array_equal(out[:n], events)
        assert (used_c, err_c, stopped_c) == (used, err, stopped)
        np.testing.assert_array_equal(st_c, st_np)
        np.testing.assert_array_equal(c_c, c_np)


@pytest.mark.parametrize("kind", KINDS)
def test_decode_step_never_crashes_and_c_matches_numpy(kind):
    @IN_MEMORY
    @given(data=words(kind), seed=st.integers(0, (1 << 32) - 1))
    def check(data, seed):
        flags, geometry, target, state = options(kind, seed)
        # Each example is two decoder inputs: the same bytes strict and lenient.
        run_both(kind, data, flags & ~P_LENIENT, geometry, target, state)
        run_both(kind, data, flags | P_LENIENT, geometry, target, state)

    check()


HEADERS = {
    EVT2: b"% evt 2.0\n% format EVT2;width=640;height=480\n% end\n",
    EVT21: b"% evt 2.1\n% format EVT21;width=320;height=320\n% end\n",
    EVT3: b"% evt 3.0\n% format EVT3;width=1280;height=720\n% end\n",
    DAT: b"% Version 2\n% Width 1280\n% Height 720\n\x0c\x08",
}


@pytest.mark.parametrize("kind", KINDS)
def test_damaged_files_raise_event_file_error_or_are_skipped(kind, tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")

    @AS_FILES
    @given(data=words(kind), tail=st.binary(max_size=WORD_SIZE[kind] - 1), chunk=st.integers(1, 40))
    def check(data, tail, chunk):
        path = folder / ("f.dat" if kind == DAT else "f.raw")
        path.write_bytes(HEADERS[kind] + data + tail)
        bound = len(data) // WORD_SIZE[kind] * MAX_EVENTS_PER_WORD[kind]
        try:
            with open_events(path, chunk_events=chunk) as r:
                strict = r.read_all()
            assert len(strict) <= bound
        except EventFileError as e:
            assert str(path) in str(e)
        with open_events(path, lenient=True, chunk_events=chunk) as r:
            chunks = list(r.chunks())
        assert all(len(c) <= chunk for c in chunks)
        assert sum(len(c) for c in chunks) <= bound
        assert (len(tail) > 0) == ("truncated_word" in r.skipped)

    check()
