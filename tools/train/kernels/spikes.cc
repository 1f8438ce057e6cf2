// Products with spike matrices for the trainer, as XLA FFI custom calls on the CPU.
//
// A layer's input current over a whole sequence is x (R = T*B, C) @ wt (C, N), and its weight
// gradient x^T @ g; with spikes most of x is zero, so both visit only the non-zeros of x (one scan of
// each row for its non-zero columns, then one row of wt or of the output per non-zero). Built on
// first use by tools/train/native.py against the headers jaxlib ships (jax.ffi.include_dir()).
//
// Sparse BPTT (further down) keeps spikes as capacity-bounded id buffers instead: one pass lists them,
// and the forward current, the weight gradient and the input gradient each visit only the listed ids.
#include <cstdint>
#ifdef __AVX512F__
#include <immintrin.h>
#endif
#include <cstring>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

void ListRow(const float* row, const uint8_t* near, int64_t c, int32_t* ids, int32_t* gids, int64_t* ns,
             int64_t* ng);

// Columns of row[0:c] that are not zero (NaN counts as non-zero, as in a dense product; -0 as zero);
// idx holds c + 16.
int64_t NonZero(const float* row, int64_t c, int32_t* idx) {
  int64_t k, g;
  ListRow(row, nullptr, c, idx, nullptr, &k, &g);
  return k;
}

ffi::Error SpikeMatmulImpl(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> wt, ffi::ResultBuffer<ffi::F32> out) {
  auto xd = x.dimensions();
  auto wd = wt.dimensions();
  if (xd.size() != 2 || wd.size() != 2 || xd[1] != wd[0]) {
    return ffi::Error::InvalidArgument("spike_matmul: expected x (R, C) and wt (C, N)");
  }
  const int64_t r = xd[0], c = xd[1], n = wd[1];
  const float* xp = x.typed_data();
  const float* wp = wt.typed_data();
  float* op = out->typed_data();
  std::vector<int32_t> idx(c + 16);
  for (int64_t i = 0; i < r; i++) {
    const float* row = xp + i * c;
    float* o = op + i * n;
    const int64_t k = NonZero(row, c, idx.data());
    std::memset(o, 0, static_cast<size_t>(n) * sizeof(float));
    int64_t q = 0;
    for (; q + 4 <= k; q += 4) {  // four rows of wt per pass over the output row
      const float *r0 = wp + idx[q] * n, *r1 = wp + idx[q + 1] * n, *r2 = wp + idx[q + 2] * n,
                  *r3 = wp + idx[q + 3] * n;
      const float a0 = row[idx[q]], a1 = row[idx[q + 1]], a2 = row[idx[q + 2]], a3 = row[idx[q + 3]];
      for (int64_t j = 0; j < n; j++) o[j] += a0 * r0[j] + a1 * r1[j] + a2 * r2[j] + a3 * r3[j];
    }
    for (; q < k; q++) {
      const float* r0 = wp + idx[q] * n;
      const float a0 = row[idx[q]];
      for (int64_t j = 0; j < n; j++) o[j] += a0 * r0[j];
    }
  }
  return ffi::Error::Success();
}

ffi::Error SpikeOuterImpl(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> g, ffi::ResultBuffer<ffi::F32> out) {
  auto xd = x.dimensions();
  auto gd = g.dimensions();
  if (xd.size() != 2 || gd.size() != 2 || xd[0] != gd[0]) {
    return ffi::Error::InvalidArgument("spike_outer: expected x (R, C) and g (R, N)");
  }
  const int64_t r = xd[0], c = xd[1], n = gd[1];
  const float* xp = x.typed_data();
  const float* gp = g.typed_data();
  float* op = out->typed_data();
  std::memset(op, 0, static_cast<size_t>(c * n) * sizeof(float));
  std::vector<int32_t> idx(c + 16);
  for (int64_t i = 0; i < r; i++) {
    const float* row = xp + i * c;
    const float* gr = gp + i * n;
    const int64_t k = NonZero(row, c, idx.data());
    for (int64_t q = 0; q < k; q++) {
      const float a = row[idx[q]];
      float* o = op + idx[q] * n;
      for (int64_t j = 0; j < n; j++) o[j] += a * gr[j];
    }
  }
  return ffi::Error::Success();
}


// The columns of row[0:c] that are spikes (non-zero; NaN too, -0 not) into ids, then those that are only
// listed by near (non-zero near, zero x) into gids; returns the two counts. ids and gids hold c + 16.
void ListRow(const float* row, const uint8_t* near, int64_t c, int32_t* ids, int32_t* gids, int64_t* ns,
             int64_t* ng) {
  int64_t k = 0, g = 0, j = 0;
#ifdef __AVX512F__
  // sixteen columns per step: a mask of the non-zeros (and of the near-only ones), compressed into
  // a vector register and stored whole (a compressing store to memory is slow on some cores)
  const __m512i magnitude = _mm512_set1_epi32(0x7fffffff);
  const __m512i step = _mm512_set1_epi32(16);
  __m512i col = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  for (; j + 16 <= c; j += 16, col = _mm512_add_epi32(col, step)) {
    const __m512i bits = _mm512_loadu_si512(row + j);
    const __mmask16 nz = _mm512_test_epi32_mask(bits, magnitude);
    if (nz) {
      _mm512_storeu_si512(ids + k, _mm512_maskz_compress_epi32(nz, col));
      k += __builtin_popcount(nz);
    }
    if (near) {
      const __m128i m = _mm_loadu_si128(reinterpret_cast<const __m128i*>(near + j));
      const __mmask16 only = static_cast<__mmask16>(_mm_test_epi8_mask(m, m) & ~nz);
      if (only) {
        _mm512_storeu_si512(gids + g, _mm512_maskz_compress_epi32(only, col));
        g += __builtin_popcount(only);
      }
    }
  }
#endif
  for (; j < c; j++) {
    uint32_t bits;
    std::memcpy(&bits, row + j, sizeof(bits));
    if (bits & 0x7fffffffu) {
      ids[k++] = static_cast<int32_t>(j);
    } else if (near && near[j]) {
      gids[g++] = static_cast<int32_t>(j);
    }
  }
  *ns = k;
  *ng = g;
}

// -- capacity-bounded spike buffers (sparse BPTT, tools/train/native.py sparse_project) -------------
//
// A buffer row holds, for one (step, sample), at most K neuron ids: first the spikes (non-zero x, with
// their values), then the neurons whose surrogate gradient is non-zero without a spike (near != 0),
// the second threshold's list. Spikes past K are dropped, then gradient entries past what the spikes
// leave; both are counted. counts[r] = (spikes kept, entries kept); tally = (spikes seen, spikes
// dropped, gradient entries seen, gradient entries dropped) over all rows.
ffi::Error SpikeBufferImpl(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::U8> near, ffi::ResultBuffer<ffi::S32> ids,
                           ffi::ResultBuffer<ffi::F32> vals, ffi::ResultBuffer<ffi::S32> counts,
                           ffi::ResultBuffer<ffi::S32> tally) {
  auto xd = x.dimensions();
  auto nd = near.dimensions();
  auto id = ids->dimensions();
  const bool gate = nd.size() == 2;
  if (xd.size() != 2 || id.size() != 2 || id[0] != xd[0] || (gate && (nd[0] != xd[0] || nd[1] != xd[1]))) {
    return ffi::Error::InvalidArgument("spike_buffer: expected x (R, C), near (R, C) or (0,), ids (R, K)");
  }
  const int64_t r = xd[0], c = xd[1], cap = id[1];
  const float* xp = x.typed_data();
  const uint8_t* np_ = gate ? near.typed_data() : nullptr;
  int32_t* ip = ids->typed_data();
  float* vp = vals->typed_data();
  int32_t* cp = counts->typed_data();
  int64_t seen = 0, dropped = 0, gseen = 0, gdropped = 0;
  std::vector<int32_t> spk(c + 16), only(c + 16);
  for (int64_t i = 0; i < r; i++) {
    const float* row = xp + i * c;
    int32_t* rid = ip + i * cap;
    float* rv = vp + i * cap;
    int64_t k, g;
    ListRow(row, gate ? np_ + i * c : nullptr, c, spk.data(), only.data(), &k, &g);
    const int64_t ns = k < cap ? k : cap;
    const int64_t nt = ns + g < cap ? ns + g : cap;
    for (int64_t q = 0; q < ns; q++) {
      rid[q] = spk[q];
      rv[q] = row[spk[q]];
    }
    for (int64_t q = ns; q < nt; q++) {
      rid[q] = only[q - ns];
      rv[q] = 0.0f;
    }
    for (int64_t q = nt; q < cap; q++) {  // defined contents past the count (the buffers are residuals)
      rid[q] = 0;
      rv[q] = 0.0f;
    }
    seen += k;
    dropped += k - ns;
    gseen += g;
    gdropped += g - (nt - ns);
    cp[2 * i] = static_cast<int32_t>(ns);
    cp[2 * i + 1] = static_cast<int32_t>(nt);
  }
  int32_t* tp = tally->typed_data();
  tp[0] = static_cast<int32_t>(seen);
  tp[1] = static_cast<int32_t>(dropped);
  tp[2] = static_cast<int32_t>(gseen);
  tp[3] = static_cast<int32_t>(gdropped);
  return ffi::Error::Success();
}

bool BufferShapes(const ffi::Buffer<ffi::S32>& ids, const ffi::Buffer<ffi::S32>& counts, int64_t rows) {
  auto id = ids.dimensions();
  auto cd = counts.dimensions();
  return id.size() == 2 && id[0] == rows && cd.size() == 2 && cd[0] == rows && cd[1] == 2;
}

// Whether every listed id (the first counts[r][which] of row r) is a row of a (c, n) matrix and
// every count fits the buffer: checked once, so that the products' loops carry no exits.
bool ValidIds(const ffi::Buffer<ffi::S32>& ids, const ffi::Buffer<ffi::S32>& counts, int which, int64_t c) {
  const int64_t r = ids.dimensions()[0], cap = ids.dimensions()[1];
  const int32_t* ip = ids.typed_data();
  const int32_t* cp = counts.typed_data();
  for (int64_t i = 0; i < r; i++) {
    const int32_t k = cp[2 * i + which];
    if (k < 0 || k > cap) return false;
    for (int32_t q = 0; q < k; q++) {
      if (ip[i * cap + q] < 0 || ip[i * cap + q] >= c) return false;
    }
  }
  return true;
}

// out[r] = sum over the spikes of row r of vals * wt[id]: the forward current, no zero visited.
ffi::Error GatherAccumulateImpl(ffi::Buffer<ffi::S32> ids, ffi::Buffer<ffi::F32> vals, ffi::Buffer<ffi::S32> counts,
                                ffi::Buffer<ffi::F32> wt, ffi::ResultBuffer<ffi::F32> out) {
  auto wd = wt.dimensions();
  const int64_t r = ids.dimensions()[0];
  if (wd.size() != 2 || !BufferShapes(ids, counts, r)) {
    return ffi::Error::InvalidArgument("gather_accumulate: expected ids (R, K), counts (R, 2), wt (C, N)");
  }
  const int64_t cap = ids.dimensions()[1], c = wd[0], n = wd[1];
  if (!ValidIds(ids, counts, 0, c)) return ffi::Error::InvalidArgument("gather_accumulate: an id or count is out of range");
  const int32_t* ip = ids.typed_data();
  const float* vp = vals.typed_data();
  const int32_t* cp = counts.typed_data();
  const float* wp = wt.typed_data();
  float* op = out->typed_data();
  for (int64_t i = 0; i < r; i++) {
    const int32_t* rid = ip + i * cap;
    const float* rv = vp + i * cap;
    const int64_t k = cp[2 * i];
    float* o = op + i * n;
    std::memset(o, 0, static_cast<size_t>(n) * sizeof(float));
    int64_t q = 0;
    for (; q + 4 <= k; q += 4) {  // four rows of wt per pass over the output row
      const float *r0 = wp + rid[q] * n, *r1 = wp + rid[q + 1] * n, *r2 = wp + rid[q + 2] * n,
                  *r3 = wp + rid[q + 3] * n;
      const float a0 = rv[q], a1 = rv[q + 1], a2 = rv[q + 2], a3 = rv[q + 3];
      for (int64_t j = 0; j < n; j++) o[j] += a0 * r0[j] + a1 * r1[j] + a2 * r2[j] + a3 * r3[j];
    }
    for (; q < k; q++) {
      const float* r0 = wp + rid[q] * n;
      const float a0 = rv[q];
      for (int64_t j = 0; j < n; j++) o[j] += a0 * r0[j];
    }
  }
  return ffi::Error::Success();
}

// dwt[id] += vals * g[r] over the spikes of every row: the weight gradient (C = the rows of dwt, an attribute).
ffi::Error ScatterOuterImpl(ffi::Buffer<ffi::S32> ids, ffi::Buffer<ffi::F32> vals, ffi::Buffer<ffi::S32> counts,
                            ffi::Buffer<ffi::F32> g, ffi::ResultBuffer<ffi::F32> out) {
  auto gd = g.dimensions();
  auto od = out->dimensions();
  const int64_t r = ids.dimensions()[0];
  if (gd.size() != 2 || gd[0] != r || od.size() != 2 || od[1] != gd[1] || !BufferShapes(ids, counts, r)) {
    return ffi::Error::InvalidArgument("scatter_outer: expected ids (R, K), counts (R, 2), g (R, N)");
  }
  const int64_t cap = ids.dimensions()[1], c = od[0], n = gd[1];
  if (!ValidIds(ids, counts, 0, c)) return ffi::Error::InvalidArgument("scatter_outer: an id or count is out of range");
  const int32_t* ip = ids.typed_data();
  const float* vp = vals.typed_data();
  const int32_t* cp = counts.typed_data();
  const float* gp = g.typed_data();
  float* op = out->typed_data();
  std::memset(op, 0, static_cast<size_t>(c * n) * sizeof(float));
  for (int64_t i = 0; i < r; i++) {
    const int32_t* rid = ip + i * cap;
    const float* rv = vp + i * cap;
    const float* gr = gp + i * n;
    const int64_t k = cp[2 * i];
    for (int64_t q = 0; q < k; q++) {
      const float a = rv[q];
      float* o = op + rid[q] * n;
      for (int64_t j = 0; j < n; j++) o[j] += a * gr[j];
    }
  }
  return ffi::Error::Success();
}

// Four dot products of a with b0..b3 in one pass over a (each partial sum in its own vector lane
// group, so the compiler vectorises without reassociating a single sum).
void Dot4(const float* __restrict__ a, const float* __restrict__ b0, const float* __restrict__ b1,
          const float* __restrict__ b2, const float* __restrict__ b3, int64_t n, float* out) {
  float s0[16] = {0}, s1[16] = {0}, s2[16] = {0}, s3[16] = {0};
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    for (int q = 0; q < 16; q++) {
      const float x = a[j + q];
      s0[q] += x * b0[j + q];
      s1[q] += x * b1[j + q];
      s2[q] += x * b2[j + q];
      s3[q] += x * b3[j + q];
    }
  }
  float t0 = 0.0f, t1 = 0.0f, t2 = 0.0f, t3 = 0.0f;
  for (int q = 0; q < 16; q++) {
    t0 += s0[q];
    t1 += s1[q];
    t2 += s2[q];
    t3 += s3[q];
  }
  for (; j < n; j++) {
    t0 += a[j] * b0[j];
    t1 += a[j] * b1[j];
    t2 += a[j] * b2[j];
    t3 += a[j] * b3[j];
  }
  out[0] = t0;
  out[1] = t1;
  out[2] = t2;
  out[3] = t3;
}

// dx[r, id] = g[r] . wt[id] for every entry of row r (spikes and gradient entries), zero elsewhere: the
// input gradient where the input's surrogate gradient can be non-zero.
ffi::Error GatherDotImpl(ffi::Buffer<ffi::S32> ids, ffi::Buffer<ffi::S32> counts, ffi::Buffer<ffi::F32> g,
                         ffi::Buffer<ffi::F32> wt, ffi::ResultBuffer<ffi::F32> out) {
  auto gd = g.dimensions();
  auto wd = wt.dimensions();
  const int64_t r = ids.dimensions()[0];
  if (gd.size() != 2 || gd[0] != r || wd.size() != 2 || wd[1] != gd[1] || !BufferShapes(ids, counts, r)) {
    return ffi::Error::InvalidArgument("gather_dot: expected ids (R, K), counts (R, 2), g (R, N), wt (C, N)");
  }
  const int64_t cap = ids.dimensions()[1], c = wd[0], n = wd[1];
  if (!ValidIds(ids, counts, 1, c)) return ffi::Error::InvalidArgument("gather_dot: an id or count is out of range");
  const int32_t* ip = ids.typed_data();
  const int32_t* cp = counts.typed_data();
  const float* gp = g.typed_data();
  const float* wp = wt.typed_data();
  float* op = out->typed_data();
  for (int64_t i = 0; i < r; i++) {
    const int32_t* rid = ip + i * cap;
    const int64_t k = cp[2 * i + 1];
    float* o = op + i * c;
    std::memset(o, 0, static_cast<size_t>(c) * sizeof(float));
    const float* gr = gp + i * n;
    float d[4];
    for (int64_t q = 0; q < k; q += 4) {  // in fours; a short last group repeats its first id
      const int32_t i0 = rid[q], i1 = q + 1 < k ? rid[q + 1] : i0, i2 = q + 2 < k ? rid[q + 2] : i0,
                    i3 = q + 3 < k ? rid[q + 3] : i0;
      Dot4(gr, wp + i0 * n, wp + i1 * n, wp + i2 * n, wp + i3 * n, n, d);
      o[i0] = d[0];
      if (q + 1 < k) o[i1] = d[1];
      if (q + 2 < k) o[i2] = d[2];
      if (q + 3 < k) o[i3] = d[3];
    }
  }
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(SpikeMatmul, SpikeMatmulImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>());

XLA_FFI_DEFINE_HANDLER_SYMBOL(SpikeOuter, SpikeOuterImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>());

XLA_FFI_DEFINE_HANDLER_SYMBOL(SpikeBuffer, SpikeBufferImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::U8>>()
                                  .Ret<ffi::Buffer<ffi::S32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::S32>>()
                                  .Ret<ffi::Buffer<ffi::S32>>());

XLA_FFI_DEFINE_HANDLER_SYMBOL(GatherAccumulate, GatherAccumulateImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>());

XLA_FFI_DEFINE_HANDLER_SYMBOL(ScatterOuter, ScatterOuterImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>());

XLA_FFI_DEFINE_HANDLER_SYMBOL(GatherDot, GatherDotImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>());
