// CUDA kernels of the lcw_fast ops (schemas in csrc/lcw_fast.cpp): argument checks, the device
// guard, the compute dtype (float16/bfloat16 are computed in float32, float64 in float64), and the
// choice between the fused small-D kernels and the cuBLAS Gram path by D.
#include <cmath>
#include <tuple>

#include <ATen/core/Tensor.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include "kernels.h"
#include "paths.h"

namespace lcw_fast::cuda {
namespace {

void check_sample(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.is_cuda(), "lcw_fast CUDA kernels: ", name, " must be a CUDA tensor, got ", t.device());
  TORCH_CHECK(t.dim() == 2, name, " must be 2-D (n, D), got ", t.dim(), "-D");
  TORCH_CHECK(t.size(0) >= 1 && t.size(1) >= 2, name, " must have n >= 1 rows and D >= 2 columns, got shape ",
              t.sizes());
  TORCH_CHECK(at::isFloatingType(t.scalar_type()), name, " must be float16, bfloat16, float32 or float64, got ",
              t.scalar_type());
}

void check_pair(const at::Tensor& x, const at::Tensor& y) {
  check_sample(x, "x");
  check_sample(y, "y");
  TORCH_CHECK(x.device() == y.device(), "x and y must be on one device, got ", x.device(), " and ", y.device());
  TORCH_CHECK(x.size(1) == y.size(1), "x and y must have the same D, got ", x.size(1), " and ", y.size(1));
}

void check_gamma(double gamma) {
  TORCH_CHECK(std::isfinite(gamma) && gamma > 0.0, "gamma must be a positive finite number, got ", gamma);
}

bool is_fast(c10::string_view precision) {
  TORCH_CHECK(precision == "default" || precision == "fast", "precision must be 'default' or 'fast', got '",
              precision, "'");
  return precision == "fast";
}

at::Tensor as_compute(const at::Tensor& t, at::ScalarType dtype) { return t.to(dtype).contiguous(); }

at::ScalarType compute_dtype(const at::Tensor& x, const at::Tensor& y) {
  return x.scalar_type() == at::kDouble || y.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

at::Tensor sum_op(const at::Tensor& x, const at::Tensor& y, bool self, double gamma, bool fast) {
  const c10::cuda::CUDAGuard guard(x.device());
  const at::ScalarType dtype = compute_dtype(x, y);
  const at::Tensor xc = as_compute(x, dtype), yc = self ? xc : as_compute(y, dtype);
  if (x.size(1) <= kFusedMaxDim) return fused_sum_path(xc, yc, self, gamma);
  return gram_sum_path(xc, yc, self, gamma, fast);
}

at::Tensor grad_op(const at::Tensor& x, const at::Tensor& y, bool self, double gamma, bool fast) {
  const c10::cuda::CUDAGuard guard(x.device());
  const at::ScalarType dtype = compute_dtype(x, y);
  const at::Tensor xc = as_compute(x, dtype), yc = self ? xc : as_compute(y, dtype);
  const double scale = self ? 4.0 : 2.0;
  const at::Tensor grad = x.size(1) <= kFusedMaxDim ? fused_grad_path(xc, yc, gamma, scale)
                                                    : gram_grad_path(xc, yc, gamma, scale, fast);
  return grad.to(x.scalar_type());
}

at::Tensor kernel_sum(const at::Tensor& x, const at::Tensor& y, double gamma, c10::string_view precision) {
  check_pair(x, y);
  check_gamma(gamma);
  return sum_op(x, y, false, gamma, is_fast(precision));
}

at::Tensor kernel_sum_self(const at::Tensor& x, double gamma, c10::string_view precision) {
  check_sample(x, "x");
  check_gamma(gamma);
  return sum_op(x, x, true, gamma, is_fast(precision));
}

at::Tensor kernel_sum_grad(const at::Tensor& x, const at::Tensor& y, double gamma, c10::string_view precision) {
  check_pair(x, y);
  check_gamma(gamma);
  return grad_op(x, y, false, gamma, is_fast(precision));
}

// Both cross gradients as the two single-gradient calls: each rebuilds the cross Gram blocks. A
// fused version sharing them (as the CPU kernel does) is future work.
std::tuple<at::Tensor, at::Tensor> kernel_sum_grad_pair(const at::Tensor& x, const at::Tensor& y, double gamma,
                                                        c10::string_view precision) {
  return {kernel_sum_grad(x, y, gamma, precision), kernel_sum_grad(y, x, gamma, precision)};
}

at::Tensor kernel_sum_self_grad(const at::Tensor& x, double gamma, c10::string_view precision) {
  check_sample(x, "x");
  check_gamma(gamma);
  return grad_op(x, x, true, gamma, is_fast(precision));
}

}  // namespace
}  // namespace lcw_fast::cuda

TORCH_LIBRARY_IMPL(lcw_fast, CUDA, m) {
  m.impl("kernel_sum", &lcw_fast::cuda::kernel_sum);
  m.impl("kernel_sum_self", &lcw_fast::cuda::kernel_sum_self);
  m.impl("kernel_sum_grad", &lcw_fast::cuda::kernel_sum_grad);
  m.impl("kernel_sum_self_grad", &lcw_fast::cuda::kernel_sum_self_grad);
  m.impl("kernel_sum_grad_pair", &lcw_fast::cuda::kernel_sum_grad_pair);
}
