// Fixed-order reductions shared by the fused and the Gram paths: the final value of a kernel sum
// from per-block (or per-row) float64 partials, and the gradient from per-split row sums.
#include <c10/cuda/CUDAException.h>

#include "device_math.cuh"
#include "kernels.h"

namespace lcw_fast::cuda {
namespace {

__global__ void __launch_bounds__(kBlockThreads) reduce_sum_kernel(const double* values, int64_t count, double* out) {
  double s = 0.0;
  for (int64_t idx = threadIdx.x; idx < count; idx += kBlockThreads) s += values[idx];
  s = block_sum(s);
  if (threadIdx.x == 0) out[0] = s;
}

template <typename T>
__global__ void __launch_bounds__(kBlockThreads)
finalize_grad_kernel(const T* x, int64_t n, int64_t dim, const T* acc_parts, const double* rowsum_parts,
                     int64_t splits, double scale, T* grad) {
  const int64_t total = n * dim;
  for (int64_t idx = int64_t(blockIdx.x) * kBlockThreads + threadIdx.x; idx < total;
       idx += int64_t(gridDim.x) * kBlockThreads) {
    const int64_t row = idx / dim;
    double rowsum = 0.0, acc = 0.0;
    for (int64_t s = 0; s < splits; ++s) {
      rowsum += rowsum_parts[s * n + row];
      acc += double(acc_parts[s * total + idx]);
    }
    grad[idx] = T(scale * (rowsum * double(x[idx]) - acc));
  }
}

}  // namespace

void reduce_sum(const double* values, int64_t count, double* out, cudaStream_t stream) {
  reduce_sum_kernel<<<1, kBlockThreads, 0, stream>>>(values, count, out);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <typename T>
void finalize_grad(const T* x, int64_t n, int64_t dim, const T* acc_parts, const double* rowsum_parts,
                   int64_t splits, double scale, T* grad, cudaStream_t stream) {
  finalize_grad_kernel<T><<<grid_for(n * dim), kBlockThreads, 0, stream>>>(x, n, dim, acc_parts, rowsum_parts,
                                                                           splits, scale, grad);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template void finalize_grad<float>(const float*, int64_t, int64_t, const float*, const double*, int64_t, double,
                                   float*, cudaStream_t);
template void finalize_grad<double>(const double*, int64_t, int64_t, const double*, const double*, int64_t, double,
                                    double*, cudaStream_t);

}  // namespace lcw_fast::cuda
