// Fixed-order reductions shared by the fused and the Gram paths: the final value of a kernel sum
// from per-block (or per-row) float64 partials, the gradient from its accumulators, and the
// squared row norms both paths take distances from.
#include <cuda_bf16.h>
#include <cmath>

#include <c10/cuda/CUDAException.h>

#include "device_math.cuh"
#include "kernels.h"

namespace lcw_fast::cuda {
namespace {

template <typename V>
__device__ __forceinline__ double as_double(V v) {
  if constexpr (std::is_same_v<V, __nv_bfloat16>) {
    return double(__bfloat162float(v));
  } else {
    return double(v);
  }
}

template <typename V>
__device__ __forceinline__ V from_double(double v) {
  if constexpr (std::is_same_v<V, __nv_bfloat16>) {
    return __float2bfloat16_rn(float(v));
  } else {
    return V(v);
  }
}

__global__ void __launch_bounds__(kBlockThreads) reduce_sum_kernel(const double* values, int64_t count, double* out) {
  double s = 0.0;
  for (int64_t idx = threadIdx.x; idx < count; idx += kBlockThreads) s += values[idx];
  s = block_sum(s);
  if (threadIdx.x == 0) out[0] = s;
}

template <typename In, typename Acc>
__global__ void __launch_bounds__(kBlockThreads)
finalize_grad_kernel(const In* x, int64_t n, int64_t dim, const Acc* acc, int64_t acc_ld, int64_t acc_slot,
                     const double* rows, int64_t rows_slot, int64_t slots, double scale, const double* value,
                     In* grad) {
  const bool poisoned = isnan(*value);  // some input was NaN or Inf: every entry is NaN
  const int64_t total = n * dim;
  for (int64_t idx = int64_t(blockIdx.x) * kBlockThreads + threadIdx.x; idx < total;
       idx += int64_t(gridDim.x) * kBlockThreads) {
    const int64_t row = idx / dim, col = idx % dim;
    double rowsum = 0.0, sum = 0.0;
    for (int64_t s = 0; s < slots; ++s) {
      rowsum += rows[s * rows_slot + row];
      sum += double(acc[s * acc_slot + row * acc_ld + col]);
    }
    grad[idx] = from_double<In>(poisoned ? NAN : scale * (rowsum * as_double(x[idx]) - sum));
  }
}

template <typename In, typename Acc>
__global__ void __launch_bounds__(kBlockThreads) row_sq_norms_kernel(const In* x, int64_t dim, Acc* out) {
  const In* row = x + int64_t(blockIdx.x) * dim;
  double s = 0.0;
  for (int64_t f = threadIdx.x; f < dim; f += kBlockThreads) s += as_double(row[f]) * as_double(row[f]);
  s = block_sum(s);
  if (threadIdx.x == 0) out[blockIdx.x] = Acc(s);
}

}  // namespace

void reduce_sum(const double* values, int64_t count, double* out, cudaStream_t stream) {
  reduce_sum_kernel<<<1, kBlockThreads, 0, stream>>>(values, count, out);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <typename In, typename Acc>
void finalize_grad(const In* x, int64_t n, int64_t dim, const Acc* acc, int64_t acc_ld, int64_t acc_slot,
                   const double* rows, int64_t rows_slot, int64_t slots, double scale, const double* value, In* grad,
                   cudaStream_t stream) {
  finalize_grad_kernel<In, Acc><<<grid_for(n * dim), kBlockThreads, 0, stream>>>(
      x, n, dim, acc, acc_ld, acc_slot, rows, rows_slot, slots, scale, value, grad);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <typename In, typename Acc>
void row_sq_norms(const In* x, int64_t n, int64_t dim, Acc* out, cudaStream_t stream) {
  row_sq_norms_kernel<In, Acc><<<unsigned(n), kBlockThreads, 0, stream>>>(x, dim, out);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

#define LCW_INSTANTIATE(In, Acc)                                                                                 \
  template void finalize_grad<In, Acc>(const In*, int64_t, int64_t, const Acc*, int64_t, int64_t, const double*, \
                                       int64_t, int64_t, double, const double*, In*, cudaStream_t);              \
  template void row_sq_norms<In, Acc>(const In*, int64_t, int64_t, Acc*, cudaStream_t);
LCW_INSTANTIATE(float, float)
LCW_INSTANTIATE(double, double)
LCW_INSTANTIATE(__nv_bfloat16, float)
#undef LCW_INSTANTIATE

}  // namespace lcw_fast::cuda
