/*
 * Native step kernels of the edgesnn engine.
 *
 * A Program is a compiled op list: a flat array of int64 records, one per op,
 * each [opcode, record length, fields...]. Array fields are raw addresses of
 * float32 (or int32/int64 scratch) memory owned by numpy arrays; the Program
 * holds a reference to a tuple of those arrays so the memory outlives it.
 * edgesnn/engine/_native.py builds the records; it is the only producer and
 * checks every array's dtype, contiguity and size before taking its address.
 *
 * Semantics are those of edgesnn/engine/_numpy_kernels.py. Element-wise ops
 * (neurons, scale, threshold, pooling, sums) follow numpy's float32 operation
 * order exactly, so they agree bit for bit; sparse binary gathers add weight
 * rows in input order as numpy's row sum does. Matrix products sum in a
 * different order than BLAS and agree to rounding. Built without
 * -ffast-math, and in ISO C mode so the compiler does not contract a*b+c into
 * fused multiply-adds: NaN compares false and every rounding step is kept.
 */
/* GCC in ISO mode already keeps a*b+c unfused; clang fuses within an expression unless told. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#include <xmmintrin.h>
#endif

enum {
    OP_SUM = 1,
    OP_COPY = 2,
    OP_DENSE = 3,
    OP_CONV = 4,
    OP_POOL = 5,
    OP_SCALE = 6,
    OP_THRESHOLD = 7,
    OP_DELAY = 8,
    OP_NEURON = 9,
};

/* Fixed record lengths (header included); 0 means variable (SUM). */
static const int64_t RECORD_LEN[] = {0, 0, 5, 14, 35, 18, 7, 7, 8, 28};

enum { NF_SPIKING = 1, NF_SYNAPSE = 2, NF_ADAPT = 4, NF_SUBTRACT = 8, NF_NEXT_STEP = 16, NF_SCALAR = 32,
       NF_INCLUSIVE = 64, NF_MULTI = 128, NF_HOLD = 256, NF_COUPLED = 512, NF_ADAPT_INPUT = 1024 };
/* With NF_MULTI the largest spike count per step sits above the flag bits. */
#define NF_MAX_SHIFT 16

#if defined(__GNUC__)
#define ALWAYS_INLINE __attribute__((always_inline)) inline
#else
#define ALWAYS_INLINE inline
#endif

#define F32(p) ((float *)(intptr_t)(p))
#define CF32(p) ((const float *)(intptr_t)(p))
#define I32(p) ((int32_t *)(intptr_t)(p))
#define I64(p) ((int64_t *)(intptr_t)(p))

static float bits_to_float(int64_t bits) {
    uint32_t u = (uint32_t)bits;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* True unless x is +0.0 or -0.0 (NaN counts as non-zero, as in numpy.count_nonzero). */
static inline int nonzero(float x) { return x != 0.0f || x != x; }

/* Bit j set when x[j] (j < 8) is non-zero; SSE2 where the target has it (every x86-64). */
static inline unsigned nonzero_mask8(const float *x) {
#ifdef __SSE2__
    __m128 zero = _mm_setzero_ps();
    unsigned lo = (unsigned)_mm_movemask_ps(_mm_cmpneq_ps(_mm_loadu_ps(x), zero));
    unsigned hi = (unsigned)_mm_movemask_ps(_mm_cmpneq_ps(_mm_loadu_ps(x + 4), zero));
    return lo | (hi << 4);
#else
    unsigned m = 0;
    for (int j = 0; j < 8; j++) m |= (unsigned)nonzero(x[j]) << j;
    return m;
#endif
}

/* Bits of x[0:n] (n <= 64) that are non-zero: one word per 64 inputs, so the scans below take
 * one hard-to-predict branch per word instead of one per 8 inputs. */
static inline uint64_t nonzero_mask(const float *x, int64_t n) {
    uint64_t m = 0;
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) m |= (uint64_t)nonzero_mask8(x + j) << j;
    for (; j < n; j++) m |= (uint64_t)nonzero(x[j]) << j;
    return m;
}

static inline int lowest_bit64(uint64_t m) {
#if defined(__GNUC__) || defined(__clang__)
    return __builtin_ctzll(m);
#else
    int j = 0;
    while (!(m & 1u)) m >>= 1, j++;
    return j;
#endif
}


/* Collect indices of non-zero entries of x[0:n] into idx; returns their count, or -1 once
 * the count passes `limit` (the caller then takes the dense path). */
static int64_t collect_nonzero(const float *x, int64_t n, int32_t *idx, int64_t limit) {
    int64_t k = 0;
    for (int64_t i = 0; i < n; i += 64) {
        for (uint64_t m = nonzero_mask(x + i, n - i < 64 ? n - i : 64); m; m &= m - 1) {
            if (k >= limit) return -1;
            idx[k++] = (int32_t)(i + lowest_bit64(m));
        }
    }
    return k;
}

/* The ops with long loops are compiled twice, for AVX2 and for the baseline (SSE2 on x86-64), and
 * the loader picks the AVX2 bodies on CPUs that have it (GCC's target_clones, an ifunc): the build still
 * runs on any CPU of its architecture. Only wider vectors change; every element sees the same
 * float32 operations in the same order (no FMA contraction: "fma" is not among the targets), so
 * results are identical on both bodies. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define MULTI_TARGET __attribute__((target_clones("avx2", "default")))
#else
#define MULTI_TARGET
#endif

/* ---- spike maps ------------------------------------------------------------
 * A neuron op whose output a later convolution or dense op reads directly also writes a bit map
 * of its non-zero outputs: sample b's bit j is bit j % 64 of word b * words + j / 64, words =
 * ceil(n / 64), one spare word at the end. The reader takes its active inputs from the map
 * instead of scanning n floats again; the map holds exactly what nonzero() would find in the
 * output, computed while that block of output is still in L1. _native.py links the two ops. */

static inline int64_t map_words(int64_t n) { return (n + 63) / 64; }

/* The map of out[0:n] (one sample) into words. */
static void spike_map(const float *out, int64_t n, uint64_t *words) {
    for (int64_t j = 0; j < n; j += 64) words[j / 64] = nonzero_mask(out + j, n - j < 64 ? n - j : 64);
}

/* nbits (<= 64) bits of a sample's map starting at bit q. */
static inline uint64_t map_bits(const uint64_t *words, int64_t q, int64_t nbits) {
    const int64_t w = q >> 6, off = q & 63;
    uint64_t m = words[w] >> off;
    if (off && off + nbits > 64) m |= words[w + 1] << (64 - off);
    return nbits == 64 ? m : m & ((UINT64_C(1) << nbits) - 1);
}

/* collect_nonzero() from a map: the same indices in the same order. */
static int64_t collect_from_map(const uint64_t *words, int64_t n, int32_t *idx, int64_t limit) {
    int64_t k = 0;
    for (int64_t i = 0; i < n; i += 64) {
        for (uint64_t m = words[i / 64]; m; m &= m - 1) {
            if (k >= limit) return -1;
            idx[k++] = (int32_t)(i + lowest_bit64(m));
        }
    }
    return k;
}

/* ---- element-wise ops -------------------------------------------------- */

static void op_sum(const int64_t *r) {
    /* [n, out, nsrc, src...] : out = ((s0 + s1) + s2) ... */
    int64_t n = r[2], nsrc = r[4];
    float *out = F32(r[3]);
    const float *s0 = CF32(r[5]);
    if (out != s0) memcpy(out, s0, (size_t)n * sizeof(float));
    for (int64_t s = 1; s < nsrc; s++) {
        const float *src = CF32(r[5 + s]);
        for (int64_t j = 0; j < n; j++) out[j] += src[j];
    }
}

static void op_copy(const int64_t *r) {
    /* [n, x, out] */
    if (r[3] != r[4]) memcpy(F32(r[4]), CF32(r[3]), (size_t)r[2] * sizeof(float));
}

static void op_scale(const int64_t *r) {
    /* [batch, n, x, scale, out] */
    int64_t batch = r[2], n = r[3];
    const float *x = CF32(r[4]), *s = CF32(r[5]);
    float *out = F32(r[6]);
    for (int64_t b = 0; b < batch; b++)
        for (int64_t j = 0; j < n; j++) out[b * n + j] = x[b * n + j] * s[j];
}

static void op_threshold(const int64_t *r) {
    /* [batch, n, x, threshold, out] */
    int64_t batch = r[2], n = r[3];
    const float *x = CF32(r[4]), *t = CF32(r[5]);
    float *out = F32(r[6]);
    for (int64_t b = 0; b < batch; b++)
        for (int64_t j = 0; j < n; j++) out[b * n + j] = x[b * n + j] > t[j] ? 1.0f : 0.0f;
}

static void op_delay(const int64_t *r) {
    /* [n (batch * features), x, out, ring (steps, n), cursor (int64), steps] */
    int64_t n = r[2], steps = r[7];
    int64_t *cursor = I64(r[6]);
    int64_t k = *cursor;
    if (k < 0 || k >= steps) k = 0; /* a corrupted cursor must not write out of bounds */
    float *slot = F32(r[5]) + k * n;
    memcpy(F32(r[4]), slot, (size_t)n * sizeof(float));
    memcpy(slot, CF32(r[3]), (size_t)n * sizeof(float));
    *cursor = (k + 1) % steps;
}

/* ---- dense (x @ wt + bias) --------------------------------------------- */

/* out[0:m] = sum over the k rows of w listed in idx, added in list order (numpy's row sum). */
MULTI_TARGET static void gather_rows_binary(float *out, const float *w, int64_t m, const int32_t *idx, int64_t k) {
    if (k == 0) {
        memset(out, 0, (size_t)m * sizeof(float));
        return;
    }
    memcpy(out, w + (int64_t)idx[0] * m, (size_t)m * sizeof(float));
    int64_t i = 1;
    for (; i + 4 <= k; i += 4) {
        const float *r0 = w + (int64_t)idx[i] * m, *r1 = w + (int64_t)idx[i + 1] * m;
        const float *r2 = w + (int64_t)idx[i + 2] * m, *r3 = w + (int64_t)idx[i + 3] * m;
        for (int64_t j = 0; j < m; j++) {
            float o = out[j];
            o += r0[j];
            o += r1[j];
            o += r2[j];
            o += r3[j];
            out[j] = o;
        }
    }
    for (; i < k; i++) {
        const float *r0 = w + (int64_t)idx[i] * m;
        for (int64_t j = 0; j < m; j++) out[j] += r0[j];
    }
}

/* out[0:m] = sum over listed rows of x[row] * w[row], in list order. */
MULTI_TARGET static void gather_rows_scaled(float *out, const float *w, int64_t m, const float *x, const int32_t *idx, int64_t k) {
    memset(out, 0, (size_t)m * sizeof(float));
    int64_t i = 0;
    for (; i + 4 <= k; i += 4) {
        const float *r0 = w + (int64_t)idx[i] * m, *r1 = w + (int64_t)idx[i + 1] * m;
        const float *r2 = w + (int64_t)idx[i + 2] * m, *r3 = w + (int64_t)idx[i + 3] * m;
        float a0 = x[idx[i]], a1 = x[idx[i + 1]], a2 = x[idx[i + 2]], a3 = x[idx[i + 3]];
        for (int64_t j = 0; j < m; j++) {
            float o = out[j];
            o += a0 * r0[j];
            o += a1 * r1[j];
            o += a2 * r2[j];
            o += a3 * r3[j];
            out[j] = o;
        }
    }
    for (; i < k; i++) {
        const float *r0 = w + (int64_t)idx[i] * m;
        float a0 = x[idx[i]];
        for (int64_t j = 0; j < m; j++) out[j] += a0 * r0[j];
    }
}

static void add_bias_rows(float *out, const float *bias, int64_t batch, int64_t m) {
    for (int64_t b = 0; b < batch; b++)
        for (int64_t j = 0; j < m; j++) out[b * m + j] += bias[j];
}

static void op_dense(const int64_t *r) {
    /* [batch, n_in, n_out, x, wt, bias|0, out, binary, idx (int32 batch*n_in), counts (int64 batch), nnz_limit,
     *  spike map of x|0] */
    int64_t batch = r[2], n_in = r[3], m = r[4], limit = r[12];
    const float *x = CF32(r[5]), *w = CF32(r[6]), *bias = CF32(r[7]);
    float *out = F32(r[8]);
    int binary = (int)r[9];
    int32_t *idx = I32(r[10]);
    int64_t *counts = I64(r[11]);
    const uint64_t *map = (const uint64_t *)(intptr_t)r[13];

    /* Sparse when the whole batch has at most `limit` non-zeros (the numpy kernel's rule). */
    int64_t total = 0;
    int sparse = 1;
    for (int64_t b = 0; b < batch; b++) {
        int64_t k = map ? collect_from_map(map + b * map_words(n_in), n_in, idx + b * n_in, limit - total)
                        : collect_nonzero(x + b * n_in, n_in, idx + b * n_in, limit - total);
        if (k < 0) {
            sparse = 0;
            break;
        }
        counts[b] = k;
        total += k;
    }
    if (sparse) {
        for (int64_t b = 0; b < batch; b++) {
            if (binary)
                gather_rows_binary(out + b * m, w, m, idx + b * n_in, counts[b]);
            else
                gather_rows_scaled(out + b * m, w, m, x + b * n_in, idx + b * n_in, counts[b]);
        }
    } else {
        /* Dense product, rows of wt in blocks of 4 so each block serves every sample from cache. */
        memset(out, 0, (size_t)(batch * m) * sizeof(float));
        int64_t i = 0;
        for (; i + 4 <= n_in; i += 4) {
            const float *r0 = w + i * m, *r1 = r0 + m, *r2 = r1 + m, *r3 = r2 + m;
            for (int64_t b = 0; b < batch; b++) {
                const float *xb = x + b * n_in + i;
                float a0 = xb[0], a1 = xb[1], a2 = xb[2], a3 = xb[3];
                float *o = out + b * m;
                for (int64_t j = 0; j < m; j++) {
                    float s = o[j];
                    s += a0 * r0[j];
                    s += a1 * r1[j];
                    s += a2 * r2[j];
                    s += a3 * r3[j];
                    o[j] = s;
                }
            }
        }
        for (; i < n_in; i++) {
            const float *r0 = w + i * m;
            for (int64_t b = 0; b < batch; b++) {
                float a0 = x[b * n_in + i], *o = out + b * m;
                for (int64_t j = 0; j < m; j++) o[j] += a0 * r0[j];
            }
        }
    }
    if (bias) add_bias_rows(out, bias, batch, m);
}

/* ---- convolution ------------------------------------------------------- */

typedef struct {
    int64_t batch, c_in, h, w, c_out, ho, wo, kh, kw, groups;
    const float *x, *weight, *wk, *bias;
    float *out, *acc;
    int binary, has_bias;
    /* Tap tables, per input row iy: ycount[iy] valid kernel rows, the j-th with kernel row
     * yk[iy * kh + j] landing on output row yo[iy * kh + j]; likewise per column. They fold
     * stride, padding and dilation in once, so the scatter does no divisions. */
    const int32_t *ycount, *yk, *yo, *xcount, *xk, *xo;
    /* Pair list of one sample: output pixel, global tap index (ci, ky, kx), input value. */
    int32_t *pix, *tap;
    float *val;
    int64_t *group_end;
    int64_t limit, hwc_work;
    /* Active pixels of the whole batch, four int32 each (ci, iy, ix, first output channel of
     * ci's group); sample b's run from act_start[b] to act_start[b + 1]. */
    int32_t *act;
    int64_t *act_start;
    /* The spike map of x (see spike_map), or NULL to scan x. */
    const uint64_t *map;
} Conv;

/* List the active pixels of every sample (the input is read once, row by row, so channel and
 * row come without divisions); returns their count, or -1 once it passes the limit (the batch
 * then takes the dense path, numpy's rule). Pixels that reach no output are counted, not listed. */
MULTI_TARGET static int64_t conv_active(const Conv *c) {
    int64_t k = 0, n_in = c->c_in * c->h * c->w, c_in_g = c->c_in / c->groups, g_out = c->c_out / c->groups;
    for (int64_t b = 0; b < c->batch; b++) {
        c->act_start[b] = k;
        const float *xb = c->x + b * n_in;
        const uint64_t *map = c->map ? c->map + b * map_words(n_in) : NULL;
        for (int64_t ci = 0; ci < c->c_in; ci++) {
            int32_t co0 = (int32_t)((ci / c_in_g) * g_out);
            for (int64_t iy = 0; iy < c->h; iy++) {
                const float *row = xb + (ci * c->h + iy) * c->w;
                int listed = c->ycount[iy] != 0;
                for (int64_t i0 = 0; i0 < c->w; i0 += 64) {
                    const int64_t nbits = c->w - i0 < 64 ? c->w - i0 : 64;
                    uint64_t m = map ? map_bits(map, (ci * c->h + iy) * c->w + i0, nbits) : nonzero_mask(row + i0, nbits);
                    if (!listed) {
                        k += __builtin_popcountll(m);
                        if (k > c->limit) return -1;
                        continue;
                    }
                    for (; m; m &= m - 1) {
                        if (k >= c->limit) return -1;
                        int32_t *a = c->act + 4 * k++;
                        a[0] = (int32_t)ci, a[1] = (int32_t)iy, a[2] = (int32_t)(i0 + lowest_bit64(m)), a[3] = co0;
                    }
                }
            }
        }
    }
    c->act_start[c->batch] = k;
    return k;
}

/* Number of (output pixel, tap) pairs the n active pixels at act reach. */
static int64_t conv_pair_count(const Conv *c, const int32_t *act, int64_t n) {
    int64_t np = 0;
    for (int64_t e = 0; e < n; e++) np += (int64_t)c->ycount[act[4 * e + 1]] * c->xcount[act[4 * e + 2]];
    return np;
}

/* List every (output pixel, tap) the n active pixels at act reach, in channel order, and
 * fill group_end[g] with the end of group g's pairs. */
static void conv_pairs(const Conv *c, const float *x, const int32_t *act, int64_t n) {
    int64_t np = 0, c_in_g = c->c_in / c->groups, g = 0;
    for (int64_t e = 0; e < n; e++) {
        const int32_t *a = act + 4 * e;
        int64_t ci = a[0], iy = a[1], ix = a[2];
        /* Groups before this pixel's are complete (g < ci / c_in_g, without a division per pixel). */
        while ((g + 1) * c_in_g <= ci) c->group_end[g++] = np;
        float v = x[(ci * c->h + iy) * c->w + ix];
        int64_t ny = c->ycount[iy], nx = c->xcount[ix];
        const int32_t *yk = c->yk + iy * c->kh, *yo = c->yo + iy * c->kh;
        const int32_t *xk = c->xk + ix * c->kw, *xo = c->xo + ix * c->kw;
        for (int64_t ty = 0; ty < ny; ty++) {
            int64_t tap_row = (ci * c->kh + yk[ty]) * c->kw, pix_row = (int64_t)yo[ty] * c->wo;
            for (int64_t tx = 0; tx < nx; tx++) {
                c->pix[np] = (int32_t)(pix_row + xo[tx]);
                c->tap[np] = (int32_t)(tap_row + xk[tx]);
                c->val[np] = v;
                np++;
            }
        }
    }
    while (g < c->groups) c->group_end[g++] = np;
}

/* out (C_out, HO, WO) = acc (HO, WO, C_out) transposed, plus bias; in 4 x 4 blocks where the
 * sizes allow, so every load and store is a whole vector. The bias is added as each value is
 * moved (one pass over out instead of two; the same single addition per value). Without a bias
 * nothing is added: 0.0 + -0.0 would turn a -0.0 into +0.0. */
MULTI_TARGET static void conv_hwc_to_chw(const Conv *c, float *out) {
    int64_t plane = c->ho * c->wo, n = c->c_out;
    int64_t co = 0;
    const int bias = c->has_bias;
#ifdef __SSE2__
    if (plane % 4 == 0) {
        for (; co + 4 <= n; co += 4) {
            const __m128 b0 = _mm_set1_ps(bias ? c->bias[co] : 0.0f), b1 = _mm_set1_ps(bias ? c->bias[co + 1] : 0.0f);
            const __m128 b2 = _mm_set1_ps(bias ? c->bias[co + 2] : 0.0f), b3 = _mm_set1_ps(bias ? c->bias[co + 3] : 0.0f);
            for (int64_t p = 0; p < plane; p += 4) {
                __m128 r0 = _mm_loadu_ps(c->acc + p * n + co), r1 = _mm_loadu_ps(c->acc + (p + 1) * n + co);
                __m128 r2 = _mm_loadu_ps(c->acc + (p + 2) * n + co), r3 = _mm_loadu_ps(c->acc + (p + 3) * n + co);
                _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
                if (bias) {
                    r0 = _mm_add_ps(r0, b0);
                    r1 = _mm_add_ps(r1, b1);
                    r2 = _mm_add_ps(r2, b2);
                    r3 = _mm_add_ps(r3, b3);
                }
                _mm_storeu_ps(out + co * plane + p, r0);
                _mm_storeu_ps(out + (co + 1) * plane + p, r1);
                _mm_storeu_ps(out + (co + 2) * plane + p, r2);
                _mm_storeu_ps(out + (co + 3) * plane + p, r3);
            }
        }
    }
#endif
    for (; co < n; co++) {
        float *o = out + co * plane;
        const float *a = c->acc + co;
        if (bias) {
            const float bb = c->bias[co];
            for (int64_t p = 0; p < plane; p++) o[p] = a[p * n] + bb;
        } else {
            for (int64_t p = 0; p < plane; p++) o[p] = a[p * n];
        }
    }
}

/* Scatter the pairs into out (C_out, HO, WO) one output channel at a time, so each
 * channel's plane stays in L1 (channel planes a power of two apart share cache sets). */
MULTI_TARGET static void conv_scatter_chw(const Conv *c, float *out) {
    int64_t plane = c->ho * c->wo, g_out = c->c_out / c->groups, taps_g = (c->c_in / c->groups) * c->kh * c->kw;
    memset(out, 0, (size_t)(c->c_out * plane) * sizeof(float));
    int64_t start = 0;
    for (int64_t g = 0; g < c->groups; g++) {
        int64_t end = c->group_end[g];
        for (int64_t co = g * g_out; co < (g + 1) * g_out; co++) {
            float *o = out + co * plane;
            /* weight (C_out, C_in/g, KH, KW): shift so global tap indices of group g address row co. */
            const float *wco = c->weight + co * taps_g - g * taps_g;
            if (c->binary)
                for (int64_t q = start; q < end; q++) o[c->pix[q]] += wco[c->tap[q]];
            else
                for (int64_t q = start; q < end; q++) o[c->pix[q]] += c->val[q] * wco[c->tap[q]];
            if (c->has_bias) {
                float bb = c->bias[co];
                for (int64_t p = 0; p < plane; p++) o[p] += bb;
            }
        }
        start = end;
    }
}

/* o[0:8] += w[0:8], and o[0:8] += v * w[0:8] (a product then a sum, each rounded: no fused
 * multiply-add), as GCC vector types: two SSE ops on the baseline, one AVX op in the AVX2 clone. */
typedef float v8f __attribute__((vector_size(32)));

static ALWAYS_INLINE void add8(float *o, const float *w) {
    v8f a, b;
    memcpy(&a, o, sizeof a);
    memcpy(&b, w, sizeof b);
    a = a + b;
    memcpy(o, &a, sizeof a);
}

static ALWAYS_INLINE void axpy8(float *o, float v, const float *w) {
    v8f a, b;
    memcpy(&a, o, sizeof a);
    memcpy(&b, w, sizeof b);
    a = a + v * b;
    memcpy(o, &a, sizeof a);
}

/* Scatter the n active pixels at act through the kernel into acc (HO, WO, C_out), each tap's
 * weights contiguous over the group's output channels; the pairs in the order conv_pairs lists.
 * G is the group's channel count when the caller knows it (a constant: whole vectors, no loop
 * overhead per tap), else 0 and g_out is read at run time. */
static ALWAYS_INLINE void scatter_hwc_body(const Conv *c, const float *x, const int32_t *act, int64_t n, const int G,
                                           const int BINARY) {
    const int64_t g_out = G ? G : c->c_out / c->groups, c_out = c->c_out, h = c->h, w = c->w, kh = c->kh,
                  kw = c->kw, wo = c->wo;
    float *acc = c->acc;
    const float *wk = c->wk;
    for (int64_t e = 0; e < n; e++) {
        const int32_t *a = act + 4 * e;
        int64_t ci = a[0], iy = a[1], ix = a[2], co0 = a[3];
        float v = x[(ci * h + iy) * w + ix];
        int64_t ny = c->ycount[iy], nx = c->xcount[ix];
        const int32_t *yk = c->yk + iy * kh, *yo = c->yo + iy * kh;
        const int32_t *xk = c->xk + ix * kw, *xo = c->xo + ix * kw;
        for (int64_t ty = 0; ty < ny; ty++) {
            int64_t tap_row = (ci * kh + yk[ty]) * kw, pix_row = (int64_t)yo[ty] * wo;
            for (int64_t tx = 0; tx < nx; tx++) {
                float *restrict o = acc + (pix_row + xo[tx]) * c_out + co0;
                const float *restrict wt = wk + (tap_row + xk[tx]) * g_out;
                if (G && G % 8 == 0) {
                    /* Whole 8-float vectors: with a constant count GCC unrolled the plain loop
                     * into scalar adds instead of vectorising it (3x slower). */
                    for (int64_t k = 0; k < G; k += 8) {
                        if (BINARY) add8(o + k, wt + k);
                        else axpy8(o + k, v, wt + k);
                    }
                } else if (BINARY) {
                    for (int64_t k = 0; k < g_out; k++) o[k] += wt[k];
                } else {
                    for (int64_t k = 0; k < g_out; k++) o[k] += v * wt[k];
                }
            }
        }
    }
}

MULTI_TARGET static void conv_scatter_hwc(const Conv *c, const float *x, const int32_t *act, int64_t n) {
    memset(c->acc, 0, (size_t)(c->c_out * c->ho * c->wo) * sizeof(float));
    const int64_t g_out = c->c_out / c->groups;
    if (c->binary) {
        switch (g_out) {
        case 8: scatter_hwc_body(c, x, act, n, 8, 1); return;
        case 16: scatter_hwc_body(c, x, act, n, 16, 1); return;
        case 32: scatter_hwc_body(c, x, act, n, 32, 1); return;
        case 64: scatter_hwc_body(c, x, act, n, 64, 1); return;
        default: scatter_hwc_body(c, x, act, n, 0, 1); return;
        }
    }
    switch (g_out) {
    case 8: scatter_hwc_body(c, x, act, n, 8, 0); return;
    case 16: scatter_hwc_body(c, x, act, n, 16, 0); return;
    case 32: scatter_hwc_body(c, x, act, n, 32, 0); return;
    case 64: scatter_hwc_body(c, x, act, n, 64, 0); return;
    default: scatter_hwc_body(c, x, act, n, 0, 0); return;
    }
}

/* Direct convolution of one sample: for every output pixel, accumulate the taps over
 * the channels of each group into acc (HO, WO, C_out), contiguous over output channels. */
static void conv_direct_sample(const Conv *c, const float *x) {
    int64_t g_out = c->c_out / c->groups, c_in_g = c->c_in / c->groups;
    memset(c->acc, 0, (size_t)(c->c_out * c->ho * c->wo) * sizeof(float));
    for (int64_t ci = 0; ci < c->c_in; ci++) {
        int64_t co0 = (ci / c_in_g) * g_out;
        const float *xc = x + ci * c->h * c->w;
        for (int64_t iy = 0; iy < c->h; iy++) {
            const int32_t *yk = c->yk + iy * c->kh, *yo = c->yo + iy * c->kh;
            for (int64_t ty = 0; ty < c->ycount[iy]; ty++) {
                for (int64_t ix = 0; ix < c->w; ix++) {
                    float a = xc[iy * c->w + ix];
                    const int32_t *xk = c->xk + ix * c->kw, *xo = c->xo + ix * c->kw;
                    for (int64_t tx = 0; tx < c->xcount[ix]; tx++) {
                        float *o = c->acc + ((int64_t)yo[ty] * c->wo + xo[tx]) * c->c_out + co0;
                        const float *wt = c->wk + ((ci * c->kh + yk[ty]) * c->kw + xk[tx]) * g_out;
                        for (int64_t k = 0; k < g_out; k++) o[k] += a * wt[k];
                    }
                }
            }
        }
    }
}

static void op_conv(const int64_t *r) {
    /* [batch, c_in, h, w, c_out, ho, wo, kh, kw, groups, x, weight, wk, bias, out, binary, has_bias,
     *  acc (float ho*wo*c_out), ycount, yk, yo, xcount, xk, xo (int32 tap tables),
     *  pix, tap (int32), val (float) pair lists, group_end (int64 groups), nnz_limit,
     *  hwc_work (pair work above which the (HO, WO, C_out) route pays),
     *  act (int32 4 * (nnz_limit + 1)), act_start (int64 batch + 1), spike map of x|0] */
    Conv c = {r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11],
              CF32(r[12]), CF32(r[13]), CF32(r[14]), CF32(r[15]), F32(r[16]), F32(r[19]),
              (int)r[17], (int)r[18],
              I32(r[20]), I32(r[21]), I32(r[22]), I32(r[23]), I32(r[24]), I32(r[25]),
              I32(r[26]), I32(r[27]), F32(r[28]), I64(r[29]), r[30], r[31], I32(r[32]), I64(r[33]),
              (const uint64_t *)(intptr_t)r[34]};
    int64_t n_in = c.c_in * c.h * c.w, n_out = c.c_out * c.ho * c.wo;
    /* Same rule as dense: sparse when the whole batch has at most `limit` non-zeros. */
    int sparse = conv_active(&c) >= 0;
    for (int64_t b = 0; b < c.batch; b++) {
        const float *x = c.x + b * n_in;
        float *out = c.out + b * n_out;
        if (!sparse) {
            conv_direct_sample(&c, x);
            conv_hwc_to_chw(&c, out);
            continue;
        }
        const int32_t *act = c.act + 4 * c.act_start[b];
        int64_t n = c.act_start[b + 1] - c.act_start[b];
        /* Few pairs: scatter straight into (C_out, HO, WO), one channel plane at a time.
         * Many: scatter vectorised over channels into (HO, WO, C_out) and transpose once. */
        if (conv_pair_count(&c, act, n) * c.c_out > c.hwc_work) {
            conv_scatter_hwc(&c, x, act, n);
            conv_hwc_to_chw(&c, out);
        } else {
            conv_pairs(&c, x, act, n);
            conv_scatter_chw(&c, out);
        }
    }
}

/* ---- pooling ----------------------------------------------------------- */

static void op_pool(const int64_t *r) {
    /* [batch, c, h, w, ho, wo, kh, kw, sh, sw, ph, pw, x, out, recip (float bits), has_divisor] */
    int64_t batch = r[2], ch = r[3], h = r[4], w = r[5], ho = r[6], wo = r[7], kh = r[8], kw = r[9];
    int64_t sh = r[10], sw = r[11], ph = r[12], pw = r[13];
    const float *x = CF32(r[14]);
    float *out = F32(r[15]);
    float recip = bits_to_float(r[16]);
    int has_div = (int)r[17];
    for (int64_t bc = 0; bc < batch * ch; bc++) {
        const float *xp = x + bc * h * w;
        float *op = out + bc * ho * wo;
        for (int64_t oy = 0; oy < ho; oy++) {
            for (int64_t ox = 0; ox < wo; ox++) {
                /* numpy sums the window row by row over padded zeros: padding adds +0.0. */
                float s = 0.0f;
                for (int64_t ky = 0; ky < kh; ky++) {
                    int64_t iy = oy * sh + ky - ph;
                    for (int64_t kx = 0; kx < kw; kx++) {
                        int64_t ix = ox * sw + kx - pw;
                        float v = (iy < 0 || iy >= h || ix < 0 || ix >= w) ? 0.0f : xp[iy * w + ix];
                        s = (ky == 0 && kx == 0) ? v : s + v;
                    }
                }
                op[oy * wo + ox] = has_div ? s * recip : s;
            }
        }
    }
}

/* ---- neurons ----------------------------------------------------------- */

typedef struct {
    float a_syn, g_syn, a_w, c_w, b_w, a_v, k_v, g_v, g_w, g_x, h_w, v_leak, v_th, v_reset;
} Coef;

/* One neuron's update, in the numpy reference's order of float32 operations. */
static inline float neuron_update(int flags, float max_spikes, const Coef *k, float x, float *v, float *i, float *w,
                                  float *z, float *hold, float hold_steps) {
    float drive = x;
    if (flags & NF_SYNAPSE) {
        if (flags & NF_COUPLED) {
            drive = *i; /* the membrane sees the previous step's current (zoh, euler) */
        } else {
            float ii = *i * k->a_syn;
            ii = ii + k->g_syn * x;
            *i = ii;
            drive = ii;
        }
    }
    float ww = 0.0f;
    if (flags & NF_ADAPT) {
        ww = *w * k->a_w;
        ww = ww + k->c_w * (*v - k->v_leak);
        ww = ww + k->b_w * *z;
        if (flags & NF_ADAPT_INPUT) ww = ww + k->h_w * x;
        *w = ww;
    }
    float vn = k->a_v * *v + k->k_v;
    vn = vn + k->g_v * drive;
    if ((flags & NF_SYNAPSE) && (flags & NF_COUPLED)) {
        vn = vn + k->g_x * x;
        float ii = *i * k->a_syn;
        ii = ii + k->g_syn * x;
        *i = ii;
    }
    if (flags & NF_ADAPT) vn = vn - k->g_w * ww;
    if (!(flags & NF_SPIKING)) {
        *v = vn;
        return vn;
    }
    if (flags & NF_NEXT_STEP) {
        float zp = *z;
        if (flags & NF_SUBTRACT) vn = vn - zp * k->v_th;
        else if (zp != 0.0f) vn = k->v_reset;
    }
    float zn;
    if (flags & NF_MULTI) {
        /* Graded spikes: how many thresholds the membrane holds, as Sinabs' MultiSpike / Rockpool. */
        zn = floorf(vn / k->v_th);
        zn = zn < 0.0f ? 0.0f : (zn > max_spikes ? max_spikes : zn);
    } else if (flags & NF_INCLUSIVE) {
        zn = vn >= k->v_th ? 1.0f : 0.0f;
    } else {
        zn = vn > k->v_th ? 1.0f : 0.0f;
    }
    if (flags & NF_HOLD) {
        /* A neuron still holding may not fire; one that fires now holds for hold_steps steps. */
        if (*hold > 0.0f) {
            zn = 0.0f;
            *hold = *hold - 1.0f;
        }
        if (zn != 0.0f) *hold = hold_steps;
    }
    *z = zn;
    if (!(flags & NF_NEXT_STEP)) {
        if (flags & NF_SUBTRACT) vn = vn - zn * k->v_th;
        else if (zn != 0.0f) vn = k->v_reset;
    }
    *v = vn;
    return zn;
}

/* The specialisation the benchmarks and most models hit: LIF/IF/LI without synapse or
 * adaptation, immediate reset, coefficients shared by all neurons. A branch-free loop
 * the compiler vectorises. */
MULTI_TARGET static void neuron_plain_scalar(int flags, const Coef *k, int64_t n, const float *x, float *out, float *v, float *z) {
    float a_v = k->a_v, k_v = k->k_v, g_v = k->g_v, th = k->v_th, vr = k->v_reset;
    if (!(flags & NF_SPIKING)) {
        for (int64_t j = 0; j < n; j++) {
            float vn = a_v * v[j] + k_v;
            vn = vn + g_v * x[j];
            v[j] = vn;
            out[j] = vn;
        }
    } else if (flags & NF_SUBTRACT) {
        for (int64_t j = 0; j < n; j++) {
            float vn = a_v * v[j] + k_v;
            vn = vn + g_v * x[j];
            float zn = vn > th ? 1.0f : 0.0f;
            v[j] = vn - zn * th;
            z[j] = zn;
            out[j] = zn;
        }
    } else {
        for (int64_t j = 0; j < n; j++) {
            float vn = a_v * v[j] + k_v;
            vn = vn + g_v * x[j];
            int fired = vn > th;
            v[j] = fired ? vr : vn;
            z[j] = fired ? 1.0f : 0.0f;
            out[j] = fired ? 1.0f : 0.0f;
        }
    }
}

static void op_neuron(const int64_t *r) {
    /* [batch, n, flags, x, out, v, i|0, w|0, z,
     *  a_syn, g_syn, a_w, c_w, b_w, a_v, k_v, g_v, g_w, g_x, h_w, v_leak, v_th, v_reset (per-neuron arrays, or
     *  1-element arrays with NF_SCALAR), hold|0, hold_steps, spike map of out|0] */
    int64_t batch = r[2], n = r[3];
    int flags = (int)r[4];
    const float *x = CF32(r[5]);
    float *out = F32(r[6]), *v = F32(r[7]), *ia = F32(r[8]), *wa = F32(r[9]), *z = F32(r[10]);
    const float *c[14];
    for (int q = 0; q < 14; q++) c[q] = CF32(r[11 + q]);
    int scalar = flags & NF_SCALAR;
    int plain = scalar && !(flags & (NF_SYNAPSE | NF_ADAPT | NF_NEXT_STEP | NF_INCLUSIVE | NF_MULTI | NF_HOLD));
    float *hold = F32(r[25]);
    float hold_steps = (float)r[26];
    uint64_t *map = (uint64_t *)(intptr_t)r[27];
    const int64_t words = map_words(n);
    float max_spikes = (float)(r[4] >> NF_MAX_SHIFT);
    Coef k = {0};
    if (scalar) k = (Coef){c[0][0], c[1][0], c[2][0], c[3][0], c[4][0], c[5][0], c[6][0],
                            c[7][0], c[8][0], c[9][0], c[10][0], c[11][0], c[12][0], c[13][0]};
    for (int64_t b = 0; b < batch; b++) {
        int64_t o = b * n;
        if (plain) {
            if (!map) {
                neuron_plain_scalar(flags, &k, n, x + o, out + o, v + o, z + o);
                continue;
            }
            /* Blocks of 1024 neurons: each block's map is taken while its output is in L1. */
            for (int64_t j = 0; j < n; j += 1024) {
                const int64_t len = n - j < 1024 ? n - j : 1024;
                neuron_plain_scalar(flags, &k, len, x + o + j, out + o + j, v + o + j, z + o + j);
                spike_map(out + o + j, len, map + b * words + j / 64);
            }
            continue;
        }
        float dummy_i = 0.0f, dummy_w = 0.0f, dummy_hold = 0.0f;
        for (int64_t j = 0; j < n; j++) {
            if (!scalar)
                k = (Coef){c[0][j], c[1][j], c[2][j], c[3][j], c[4][j], c[5][j], c[6][j],
                           c[7][j], c[8][j], c[9][j], c[10][j], c[11][j], c[12][j], c[13][j]};
            float *ip = (flags & NF_SYNAPSE) ? ia + o + j : &dummy_i;
            float *wp = (flags & NF_ADAPT) ? wa + o + j : &dummy_w;
            float *hp = (flags & NF_HOLD) ? hold + o + j : &dummy_hold;
            out[o + j] = neuron_update(flags, max_spikes, &k, x[o + j], v + o + j, ip, wp, z + o + j, hp, hold_steps);
        }
        if (map) spike_map(out + o, n, map + b * words);
    }
}

/* ---- the Program type ---------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    int64_t *code;
    Py_ssize_t ncode;
    Py_ssize_t nops;
    int release_gil;
    PyObject *keep; /* tuple of the arrays whose memory the records point into */
} Program;

static void run_code(const int64_t *code, Py_ssize_t ncode) {
    Py_ssize_t pc = 0;
    while (pc < ncode) {
        const int64_t *r = code + pc;
        switch (r[0]) {
        case OP_SUM: op_sum(r); break;
        case OP_COPY: op_copy(r); break;
        case OP_DENSE: op_dense(r); break;
        case OP_CONV: op_conv(r); break;
        case OP_POOL: op_pool(r); break;
        case OP_SCALE: op_scale(r); break;
        case OP_THRESHOLD: op_threshold(r); break;
        case OP_DELAY: op_delay(r); break;
        case OP_NEURON: op_neuron(r); break;
        default: return; /* unreachable: records are checked in Program_new */
        }
        pc += r[1];
    }
}

static PyObject *Program_run(Program *self, PyObject *Py_UNUSED(ignored)) {
    if (self->release_gil) {
        Py_BEGIN_ALLOW_THREADS
        run_code(self->code, self->ncode);
        Py_END_ALLOW_THREADS
    } else {
        run_code(self->code, self->ncode);
    }
    Py_RETURN_NONE;
}

/* One copy per step of a whole-sequence run: nbytes between a step buffer and step t of a
 * sequence, which starts stride bytes after step t - 1 (a batch slice of (steps, batch, ...)). */
typedef struct {
    char *buf, *seq;
    int64_t nbytes, stride;
} Copy;

static int parse_copies(PyObject *obj, const char *what, Py_buffer *view, Copy **copies, Py_ssize_t *n) {
    if (PyObject_GetBuffer(obj, view, PyBUF_SIMPLE) < 0) return -1;
    if (view->len % (Py_ssize_t)sizeof(Copy)) {
        PyBuffer_Release(view);
        PyErr_Format(PyExc_ValueError, "%s: expected int64 rows (buffer, sequence, nbytes, stride)", what);
        return -1;
    }
    *n = view->len / (Py_ssize_t)sizeof(Copy);
    *copies = (Copy *)view->buf;
    for (Py_ssize_t q = 0; q < *n; q++) {
        if ((*copies)[q].nbytes < 0 || (*copies)[q].stride < (*copies)[q].nbytes || !(*copies)[q].buf ||
            !(*copies)[q].seq) {
            PyBuffer_Release(view);
            PyErr_Format(PyExc_ValueError, "%s[%zd]: null address, negative size or stride below size", what, q);
            return -1;
        }
    }
    return 0;
}

/* An input read in place: record field code[field] holds input q's buffer address and only
 * reads it, so each step points it at step t of the sequence instead of copying the step in. */
typedef struct {
    int64_t q, field;
} Alias;

#define MAX_ALIASES 64

typedef struct {
    Program *program;
    Py_ssize_t steps;
    Copy *ins;
    Py_ssize_t n_in;
    Copy *outs;
    Py_ssize_t n_out;
    const Alias *alias;
    Py_ssize_t n_alias;
} Job;

static void run_job(const Job *j) {
    unsigned char aliased[MAX_ALIASES] = {0}; /* by input index, for the first MAX_ALIASES inputs */
    for (Py_ssize_t a = 0; a < j->n_alias; a++) aliased[j->alias[a].q] = 1;
    int64_t *code = j->program->code;
    for (Py_ssize_t t = 0; t < j->steps; t++) {
        for (Py_ssize_t q = 0; q < j->n_in; q++)
            if (q >= MAX_ALIASES || !aliased[q])
                memcpy(j->ins[q].buf, j->ins[q].seq + t * j->ins[q].stride, (size_t)j->ins[q].nbytes);
        for (Py_ssize_t a = 0; a < j->n_alias; a++) {
            const Copy *c = &j->ins[j->alias[a].q];
            code[j->alias[a].field] = (int64_t)(intptr_t)(c->seq + t * c->stride);
        }
        run_code(code, j->program->ncode);
        for (Py_ssize_t q = 0; q < j->n_out; q++)
            memcpy(j->outs[q].seq + t * j->outs[q].stride, j->outs[q].buf, (size_t)j->outs[q].nbytes);
    }
    /* Back to the buffers, which end as the copying loop leaves them: holding the last step. */
    for (Py_ssize_t a = 0; a < j->n_alias; a++) code[j->alias[a].field] = (int64_t)(intptr_t)j->ins[j->alias[a].q].buf;
    if (j->steps > 0)
        for (Py_ssize_t q = 0; q < j->n_in && q < MAX_ALIASES; q++)
            if (aliased[q])
                memcpy(j->ins[q].buf, j->ins[q].seq + (j->steps - 1) * j->ins[q].stride, (size_t)j->ins[q].nbytes);
}

/* Parse and check an alias table (int64 pairs) against a job's inputs and its program. */
static int parse_aliases(PyObject *obj, Py_buffer *view, Job *job) {
    job->alias = NULL;
    job->n_alias = 0;
    if (obj == NULL || obj == Py_None) return 0;
    if (PyObject_GetBuffer(obj, view, PyBUF_SIMPLE) < 0) return -1;
    if (view->len % (Py_ssize_t)sizeof(Alias)) {
        PyBuffer_Release(view);
        PyErr_SetString(PyExc_ValueError, "aliases: expected int64 pairs");
        return -1;
    }
    const Alias *al = (const Alias *)view->buf;
    Py_ssize_t n = view->len / (Py_ssize_t)sizeof(Alias);
    for (Py_ssize_t a = 0; a < n; a++) {
        const Alias *x = &al[a];
        /* The field must hold exactly that input's buffer address now: nothing else gets redirected. */
        if (x->q < 0 || x->q >= job->n_in || x->q >= MAX_ALIASES || x->field < 2 ||
            x->field >= job->program->ncode ||
            job->program->code[x->field] != (int64_t)(intptr_t)job->ins[x->q].buf) {
            PyBuffer_Release(view);
            PyErr_SetString(PyExc_ValueError, "aliases: a field that does not hold its input's buffer");
            return -1;
        }
    }
    job->alias = al;
    job->n_alias = n;
    return 1;
}

static PyTypeObject ProgramType;

/* run_steps(steps, ins, outs[, aliases]): for t < steps, copy step t of every input sequence
 * into its buffer, run one step, copy every output buffer into step t of its sequence. An input
 * with aliases is not copied: the record fields that read it point at step t instead, and at the
 * end its buffer gets the last step. The caller (Session.run) checks that every sequence holds
 * steps * nbytes and keeps it alive; _native.py lists only fields its ops read. */
static PyObject *Program_run_steps(Program *self, PyObject *args) {
    Py_ssize_t steps;
    PyObject *ins_obj, *outs_obj, *alias_obj = NULL;
    if (!PyArg_ParseTuple(args, "nOO|O", &steps, &ins_obj, &outs_obj, &alias_obj)) return NULL;
    if (steps < 0) {
        PyErr_SetString(PyExc_ValueError, "steps: expected >= 0");
        return NULL;
    }
    Py_buffer in_view, out_view;
    Copy *ins, *outs;
    Py_ssize_t n_in, n_out;
    if (parse_copies(ins_obj, "ins", &in_view, &ins, &n_in) < 0) return NULL;
    if (parse_copies(outs_obj, "outs", &out_view, &outs, &n_out) < 0) {
        PyBuffer_Release(&in_view);
        return NULL;
    }
    Job job = {self, steps, ins, n_in, outs, n_out, NULL, 0};
    Py_buffer alias_view;
    int have_alias = parse_aliases(alias_obj, &alias_view, &job);
    if (have_alias < 0) {
        PyBuffer_Release(&in_view);
        PyBuffer_Release(&out_view);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    run_job(&job);
    Py_END_ALLOW_THREADS
    if (have_alias) PyBuffer_Release(&alias_view);
    PyBuffer_Release(&in_view);
    PyBuffer_Release(&out_view);
    Py_RETURN_NONE;
}

static void *run_job_thread(void *arg) {
    run_job((const Job *)arg);
    return NULL;
}

#define MAX_JOBS 64

/* run_parallel(steps, jobs): jobs is a sequence of (Program, ins, outs[, aliases]) over disjoint memory
 * (slices of one batch); each runs run_steps on its own thread, the first on the caller's. */
static PyObject *run_parallel(PyObject *Py_UNUSED(module), PyObject *args) {
    Py_ssize_t steps;
    PyObject *seq;
    if (!PyArg_ParseTuple(args, "nO", &steps, &seq)) return NULL;
    PyObject *fast = PySequence_Fast(seq, "jobs: expected a sequence of (Program, ins, outs)");
    if (!fast) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    if (steps < 0 || n < 1 || n > MAX_JOBS) {
        Py_DECREF(fast);
        PyErr_Format(PyExc_ValueError, "expected steps >= 0 and 1 to %d jobs", MAX_JOBS);
        return NULL;
    }
    Job jobs[MAX_JOBS];
    Py_buffer views[3 * MAX_JOBS];
    Py_ssize_t held = 0;
    int failed = 0;
    for (Py_ssize_t q = 0; q < n && !failed; q++) {
        PyObject *item = PySequence_Fast_GET_ITEM(fast, q);
        PyObject *prog, *ins, *outs, *aliases = NULL;
        if (!PyArg_ParseTuple(item, "O!OO|O", &ProgramType, &prog, &ins, &outs, &aliases)) {
            failed = 1;
            break;
        }
        jobs[q].program = (Program *)prog;
        jobs[q].steps = steps;
        if (parse_copies(ins, "ins", &views[held], &jobs[q].ins, &jobs[q].n_in) < 0) {
            failed = 1;
            break;
        }
        held++;
        if (parse_copies(outs, "outs", &views[held], &jobs[q].outs, &jobs[q].n_out) < 0) {
            failed = 1;
            break;
        }
        held++;
        int got = parse_aliases(aliases, &views[held], &jobs[q]);
        if (got < 0) {
            failed = 1;
            break;
        }
        held += got;
    }
    if (!failed) {
        pthread_t threads[MAX_JOBS];
        int started[MAX_JOBS] = {0};
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t q = 1; q < n; q++) started[q] = pthread_create(&threads[q], NULL, run_job_thread, &jobs[q]) == 0;
        run_job(&jobs[0]);
        for (Py_ssize_t q = 1; q < n; q++) {
            if (started[q]) pthread_join(threads[q], NULL);
            else run_job(&jobs[q]); /* no thread to be had: run that slice here */
        }
        Py_END_ALLOW_THREADS
    }
    for (Py_ssize_t q = 0; q < held; q++) PyBuffer_Release(&views[q]);
    Py_DECREF(fast);
    if (failed) return NULL;
    Py_RETURN_NONE;
}

static void Program_dealloc(Program *self) {
    PyMem_Free(self->code);
    Py_XDECREF(self->keep);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Program(code, keep, release_gil): code is a buffer of int64 records, keep a tuple. */
static PyObject *Program_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"code", "keep", "release_gil", NULL};
    Py_buffer view;
    PyObject *keep;
    int release_gil = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "y*O!|p", kwlist, &view, &PyTuple_Type, &keep, &release_gil))
        return NULL;
    if (view.len % (Py_ssize_t)sizeof(int64_t)) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "code: expected a whole number of int64 values");
        return NULL;
    }
    Py_ssize_t ncode = view.len / (Py_ssize_t)sizeof(int64_t);
    int64_t *code = PyMem_Malloc(ncode ? (size_t)view.len : 1);
    if (!code) {
        PyBuffer_Release(&view);
        return PyErr_NoMemory();
    }
    memcpy(code, view.buf, (size_t)view.len);
    PyBuffer_Release(&view);
    /* Check the record framing so a malformed program fails here, not inside a step. */
    Py_ssize_t pc = 0, nops = 0;
    while (pc < ncode) {
        int64_t op = code[pc];
        int64_t len = pc + 1 < ncode ? code[pc + 1] : 0;
        int64_t want = (op >= OP_SUM && op <= OP_NEURON) ? RECORD_LEN[op] : -1;
        if (op == OP_SUM && len >= 6 && pc + 4 < ncode) want = 5 + code[pc + 4];
        if (want <= 2 || len != want || pc + len > ncode) {
            PyMem_Free(code);
            PyErr_Format(PyExc_ValueError, "code[%zd]: malformed record (opcode %lld, length %lld)", pc, (long long)op,
                         (long long)len);
            return NULL;
        }
        pc += len;
        nops++;
    }
    Program *self = (Program *)type->tp_alloc(type, 0);
    if (!self) {
        PyMem_Free(code);
        return NULL;
    }
    self->code = code;
    self->ncode = ncode;
    self->nops = nops;
    self->release_gil = release_gil;
    Py_INCREF(keep);
    self->keep = keep;
    return (PyObject *)self;
}

static PyObject *Program_get_nops(Program *self, void *Py_UNUSED(closure)) { return PyLong_FromSsize_t(self->nops); }

static PyObject *Program_get_code(Program *self, void *Py_UNUSED(closure)) {
    return PyBytes_FromStringAndSize((const char *)self->code, self->ncode * (Py_ssize_t)sizeof(int64_t));
}

static PyMethodDef Program_methods[] = {
    {"run", (PyCFunction)Program_run, METH_NOARGS, "Run one step of every op in the program."},
    {"run_steps", (PyCFunction)Program_run_steps, METH_VARARGS,
     "run_steps(steps, ins, outs[, aliases]): run steps steps, copying inputs in and outputs out at each."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Program_getset[] = {
    {"nops", (getter)Program_get_nops, NULL, "Number of ops in the program.", NULL},
    {"code", (getter)Program_get_code, NULL, "A copy of the program's records (int64 bytes).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject ProgramType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "edgesnn.engine._ckernels.Program",
    .tp_basicsize = sizeof(Program),
    .tp_dealloc = (destructor)Program_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A compiled sequence of native ops; run() executes one step.",
    .tp_methods = Program_methods,
    .tp_getset = Program_getset,
    .tp_new = Program_new,
};

static PyMethodDef module_methods[] = {
    {"run_parallel", (PyCFunction)run_parallel, METH_VARARGS,
     "run_parallel(steps, jobs): run_steps of each (Program, ins, outs) job on its own thread."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef ckernels_module = {
    PyModuleDef_HEAD_INIT, "_ckernels", "Native step kernels of the edgesnn engine.", -1, module_methods, NULL, NULL,
    NULL, NULL,
};

PyMODINIT_FUNC PyInit__ckernels(void) {
    if (PyType_Ready(&ProgramType) < 0) return NULL;
    PyObject *m = PyModule_Create(&ckernels_module);
    if (!m) return NULL;
    Py_INCREF(&ProgramType);
    if (PyModule_AddObject(m, "Program", (PyObject *)&ProgramType) < 0) {
        Py_DECREF(&ProgramType);
        Py_DECREF(m);
        return NULL;
    }
    static const char *names[] = {"OP_SUM", "OP_COPY", "OP_DENSE", "OP_CONV", "OP_POOL",
                                  "OP_SCALE", "OP_THRESHOLD", "OP_DELAY", "OP_NEURON"};
    for (int q = 0; q < 9; q++)
        if (PyModule_AddIntConstant(m, names[q], q + 1) < 0) return NULL;
    static const char *flag_names[] = {"NF_SPIKING", "NF_SYNAPSE", "NF_ADAPT", "NF_SUBTRACT", "NF_NEXT_STEP", "NF_SCALAR",
                                       "NF_INCLUSIVE", "NF_MULTI", "NF_HOLD", "NF_COUPLED", "NF_ADAPT_INPUT"};
    for (int q = 0; q < 11; q++)
        if (PyModule_AddIntConstant(m, flag_names[q], 1 << q) < 0) return NULL;
    if (PyModule_AddIntConstant(m, "NF_MAX_SHIFT", NF_MAX_SHIFT) < 0) return NULL;
    return m;
}
