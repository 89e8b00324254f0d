// Small D: tensors in, fused kernels (fused_small.cu) and fixed-order reductions (finalize.cu) out.
#include <c10/cuda/CUDAStream.h>

#include "host_utils.h"
#include "kernels.h"
#include "paths.h"

namespace lcw_fast::cuda {

at::Tensor fused_sum_path(const at::Tensor& x, const at::Tensor& y, bool self, double gamma) {
  const int64_t n = x.size(0), m = y.size(0), dim = x.size(1);
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream().stream();
  const auto f64 = x.options().dtype(at::kDouble);
  at::Tensor out = new_buffer({}, f64);
  with_compute_type(x, [&](auto zero) {
    using T = decltype(zero);
    const int64_t blocks = fused_sum_blocks<T>(n, m, dim, self);
    at::Tensor partials = new_buffer({blocks}, f64);
    fused_sum<T>(x.data_ptr<T>(), n, y.data_ptr<T>(), m, dim, self, gamma, inv_c(dim), partials.data_ptr<double>(),
                 stream);
    reduce_sum(partials.data_ptr<double>(), blocks, out.data_ptr<double>(), stream);
  });
  return out;
}

at::Tensor fused_grad_path(const at::Tensor& x, const at::Tensor& y, double gamma, double scale) {
  const int64_t n = x.size(0), m = y.size(0), dim = x.size(1);
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream().stream();
  at::Tensor grad = new_buffer({n, dim}, x.options());
  with_compute_type(x, [&](auto zero) {
    using T = decltype(zero);
    const int64_t splits = fused_grad_splits<T>(n, m, dim);
    at::Tensor acc_parts = new_buffer({splits, n, dim}, x.options());
    at::Tensor rowsum_parts = new_buffer({splits, n}, x.options().dtype(at::kDouble));
    fused_grad<T>(x.data_ptr<T>(), n, y.data_ptr<T>(), m, dim, gamma, inv_c(dim), acc_parts.data_ptr<T>(),
                  rowsum_parts.data_ptr<double>(), stream);
    finalize_grad<T>(x.data_ptr<T>(), n, dim, acc_parts.data_ptr<T>(), rowsum_parts.data_ptr<double>(), splits, scale,
                     grad.data_ptr<T>(), stream);
  });
  return grad;
}

}  // namespace lcw_fast::cuda
