"""Constants shared by the C decoders (``_evtkernels.c``) and their numpy twins; keep both in step."""

from __future__ import annotations

# Decoder kinds and their word sizes in bytes.
EVT2, EVT21, EVT3, DAT = 0, 1, 2, 3
WORD_SIZE = {EVT2: 4, EVT21: 8, EVT3: 2, DAT: 8}
#: Most events one word can emit (sizes the room the C kernel needs left in its output).
MAX_EVENTS_PER_WORD = {EVT2: 1, EVT21: 32, EVT3: 12, DAT: 1}

# Slots of the int64 decoder state array.
S_TH, S_TL, S_LOOP, S_Y, S_X, S_POL, S_FLAGS, S_SHIFT, S_PREV, S_LAST, S_XEND, S_YEND = range(12)
N_STATE = 16

# State flags.
F_HAVE_TH, F_HAVE_Y, F_HAVE_VBASE, F_CONT_OK, F_HAVE_PREV, F_HAVE_LAST = 1, 2, 4, 8, 16, 32

# Call flags.
P_LENIENT, P_LEGACY, P_TIME_SHIFT, P_DAT_V1 = 1, 2, 4, 8
#: Keep S_XEND / S_YEND (1 + the largest x / y written) for readers that infer the geometry.
P_EXTENT = 32

# Error codes (index into the counts array).
E_UNKNOWN_TYPE = 1
E_ORPHAN_CONTINUED = 2
E_NO_ADDR_Y = 3
E_NO_VECT_BASE = 4
E_NO_TIME_HIGH = 5
E_TIME_BACKWARDS = 6
E_OUT_OF_GEOMETRY = 7
E_TRUNCATED = 8
N_CODES = 10

#: Names used in ``reader.skipped`` and in error messages.
ERROR_NAMES = {
    E_UNKNOWN_TYPE: "unknown_word_type",
    E_ORPHAN_CONTINUED: "continued_without_leader",
    E_NO_ADDR_Y: "event_before_addr_y",
    E_NO_VECT_BASE: "vector_before_vect_base_x",
    E_NO_TIME_HIGH: "event_before_time_high",
    E_TIME_BACKWARDS: "time_backwards",
    E_OUT_OF_GEOMETRY: "outside_geometry",
    E_TRUNCATED: "truncated_word",
}

ERROR_TEXT = {
    E_UNKNOWN_TYPE: "word of unknown type",
    E_ORPHAN_CONTINUED: "CONTINUED word without a leading word",
    E_NO_ADDR_Y: "event before any EVT_ADDR_Y word",
    E_NO_VECT_BASE: "vector word before any VECT_BASE_X word",
    E_NO_TIME_HIGH: "event before any time-high word",
    E_TIME_BACKWARDS: "timestamp goes backwards (not a counter wrap)",
    E_OUT_OF_GEOMETRY: "event coordinate outside the sensor geometry",
    E_TRUNCATED: "file ends inside a word (truncated)",
}
