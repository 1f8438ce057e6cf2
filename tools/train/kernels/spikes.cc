// Products with spike matrices for the trainer, as XLA FFI custom calls on the CPU.
//
// A layer's input current over a whole sequence is x (R = T*B, C) @ wt (C, N), and its weight
// gradient x^T @ g; with spikes most of x is zero, so both visit only the non-zeros of x (one scan of
// each row for its non-zero columns, then one row of wt or of the output per non-zero). Built on
// first use by tools/train/native.py against the headers jaxlib ships (jax.ffi.include_dir()).
#include <cstdint>
#include <cstring>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

// Columns of row[0:c] that are not zero (NaN counts as non-zero, as in a dense product; -0 as zero).
// Eight values at a time: at spike densities most groups of eight are all zero and cost one test.
int64_t NonZero(const float* row, int64_t c, int32_t* idx) {
  int64_t k = 0, j = 0;
  for (; j + 8 <= c; j += 8) {
    uint32_t bits[8];
    std::memcpy(bits, row + j, sizeof(bits));
    uint32_t any = 0;
    for (int q = 0; q < 8; q++) any |= bits[q] & 0x7fffffffu;
    if (!any) continue;
    for (int q = 0; q < 8; q++) {
      if (bits[q] & 0x7fffffffu) idx[k++] = static_cast<int32_t>(j + q);
    }
  }
  for (; j < c; j++) {
    uint32_t bits;
    std::memcpy(&bits, row + j, sizeof(bits));
    if (bits & 0x7fffffffu) idx[k++] = static_cast<int32_t>(j);
  }
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
  std::vector<int32_t> idx(c > 0 ? c : 1);
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
  std::vector<int32_t> idx(c > 0 ? c : 1);
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

