// Kernels of the large-D path (D > 256), which gets its Gram blocks x_i . y_j from cuBLAS
// (csrc/cuda/gram_path.cpp): the TF32 split of the operands, the epilogue that turns a Gram block
// into kernel values, row sums and the weights w = k' of the gradient GEMMs (float, TF32 hi/lo or
// bf16 hi/lo parts), and the column sums of those weights for the column side of a gradient.
#include <cuda_bf16.h>

#include <c10/cuda/CUDAException.h>

#include "device_math.cuh"
#include "kernels.h"

namespace lcw_fast::cuda {

namespace {

__global__ void __launch_bounds__(kBlockThreads) split_tf32_kernel(const float* x, int64_t count, float* hi, float* lo) {
  for (int64_t idx = int64_t(blockIdx.x) * kBlockThreads + threadIdx.x; idx < count;
       idx += int64_t(gridDim.x) * kBlockThreads) {
    const float v = x[idx], h = tf32_round(v);
    hi[idx] = h;
    lo[idx] = v - h;
  }
}

// Weight (r, c) of a block stored as `split` says (hi: g or w_hi; lo: w_lo).
template <typename T>
__device__ __forceinline__ double weight_at(WSplit split, const void* hi, const void* lo, int64_t idx) {
  if (split == WSplit::kBf16)
    return double(__bfloat162float(static_cast<const __nv_bfloat16*>(hi)[idx])) +
           double(__bfloat162float(static_cast<const __nv_bfloat16*>(lo)[idx]));
  const double h = double(static_cast<const T*>(hi)[idx]);
  return split == WSplit::kTf32 ? h + double(static_cast<const float*>(lo)[idx]) : h;
}

// One block per row of the Gram block.
template <typename T>
__global__ void __launch_bounds__(kBlockThreads)
gram_epilogue_kernel(T* g, int64_t cols, const T* rn, const T* cn, T gamma, T inv_c, double weight, WSplit split,
                     void* w_hi, void* w_lo, double* row_k, double* row_w) {
  const int64_t r = blockIdx.x;
  T* grow = g + r * cols;
  const T norm_r = rn[r];
  double sk = 0.0, sw = 0.0;
  for (int64_t c = threadIdx.x; c < cols; c += kBlockThreads) {
    T d = norm_r + cn[c] - T(2) * grow[c];
    d = d < T(0) ? T(0) : d;  // rounding can make a tiny distance negative; NaN passes through
    const T k = cw_k(d, gamma, inv_c);
    sk += double(k);
    if (split == WSplit::kNone) continue;
    const T w = cw_w_of_k(k, inv_c);
    const int64_t idx = r * cols + c;
    if (split == WSplit::kBf16) {
      const __nv_bfloat16 hi = __float2bfloat16_rn(float(w));
      const __nv_bfloat16 lo = __float2bfloat16_rn(float(w) - __bfloat162float(hi));
      static_cast<__nv_bfloat16*>(w_hi)[idx] = hi;
      static_cast<__nv_bfloat16*>(w_lo)[idx] = lo;
    } else if (split == WSplit::kTf32) {
      const float hi = tf32_round(float(w));
      grow[c] = T(hi);
      static_cast<float*>(w_lo)[idx] = float(w) - hi;
    } else {
      grow[c] = w;
    }
    sw += weight_at<T>(split, split == WSplit::kBf16 ? w_hi : g, w_lo, idx);
  }
  sk = block_sum(sk);
  if (split != WSplit::kNone) sw = block_sum(sw);
  if (threadIdx.x != 0) return;
  row_k[r] += weight * sk;
  if (split != WSplit::kNone) row_w[r] += sw;
}

// One thread per column, rows in order.
template <typename T>
__global__ void __launch_bounds__(kBlockThreads)
column_weight_sums_kernel(WSplit split, const void* hi, const void* lo, int64_t rows, int64_t cols, double* col_w) {
  for (int64_t c = int64_t(blockIdx.x) * kBlockThreads + threadIdx.x; c < cols; c += int64_t(gridDim.x) * kBlockThreads) {
    double s = 0.0;
    for (int64_t r = 0; r < rows; ++r) s += weight_at<T>(split, hi, lo, r * cols + c);
    col_w[c] += s;
  }
}

}  // namespace

void split_tf32(const float* x, int64_t count, float* hi, float* lo, cudaStream_t stream) {
  split_tf32_kernel<<<grid_for(count), kBlockThreads, 0, stream>>>(x, count, hi, lo);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <typename T>
void gram_epilogue(T* g, int64_t rows, int64_t cols, const T* rn, const T* cn, double gamma, double inv_c,
                   double weight, WSplit split, void* w_hi, void* w_lo, double* row_k, double* row_w,
                   cudaStream_t stream) {
  gram_epilogue_kernel<T><<<unsigned(rows), kBlockThreads, 0, stream>>>(g, cols, rn, cn, T(gamma), T(inv_c), weight,
                                                                         split, w_hi, w_lo, row_k, row_w);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <typename T>
void column_weight_sums(WSplit split, const void* hi, const void* lo, int64_t rows, int64_t cols, double* col_w,
                        cudaStream_t stream) {
  column_weight_sums_kernel<T><<<grid_for(cols), kBlockThreads, 0, stream>>>(split, hi, lo, rows, cols, col_w);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

#define LCW_INSTANTIATE(T)                                                                                       \
  template void gram_epilogue<T>(T*, int64_t, int64_t, const T*, const T*, double, double, double, WSplit, void*, \
                                 void*, double*, double*, cudaStream_t);                                        \
  template void column_weight_sums<T>(WSplit, const void*, const void*, int64_t, int64_t, double*, cudaStream_t);
LCW_INSTANTIATE(float)
LCW_INSTANTIATE(double)
#undef LCW_INSTANTIATE

}  // namespace lcw_fast::cuda
