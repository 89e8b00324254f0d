// CUDA kernels of the lcw_fast ops (schemas in csrc/lcw_fast.cpp): argument checks, the device
// guard, the compute dtype (float16/bfloat16 are computed in float32, float64 in float64), and the
// choice between the fused small-D kernels and the cuBLAS Gram path by D.
#include <tuple>

#include <ATen/core/Tensor.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include "../op_checks.h"
#include "kernels.h"
#include "paths.h"

namespace lcw_fast::cuda {
namespace {

void check_sample(const char* op, const char* name, const at::Tensor& t) {
  TORCH_CHECK(t.is_cuda(), "lcw_fast::", op, ": ", name, " must be a CUDA tensor, got ", t.device());
  check_shape(op, name, t);
  TORCH_CHECK(t.size(0) >= 1, "lcw_fast::", op, ": ", name, " must have n >= 1 rows, got shape ", t.sizes());
  TORCH_CHECK(at::isFloatingType(t.scalar_type()), "lcw_fast::", op, ": ", name,
              " must be float16, bfloat16, float32 or float64, got ", t.scalar_type());
}

void check_pair(const char* op, const at::Tensor& x, const at::Tensor& y) {
  check_sample(op, "x", x);
  check_sample(op, "y", y);
  TORCH_CHECK(x.device() == y.device(), "lcw_fast::", op, ": x and y must be on one device, got ", x.device(),
              " and ", y.device());
  check_same_dim(op, x, y);
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
  check_pair("kernel_sum", x, y);
  return sum_op(x, y, false, gamma, check_scalars("kernel_sum", gamma, precision));
}

at::Tensor kernel_sum_self(const at::Tensor& x, double gamma, c10::string_view precision) {
  check_sample("kernel_sum_self", "x", x);
  return sum_op(x, x, true, gamma, check_scalars("kernel_sum_self", gamma, precision));
}

at::Tensor kernel_sum_grad(const at::Tensor& x, const at::Tensor& y, double gamma, c10::string_view precision) {
  check_pair("kernel_sum_grad", x, y);
  return grad_op(x, y, false, gamma, check_scalars("kernel_sum_grad", gamma, precision));
}

// Both cross gradients as the two single-gradient calls: each rebuilds the cross Gram blocks. A
// fused version sharing them (as the CPU kernel does) is future work.
std::tuple<at::Tensor, at::Tensor> kernel_sum_grad_pair(const at::Tensor& x, const at::Tensor& y, double gamma,
                                                        c10::string_view precision) {
  return {kernel_sum_grad(x, y, gamma, precision), kernel_sum_grad(y, x, gamma, precision)};
}

at::Tensor kernel_sum_self_grad(const at::Tensor& x, double gamma, c10::string_view precision) {
  check_sample("kernel_sum_self_grad", "x", x);
  return grad_op(x, x, true, gamma, check_scalars("kernel_sum_self_grad", gamma, precision));
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
