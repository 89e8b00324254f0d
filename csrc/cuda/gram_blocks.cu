// Kernels of the large-D path (D > 256), which gets its Gram blocks x_i . y_j from cuBLAS
// (csrc/cuda/gram_path.cpp): the TF32 split of the operands, squared row norms, and the epilogue
// that turns a Gram block into kernel values, row sums and the weights w = k' of the gradient GEMM.
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

template <typename T>
__global__ void __launch_bounds__(kBlockThreads) row_sq_norms_kernel(const T* x, int64_t dim, T* out) {
  const T* row = x + int64_t(blockIdx.x) * dim;
  double s = 0.0;
  for (int64_t f = threadIdx.x; f < dim; f += kBlockThreads) s += double(row[f]) * double(row[f]);
  s = block_sum(s);
  if (threadIdx.x == 0) out[blockIdx.x] = T(s);
}

// One block per row of the Gram block.
template <typename T>
__global__ void __launch_bounds__(kBlockThreads)
gram_epilogue_kernel(T* g, float* w_lo, int64_t cols, const T* rn, const T* cn, T gamma, T inv_c, double weight,
                     bool write_w, bool first, double* row_k, double* row_w) {
  const int64_t r = blockIdx.x;
  T* grow = g + r * cols;
  const T norm_r = rn[r];
  double sk = 0.0, sw = 0.0;
  for (int64_t c = threadIdx.x; c < cols; c += kBlockThreads) {
    T d = norm_r + cn[c] - T(2) * grow[c];
    d = d < T(0) ? T(0) : d;  // rounding can make a tiny distance negative; NaN passes through
    const T k = cw_k(d, gamma, inv_c);
    sk += double(k);
    if (!write_w) continue;
    const T w = -k * k * k * (T(0.5) * inv_c);
    sw += double(w);
    if (w_lo != nullptr) {
      const float hi = tf32_round(float(w));
      grow[c] = T(hi);
      w_lo[r * cols + c] = float(w) - hi;
    } else {
      grow[c] = w;
    }
  }
  sk = block_sum(sk);
  if (write_w) sw = block_sum(sw);
  if (threadIdx.x != 0) return;
  row_k[r] = weight * sk + (first ? 0.0 : row_k[r]);
  if (write_w) row_w[r] = sw + (first ? 0.0 : row_w[r]);
}

}  // namespace

void split_tf32(const float* x, int64_t count, float* hi, float* lo, cudaStream_t stream) {
  split_tf32_kernel<<<grid_for(count), kBlockThreads, 0, stream>>>(x, count, hi, lo);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <typename T>
void row_sq_norms(const T* x, int64_t n, int64_t dim, T* out, cudaStream_t stream) {
  row_sq_norms_kernel<T><<<unsigned(n), kBlockThreads, 0, stream>>>(x, dim, out);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <typename T>
void gram_epilogue(T* g, float* w_lo, int64_t rows, int64_t cols, const T* rn, const T* cn, double gamma,
                   double inv_c, double weight, bool write_w, bool first, double* row_k, double* row_w,
                   cudaStream_t stream) {
  gram_epilogue_kernel<T><<<unsigned(rows), kBlockThreads, 0, stream>>>(g, w_lo, cols, rn, cn, T(gamma), T(inv_c),
                                                                         weight, write_w, first, row_k, row_w);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

#define LCW_INSTANTIATE(T)                                                                                   \
  template void row_sq_norms<T>(const T*, int64_t, int64_t, T*, cudaStream_t);                             \
  template void gram_epilogue<T>(T*, float*, int64_t, int64_t, const T*, const T*, double, double, double, \
                                 bool, bool, double*, double*, cudaStream_t);
LCW_INSTANTIATE(float)
LCW_INSTANTIATE(double)
#undef LCW_INSTANTIATE

}  // namespace lcw_fast::cuda
