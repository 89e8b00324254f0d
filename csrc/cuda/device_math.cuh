// Device helpers shared by the CUDA kernels: the CW kernel and its derivative, a deterministic
// block reduction, and the TF32 split.
#pragma once
#include <cstdint>

namespace lcw_fast::cuda {

constexpr int kBlockThreads = 256;

// Blocks for a grid-stride loop over count elements (capped: each thread then takes several).
inline unsigned grid_for(int64_t count) {
  const int64_t blocks = (count + kBlockThreads - 1) / kBlockThreads;
  return unsigned(blocks < 65535 ? (blocks > 0 ? blocks : 1) : 65535);
}

__device__ __forceinline__ float rsqrt_t(float v) { return rsqrtf(v); }
__device__ __forceinline__ double rsqrt_t(double v) { return rsqrt(v); }

// k(d) = (gamma + d / c)^(-1/2). A distance of Inf comes from an Inf coordinate (or overflow) and
// gives NaN (inf - inf), not k = 0: non-finite inputs must turn sums and gradients into NaN.
template <typename T>
__device__ __forceinline__ T cw_k(T d, T gamma, T inv_c) {
  return isinf(d) ? d - d : rsqrt_t(gamma + d * inv_c);
}

// w(d) = k'(d) = -k^3 / (2c), from k = k(d).
template <typename T>
__device__ __forceinline__ T cw_w_of_k(T k, T inv_c) {
  return -k * k * k * (T(0.5) * inv_c);
}

// Sum of v over a block of kBlockThreads threads, in a fixed order; the result is valid in thread 0.
// Safe to call several times in a row (it synchronises before reusing its shared memory).
__device__ __forceinline__ double block_sum(double v) {
  __shared__ double warp_sums[kBlockThreads / 32];
  __syncthreads();
  for (int off = 16; off > 0; off /= 2) v += __shfl_down_sync(0xffffffffu, v, off);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < kBlockThreads / 32 ? warp_sums[lane] : 0.0;
    for (int off = 16; off > 0; off /= 2) v += __shfl_down_sync(0xffffffffu, v, off);
  }
  return v;
}

// x rounded to the nearest TF32 value (10 mantissa bits), ties away from zero; NaN/Inf stay so.
__device__ __forceinline__ float tf32_round(float x) {
  const uint32_t bits = __float_as_uint(x);
  if ((bits & 0x7f800000u) == 0x7f800000u) return x;
  return __uint_as_float((bits + 0x1000u) & 0xffffe000u);
}

}  // namespace lcw_fast::cuda
