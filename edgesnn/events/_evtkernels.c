/*
 * Native decoders for Prophesee EVT 2.0, EVT 2.1, EVT 3.0 and DAT payloads.
 *
 * One entry point, decode(), turns a block of raw words into packed 13-byte
 * EVENT_DTYPE records (x u16, y u16, p i8, t i64, little-endian, unaligned),
 * written straight into a numpy array's buffer. The decoder state (time high,
 * time low, loop count, current y, vector base, polarity, flags) lives in a
 * caller-owned int64 array so that a file decodes block by block with bounded
 * memory and a block boundary never changes the result. Layout of that array
 * and the error codes are mirrored in edgesnn/events/_kinds.py; the numpy
 * reference decoders in edgesnn/events/_npdecoders.py follow the same rules
 * word for word and are the oracle these kernels are tested against.
 *
 * decode() stops early, without consuming the word, when
 *  - the output has no room for the most events one word can emit, or
 *  - a time word would move the current time to >= target (seek mode), or
 *  - a word is invalid and the lenient flag is clear (the caller raises,
 *    naming the word index).
 * In lenient mode an invalid word (or an event outside the geometry) is
 * skipped and counted in counts[error code].
 *
 * The records are written with two unaligned 8-byte stores, which needs a
 * little-endian host; on a big-endian one this file does not compile and the
 * optional extension is skipped (setup.py), leaving the numpy decoders.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && (__BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__)
#error "the event decoders write little-endian records; the numpy decoders cover big-endian hosts"
#endif

/* Formats. */
enum { K_EVT2 = 0, K_EVT21 = 1, K_EVT3 = 2, K_DAT = 3 };

/* State slots (int64). */
enum {
    S_TH = 0,     /* current time high (raw field value) */
    S_TL = 1,     /* EVT3 time low */
    S_LOOP = 2,   /* number of time-base wraps seen */
    S_Y = 3,      /* EVT3 current y */
    S_X = 4,      /* EVT3 vector base x */
    S_POL = 5,    /* EVT3 vector polarity */
    S_FLAGS = 6,  /* F_* below */
    S_SHIFT = 7,  /* subtracted from every timestamp (OpenEB time shift) */
    S_PREV = 8,   /* DAT: previous 32-bit timestamp */
    S_LAST = 9,   /* EVT 2.0/2.1: time of the last CD word, which the next one must not precede */
    S_XEND = 10,  /* with P_EXTENT: 1 + the largest x written so far (0: none), for geometry inference */
    S_YEND = 11,  /* 1 + the largest y written so far */
    S_NSLOTS = 16
};

enum { F_HAVE_TH = 1, F_HAVE_Y = 2, F_HAVE_VBASE = 4, F_CONT_OK = 8, F_HAVE_PREV = 16, F_HAVE_LAST = 32 };

/* Call flags. */
/* P_EXTENT: keep S_XEND/S_YEND (the reader infers the geometry from them); off, the fast runs skip
 * the two maxima, which cost a fifth of the DAT loop. */
enum { P_LENIENT = 1, P_LEGACY = 2, P_TIME_SHIFT = 4, P_DAT_V1 = 8, P_EXTENT = 32 };

/* Error codes, index into counts. */
enum {
    E_NONE = 0,
    E_UNKNOWN_TYPE = 1,
    E_ORPHAN_CONTINUED = 2,
    E_NO_ADDR_Y = 3,
    E_NO_VECT_BASE = 4,
    E_NO_TIME_HIGH = 5,
    E_TIME_BACKWARDS = 6,
    E_OUT_OF_GEOMETRY = 7,
    E_NCODES = 10
};

#define REC 13

#if defined(__GNUC__)
#define ALWAYS_INLINE __attribute__((always_inline)) inline
#define CTZ32(v) ((unsigned)__builtin_ctz(v))
#define UNLIKELY(c) __builtin_expect(!!(c), 0)
#else
#define ALWAYS_INLINE inline
#define UNLIKELY(c) (c)
static unsigned CTZ32(uint32_t v) {
    unsigned n = 0;
    while (!(v & 1u)) { v >>= 1; n++; }
    return n;
}
#endif

static ALWAYS_INLINE void put_event(uint8_t *o, uint32_t x, uint32_t y, uint32_t p, int64_t t) {
    /* Bytes 5..7 of the first store are overwritten by the timestamp store. */
    uint64_t a = (uint64_t)x | ((uint64_t)y << 16) | ((uint64_t)p << 32);
    memcpy(o, &a, 8);
    memcpy(o + 5, &t, 8);
}

typedef struct {
    const uint8_t *data;
    Py_ssize_t n_words;
    Py_ssize_t pos;       /* next word to decode */
    uint8_t *out;         /* NULL in dry mode */
    Py_ssize_t n_out;     /* events written (or counted in dry mode) */
    Py_ssize_t cap;
    int64_t *st;
    int64_t *counts;
    uint32_t width, height; /* 0: unknown, no bounds check beyond the field width */
    int flags;
    int64_t target;
    int err;
    int stopped;
} Ctx;

/* Skip (lenient) or stop (strict) on an invalid word. Returns 1 to stop. */
static ALWAYS_INLINE int bad(Ctx *c, int code) {
    if (c->flags & P_LENIENT) {
        c->counts[code]++;
        return 0;
    }
    c->err = code;
    return 1;
}

#define BAD_WORD(code)                  \
    do {                                \
        if (bad(c, (code))) goto stop;  \
        goto next;                      \
    } while (0)

/* Write one record and widen the extent (xend, yend: 1 + the largest coordinates written). */
#define PUT(x_, y_, p_, t_)                                            \
    do {                                                               \
        uint32_t px_ = (x_), py_ = (y_);                               \
        put_event(out + (size_t)n * REC, px_, py_, (p_), (t_));        \
        if (TRACK) {                                                   \
            xend = px_ >= xend ? px_ + 1 : xend;                       \
            yend = py_ >= yend ? py_ + 1 : yend;                       \
        }                                                              \
    } while (0)

/* Emit one event after the bounds check; DRY only counts. */
#define EMIT(x_, y_, p_, t_)                                                              \
    do {                                                                                   \
        uint32_t ex_ = (x_), ey_ = (y_);                                                   \
        if (UNLIKELY((w_ && ex_ >= w_) || (h_ && ey_ >= h_))) {                           \
            if (bad(c, E_OUT_OF_GEOMETRY)) goto stop;                                      \
        } else {                                                                           \
            if (!DRY) PUT(ex_, ey_, (p_), (t_));                                           \
            n++;                                                                           \
        }                                                                                  \
    } while (0)

/* The coordinate limit of a fast run: the geometry (0: none), and with the extent tracked also the
 * extent so far, so that any event that would widen it goes through the general path (PUT). */
static ALWAYS_INLINE uint32_t run_bound(uint32_t geometry, uint32_t extent, const int TRACK) {
    const uint32_t g = geometry ? geometry : UINT32_MAX;
    return TRACK && extent < g ? extent : g;
}

/* ---------------------------------------------------------------- EVT 3.0 */

static ALWAYS_INLINE void evt3_run(Ctx *c, const int DRY, const int TRACK) {
    const uint8_t *data = c->data;
    uint8_t *out = c->out;
    int64_t *st = c->st;
    const uint32_t w_ = c->width, h_ = c->height;
    const Py_ssize_t nw = c->n_words, lim = c->cap - 12;
    Py_ssize_t i = c->pos, n = c->n_out;
    uint32_t xend = (uint32_t)st[S_XEND], yend = (uint32_t)st[S_YEND];
    int64_t th = st[S_TH], tl = st[S_TL], loop = st[S_LOOP], shift = st[S_SHIFT];
    uint32_t y = (uint32_t)st[S_Y], xb = (uint32_t)st[S_X], pol = (uint32_t)st[S_POL];
    int64_t fl = st[S_FLAGS];
    int64_t t = (loop << 24) + (th << 12) + tl - shift;
    const int64_t target = c->target;
    /* Events need a time base, a row and (vectors) a base; one mask tests all three. */
    const int64_t need_ev = F_HAVE_TH | F_HAVE_Y, need_vec = F_HAVE_TH | F_HAVE_Y | F_HAVE_VBASE;

    for (; i < nw; i++) {
        uint16_t wd;
        memcpy(&wd, data + 2 * i, 2);
        if (UNLIKELY(!DRY && n > lim)) {
            c->stopped = 1;
            break;
        }
        switch (wd >> 12) {
        case 0x0: /* EVT_ADDR_Y */
            y = wd & 0x7FFu;
            fl = (fl | F_HAVE_Y) & ~(int64_t)F_CONT_OK;
            break;
        case 0x2: /* EVT_ADDR_X */
            if (UNLIKELY((fl & need_ev) != need_ev)) {
                if (bad(c, (fl & F_HAVE_TH) ? E_NO_ADDR_Y : E_NO_TIME_HIGH)) goto stop;
                break;
            }
            fl &= ~(int64_t)F_CONT_OK;
            EMIT(wd & 0x7FFu, y, (wd >> 11) & 1u, t);
            break;
        case 0x3: /* VECT_BASE_X */
            xb = wd & 0x7FFu;
            pol = (wd >> 11) & 1u;
            fl = (fl | F_HAVE_VBASE) & ~(int64_t)F_CONT_OK;
            break;
        case 0x4:   /* VECT_12 */
        case 0x5: { /* VECT_8 */
            const uint32_t span = (wd >> 12) == 0x4 ? 12u : 8u;
            uint32_t m = wd & (span == 12u ? 0xFFFu : 0xFFu);
            if (UNLIKELY((fl & need_vec) != need_vec)) {
                int code = !(fl & F_HAVE_TH) ? E_NO_TIME_HIGH : !(fl & F_HAVE_Y) ? E_NO_ADDR_Y : E_NO_VECT_BASE;
                if (bad(c, code)) goto stop;
                break;
            }
            fl &= ~(int64_t)F_CONT_OK;
            if ((w_ == 0 || xb + span <= w_) && (h_ == 0 || y < h_)) {
                while (m) {
                    uint32_t b = CTZ32(m);
                    if (!DRY) PUT(xb + b, y, pol, t);
                    n++;
                    m &= m - 1;
                }
            } else {
                while (m) {
                    uint32_t b = CTZ32(m);
                    EMIT(xb + b, y, pol, t);
                    m &= m - 1;
                }
            }
            xb += span;
            break;
        }
        case 0x6: { /* EVT_TIME_LOW */
            int64_t ntl = wd & 0xFFFu;
            if (fl & F_HAVE_TH) {
                if (UNLIKELY(ntl < tl)) {
                    if (bad(c, E_TIME_BACKWARDS)) goto stop;
                    break;
                }
                int64_t nt = t + (ntl - tl);
                if (UNLIKELY(nt >= target)) {
                    c->stopped = 2;
                    goto stop;
                }
                t = nt;
            }
            tl = ntl;
            fl &= ~(int64_t)F_CONT_OK;
            break;
        }
        case 0x8: { /* EVT_TIME_HIGH */
            int64_t nth = wd & 0xFFFu, nloop = loop;
            if (fl & F_HAVE_TH) {
                if (nth < th) {
                    /* A wrap of the 24-bit base shows as a drop of at least half the range (OpenEB's rule). */
                    if (th - nth >= 2048) {
                        nloop++;
                    } else {
                        if (bad(c, E_TIME_BACKWARDS)) goto stop;
                        break;
                    }
                }
                if (nth == th && nloop == loop) { /* repeated time high keeps the time low */
                    fl &= ~(int64_t)F_CONT_OK;
                    break;
                }
            } else if (c->flags & P_TIME_SHIFT) {
                shift = (nth > 0 ? nth - 1 : 0) << 12;
            }
            int64_t nt = (nloop << 24) + (nth << 12) - shift;
            if (UNLIKELY(nt >= target)) {
                c->stopped = 2;
                goto stop;
            }
            th = nth;
            loop = nloop;
            tl = 0;
            t = nt;
            fl = (fl | F_HAVE_TH) & ~(int64_t)F_CONT_OK;
            break;
        }
        case 0x7: /* CONTINUED_4 */
        case 0xF: /* CONTINUED_12 */
            if (UNLIKELY(!(fl & F_CONT_OK))) {
                if (bad(c, E_ORPHAN_CONTINUED)) goto stop;
            }
            break;
        case 0xA: /* EXT_TRIGGER: not a CD event */
            fl &= ~(int64_t)F_CONT_OK;
            break;
        case 0xD: /* IMU */
        case 0xE: /* OTHERS: may be followed by CONTINUED words */
            fl |= F_CONT_OK;
            break;
        default: /* 0x1, 0x9, 0xB, 0xC */
            if (bad(c, E_UNKNOWN_TYPE)) goto stop;
            break;
        }
    }
    goto done;
stop:
    /* Strict error, or seek target reached: word i is not consumed. */
done:
    c->pos = i;
    c->n_out = n;
    st[S_XEND] = xend;
    st[S_YEND] = yend;
    st[S_TH] = th;
    st[S_TL] = tl;
    st[S_LOOP] = loop;
    st[S_SHIFT] = shift;
    st[S_Y] = y;
    st[S_X] = xb;
    st[S_POL] = pol;
    st[S_FLAGS] = fl;
}

/* ---------------------------------------------------------------- EVT 2.0 / 2.1 */

static ALWAYS_INLINE int evt2_time_high(Ctx *c, int64_t nth, int64_t *th, int64_t *loop, int64_t *shift, int64_t *fl,
                                        int64_t *base) {
    /* Returns 0 to go on, 1 to stop (strict error or seek target); skipped words return 0 without change. */
    int64_t nloop = *loop;
    if (*fl & F_HAVE_TH) {
        if (nth < *th) {
            if (*th - nth > ((int64_t)1 << 27)) {
                nloop++;
            } else {
                return bad(c, E_TIME_BACKWARDS);
            }
        }
    } else if (c->flags & P_TIME_SHIFT) {
        *shift = nth << 6;
    }
    int64_t nb = (nloop << 34) + (nth << 6) - *shift;
    /* Events of this period reach nb + 63: stop before it if the target may lie inside. */
    if (UNLIKELY(nb + 63 >= c->target)) {
        c->stopped = 2;
        return 1;
    }
    *th = nth;
    *loop = nloop;
    *base = nb;
    *fl = (*fl | F_HAVE_TH) & ~(int64_t)F_CONT_OK;
    return 0;
}

static ALWAYS_INLINE void evt2_run(Ctx *c, const int DRY, const int TRACK) {
    const uint8_t *data = c->data;
    uint8_t *out = c->out;
    int64_t *st = c->st;
    const uint32_t w_ = c->width, h_ = c->height;
    const Py_ssize_t nw = c->n_words, lim = c->cap - 1;
    Py_ssize_t i = c->pos, n = c->n_out;
    uint32_t xend = (uint32_t)st[S_XEND], yend = (uint32_t)st[S_YEND];
    int64_t th = st[S_TH], loop = st[S_LOOP], shift = st[S_SHIFT], fl = st[S_FLAGS], last = st[S_LAST];
    int64_t base = (loop << 34) + (th << 6) - shift;

    for (; i < nw; i++) {
        uint32_t wd;
        memcpy(&wd, data + 4 * i, 4);
        if (UNLIKELY(!DRY && n > lim)) {
            c->stopped = 1;
            break;
        }
        switch (wd >> 28) {
        case 0x0:
        case 0x1: {
            if (UNLIKELY(!(fl & F_HAVE_TH))) BAD_WORD(E_NO_TIME_HIGH);
            if (!DRY) {
                /* Fast run over the CD words that follow while each is in order and inside the
                 * geometry and the output has room: one test per word instead of the switch. The
                 * first word that fails any test is left to the general path below. */
                /* With the extent tracked, a coordinate beyond it also leaves the run: the general
                 * path widens the extent, so the run itself needs no maxima (they cost a fifth). */
                const uint32_t wmax = run_bound(w_, xend, TRACK), hmax = run_bound(h_, yend, TRACK);
                Py_ssize_t end = i + (c->cap - n), j = i;
                if (end > nw) end = nw;
                int64_t lo = (fl & F_HAVE_LAST) ? last : INT64_MIN;
                for (; j < end; j++) {
                    uint32_t w2;
                    memcpy(&w2, data + 4 * j, 4);
                    const int64_t t = base + ((w2 >> 22) & 63u);
                    const uint32_t x = (w2 >> 11) & 0x7FFu, y = w2 & 0x7FFu;
                    if ((w2 >> 29) | (uint32_t)(t < lo) | (uint32_t)(x >= wmax) | (uint32_t)(y >= hmax)) break;
                    put_event(out + (size_t)n * REC, x, y, w2 >> 28, t);
                    n++;
                    lo = t;
                }
                if (j > i) {
                    last = lo;
                    fl = (fl | F_HAVE_LAST) & ~(int64_t)F_CONT_OK;
                    i = j - 1; /* the loop's i++ moves to the first word not taken */
                    break;
                }
            }
            const int64_t t = base + ((wd >> 22) & 63u);
            /* Time highs only order periods of 64 µs; the 6 low bits must not go back inside one. */
            if (UNLIKELY((fl & F_HAVE_LAST) && t < last)) BAD_WORD(E_TIME_BACKWARDS);
            last = t;
            fl = (fl | F_HAVE_LAST) & ~(int64_t)F_CONT_OK;
            EMIT((wd >> 11) & 0x7FFu, wd & 0x7FFu, wd >> 28, t);
            break;
        }
        case 0x8:
            if (evt2_time_high(c, wd & 0x0FFFFFFFu, &th, &loop, &shift, &fl, &base)) goto stop;
            break;
        case 0xA:
            fl &= ~(int64_t)F_CONT_OK;
            break;
        case 0xD:
        case 0xE:
            fl |= F_CONT_OK;
            break;
        case 0xF:
            if (UNLIKELY(!(fl & F_CONT_OK))) BAD_WORD(E_ORPHAN_CONTINUED);
            break;
        default:
            BAD_WORD(E_UNKNOWN_TYPE);
        }
    next:;
    }
    goto done;
stop:
done:
    c->pos = i;
    c->n_out = n;
    st[S_XEND] = xend;
    st[S_YEND] = yend;
    st[S_TH] = th;
    st[S_LOOP] = loop;
    st[S_SHIFT] = shift;
    st[S_FLAGS] = fl;
    st[S_LAST] = last;
}

static ALWAYS_INLINE void evt21_run(Ctx *c, const int DRY, const int TRACK) {
    const uint8_t *data = c->data;
    uint8_t *out = c->out;
    int64_t *st = c->st;
    const uint32_t w_ = c->width, h_ = c->height;
    const Py_ssize_t nw = c->n_words, lim = c->cap - 32;
    const int legacy = (c->flags & P_LEGACY) != 0;
    Py_ssize_t i = c->pos, n = c->n_out;
    uint32_t xend = (uint32_t)st[S_XEND], yend = (uint32_t)st[S_YEND];
    int64_t th = st[S_TH], loop = st[S_LOOP], shift = st[S_SHIFT], fl = st[S_FLAGS], last = st[S_LAST];
    int64_t base = (loop << 34) + (th << 6) - shift;

    for (; i < nw; i++) {
        uint32_t lo, hi;
        /* GenX320: one little-endian u64. IMX636 "legacy": the high half comes first. */
        if (legacy) {
            memcpy(&hi, data + 8 * i, 4);
            memcpy(&lo, data + 8 * i + 4, 4);
        } else {
            memcpy(&lo, data + 8 * i, 4);
            memcpy(&hi, data + 8 * i + 4, 4);
        }
        if (UNLIKELY(!DRY && n > lim)) {
            c->stopped = 1;
            break;
        }
        switch (hi >> 28) {
        case 0x0:
        case 0x1: {
            if (UNLIKELY(!(fl & F_HAVE_TH))) BAD_WORD(E_NO_TIME_HIGH);
            const uint32_t p = hi >> 28, xb = (hi >> 11) & 0x7FFu, y = hi & 0x7FFu;
            const int64_t t = base + ((hi >> 22) & 63u);
            if (UNLIKELY((fl & F_HAVE_LAST) && t < last)) BAD_WORD(E_TIME_BACKWARDS);
            last = t;
            fl = (fl | F_HAVE_LAST) & ~(int64_t)F_CONT_OK;
            uint32_t m = lo;
            if ((w_ == 0 || xb + 32 <= w_) && (h_ == 0 || y < h_)) {
                while (m) {
                    uint32_t b = CTZ32(m);
                    if (!DRY) PUT(xb + b, y, p, t);
                    n++;
                    m &= m - 1;
                }
            } else {
                while (m) {
                    uint32_t b = CTZ32(m);
                    EMIT(xb + b, y, p, t);
                    m &= m - 1;
                }
            }
            break;
        }
        case 0x8:
            if (evt2_time_high(c, hi & 0x0FFFFFFFu, &th, &loop, &shift, &fl, &base)) goto stop;
            break;
        case 0xA:
            fl &= ~(int64_t)F_CONT_OK;
            break;
        case 0xE:
            fl |= F_CONT_OK;
            break;
        case 0xF:
            if (UNLIKELY(!(fl & F_CONT_OK))) BAD_WORD(E_ORPHAN_CONTINUED);
            break;
        default:
            BAD_WORD(E_UNKNOWN_TYPE);
        }
    next:;
    }
    goto done;
stop:
done:
    c->pos = i;
    c->n_out = n;
    st[S_XEND] = xend;
    st[S_YEND] = yend;
    st[S_TH] = th;
    st[S_LOOP] = loop;
    st[S_SHIFT] = shift;
    st[S_FLAGS] = fl;
    st[S_LAST] = last;
}

/* ---------------------------------------------------------------- DAT */

/* The DAT fast run from word j to end: returns the first word not taken (timestamp back or at the
 * target, or a coordinate at or beyond wmax / hmax), records written from o on. */
static ALWAYS_INLINE Py_ssize_t dat_fast(const uint8_t *restrict data, Py_ssize_t j, Py_ssize_t end,
                                         uint8_t *restrict o, int64_t hi, int64_t *pv_, int64_t target,
                                         uint32_t wmax, uint32_t hmax, int v1) {
    /* v1: x 9 bits, y 8, p bit 17; v2: x 14 bits, y 14, p = any of bits 28..31. */
    const uint32_t xm = v1 ? 0x1FFu : 0x3FFFu, ys = v1 ? 9 : 14, ym = v1 ? 0xFFu : 0x3FFFu;
    const uint32_t ps = v1 ? 17 : 28, pm = v1 ? 1u : 0xFu;
    int64_t pv = *pv_;
    for (; j < end; j++, o += REC) {
        uint32_t ts, v;
        memcpy(&ts, data + 8 * j, 4);
        memcpy(&v, data + 8 * j + 4, 4);
        const uint32_t x = v & xm, y = (v >> ys) & ym, p = ((v >> ps) & pm) != 0;
        const int64_t t = hi + (int64_t)ts;
        if ((uint32_t)((int64_t)ts < pv) | (uint32_t)(t >= target) | (uint32_t)(x >= wmax) | (uint32_t)(y >= hmax))
            break;
        put_event(o, x, y, p, t);
        pv = ts;
    }
    *pv_ = pv;
    return j;
}

static ALWAYS_INLINE void dat_run(Ctx *c, const int DRY, const int TRACK) {
    const uint8_t *data = c->data;
    uint8_t *out = c->out;
    int64_t *st = c->st;
    const uint32_t w_ = c->width, h_ = c->height;
    const Py_ssize_t nw = c->n_words, lim = c->cap - 1;
    const int v1 = (c->flags & P_DAT_V1) != 0;
    Py_ssize_t i = c->pos, n = c->n_out;
    uint32_t xend = (uint32_t)st[S_XEND], yend = (uint32_t)st[S_YEND];
    int64_t loop = st[S_LOOP], prev = st[S_PREV], fl = st[S_FLAGS];

    for (; i < nw; i++) {
        uint32_t ts, v, x, y, p;
        if (!DRY) {
            /* Fast run while timestamps do not go back (no wrap), stay before the target, events
             * are inside the geometry and the output has room; the first word that fails goes
             * through the general path below. prev is 0 before the first event, which every
             * timestamp passes. */
            Py_ssize_t end = i + (c->cap - n);
            if (end > nw) end = nw;
            int64_t pv = (fl & F_HAVE_PREV) ? prev : 0;
            const Py_ssize_t j = dat_fast(data, i, end, out + (size_t)n * REC, loop << 32, &pv, c->target,
                                          run_bound(w_, xend, TRACK), run_bound(h_, yend, TRACK), v1);
            n += j - i;
            if (j > i) {
                prev = pv;
                fl |= F_HAVE_PREV;
                i = j;
                if (i >= nw) break;
            }
            memcpy(&ts, data + 8 * i, 4);
            memcpy(&v, data + 8 * i + 4, 4);
        }
        if (DRY) {
            memcpy(&ts, data + 8 * i, 4);
            memcpy(&v, data + 8 * i + 4, 4);
        }
        if (UNLIKELY(!DRY && n > lim)) {
            c->stopped = 1;
            break;
        }
        int64_t nloop = loop;
        if ((fl & F_HAVE_PREV) && (int64_t)ts < prev) {
            /* 32-bit microsecond counter: a wrap drops by more than half its range. */
            if (prev - (int64_t)ts > ((int64_t)1 << 31)) {
                nloop++;
            } else {
                if (bad(c, E_TIME_BACKWARDS)) goto stop;
                continue;
            }
        }
        int64_t t = (nloop << 32) + (int64_t)ts;
        if (UNLIKELY(t >= c->target)) {
            c->stopped = 2;
            goto stop;
        }
        if (v1) {
            x = v & 0x1FFu;
            y = (v >> 9) & 0xFFu;
            p = (v >> 17) & 1u;
        } else {
            x = v & 0x3FFFu;
            y = (v >> 14) & 0x3FFFu;
            p = (v >> 28) != 0;
        }
        loop = nloop;
        prev = ts;
        fl |= F_HAVE_PREV;
        EMIT(x, y, p, t);
    }
    goto done;
stop:
done:
    c->pos = i;
    c->n_out = n;
    st[S_XEND] = xend;
    st[S_YEND] = yend;
    st[S_LOOP] = loop;
    st[S_PREV] = prev;
    st[S_FLAGS] = fl;
}

/* ---------------------------------------------------------------- Python entry */

static const int WORD_SIZE[] = {4, 8, 2, 8};

/* Each decoder is instantiated three times: dry (no output), writing, writing with the extent. */
#define DISPATCH(fn)              \
    do {                          \
        if (dry)                  \
            fn(c, 1, 0);          \
        else if (track)           \
            fn(c, 0, 1);          \
        else                      \
            fn(c, 0, 0);          \
    } while (0)

static void run(Ctx *c, int kind) {
    const int dry = c->out == NULL, track = (c->flags & P_EXTENT) != 0;
    switch (kind) {
    case K_EVT2:
        DISPATCH(evt2_run);
        break;
    case K_EVT21:
        DISPATCH(evt21_run);
        break;
    case K_EVT3:
        DISPATCH(evt3_run);
        break;
    default:
        DISPATCH(dat_run);
        break;
    }
}

PyDoc_STRVAR(decode_doc,
             "decode(kind, data, pos, out, n_out, state, counts, width, height, flags, target)\n"
             "-> (n_out, pos, err, stopped)\n\n"
             "Decode words of ``data`` from word index ``pos`` into ``out`` (EVENT_DTYPE buffer, or None to\n"
             "only advance the state) starting at record ``n_out``. ``state`` (int64[16]) and ``counts``\n"
             "(int64[10]) are updated in place. ``stopped`` is 0 (block consumed), 1 (output full) or\n"
             "2 (a time word reached ``target``); ``err`` is a strict-mode error code at word ``pos``.");

static PyObject *py_decode(PyObject *self, PyObject *args) {
    (void)self;
    int kind, flags;
    Py_ssize_t pos, n_out;
    unsigned int width, height;
    long long target;
    Py_buffer data, st, counts, out = {0};
    PyObject *out_obj;
    if (!PyArg_ParseTuple(args, "iy*nOnw*w*IIiL", &kind, &data, &pos, &out_obj, &n_out, &st, &counts, &width,
                          &height, &flags, &target))
        return NULL;
    PyObject *result = NULL;
    int have_out = 0;
    if (kind < 0 || kind > 3) {
        PyErr_SetString(PyExc_ValueError, "unknown decoder kind");
        goto cleanup;
    }
    if (st.len < (Py_ssize_t)(S_NSLOTS * sizeof(int64_t)) || counts.len < (Py_ssize_t)(E_NCODES * sizeof(int64_t))) {
        PyErr_SetString(PyExc_ValueError, "state or counts buffer too small");
        goto cleanup;
    }
    Ctx c;
    memset(&c, 0, sizeof c);
    c.data = (const uint8_t *)data.buf;
    c.n_words = data.len / WORD_SIZE[kind];
    c.pos = pos;
    c.n_out = n_out;
    c.st = (int64_t *)st.buf;
    c.counts = (int64_t *)counts.buf;
    c.width = width;
    c.height = height;
    c.flags = flags;
    c.target = (int64_t)target;
    if (out_obj != Py_None) {
        if (PyObject_GetBuffer(out_obj, &out, PyBUF_WRITABLE) < 0) goto cleanup;
        have_out = 1;
        c.out = (uint8_t *)out.buf;
        c.cap = out.len / REC;
        if (n_out < 0 || n_out > c.cap) {
            PyErr_SetString(PyExc_ValueError, "n_out outside the output buffer");
            goto cleanup;
        }
    }
    if (pos < 0 || pos > c.n_words) {
        PyErr_SetString(PyExc_ValueError, "pos outside the data");
        goto cleanup;
    }
    Py_BEGIN_ALLOW_THREADS run(&c, kind);
    Py_END_ALLOW_THREADS result = Py_BuildValue("nnii", c.n_out, c.pos, c.err, c.stopped);
cleanup:
    if (have_out) PyBuffer_Release(&out);
    PyBuffer_Release(&data);
    PyBuffer_Release(&st);
    PyBuffer_Release(&counts);
    return result;
}

static PyMethodDef methods[] = {
    {"decode", py_decode, METH_VARARGS, decode_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_evtkernels", "Native Prophesee EVT/DAT decoders (see _evtkernels.c).", -1, methods,
};

PyMODINIT_FUNC PyInit__evtkernels(void) { return PyModule_Create(&module); }
