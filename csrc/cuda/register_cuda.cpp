// CUDA kernels of the lcw_fast ops (schemas in csrc/lcw_fast.cpp): argument checks, the device
// guard, the compute dtype and precision (bfloat16 pairs stay bf16, float16 is computed as
// float32, float64 in float64), and the choice between the fused small-D kernels and the cuBLAS
// Gram path by D.
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

// float64 if either sample is; bfloat16 if both are (bf16 tensor-core products); float32 otherwise.
at::ScalarType compute_dtype(const at::Tensor& x, const at::Tensor& y) {
  if (x.scalar_type() == at::kDouble || y.scalar_type() == at::kDouble) return at::kDouble;
  if (x.scalar_type() == at::kBFloat16 && y.scalar_type() == at::kBFloat16) return at::kBFloat16;
  return at::kFloat;
}

Prec prec_of(at::ScalarType dtype, bool fast) {
  if (dtype == at::kDouble) return Prec::kF64;
  if (dtype == at::kBFloat16) return Prec::kBf16;
  return fast ? Prec::kTf32 : Prec::kTf32x3;
}

at::Tensor value_op(const at::Tensor& x, const at::Tensor& y, bool self, double gamma, bool fast) {
  const c10::cuda::CUDAGuard guard(x.device());
  const at::ScalarType dtype = compute_dtype(x, y);
  const Prec prec = prec_of(dtype, fast);
  const at::Tensor xc = as_compute(x, dtype), yc = self ? xc : as_compute(y, dtype);
  if (x.size(1) <= kFusedMaxDim) return fused_value_path(xc, yc, self, gamma, prec);
  return gram_value_path(xc, yc, self, gamma, prec);
}

// The value and the gradient(s) of `kind`, gradients in their sample's dtype.
ValueGrad value_grad_op(const at::Tensor& x, const at::Tensor& y, Kind kind, double gamma, bool fast) {
  const c10::cuda::CUDAGuard guard(x.device());
  const at::ScalarType dtype = compute_dtype(x, y);
  const Prec prec = prec_of(dtype, fast);
  const at::Tensor xc = as_compute(x, dtype), yc = kind == Kind::kSelf ? xc : as_compute(y, dtype);
  ValueGrad out = x.size(1) <= kFusedMaxDim ? fused_value_grad_path(xc, yc, kind, gamma, prec)
                                            : gram_value_grad_path(xc, yc, kind, gamma, prec);
  out.grad_x = out.grad_x.to(x.scalar_type());
  if (out.grad_y.defined()) out.grad_y = out.grad_y.to(y.scalar_type());
  return out;
}

at::Tensor kernel_sum(const at::Tensor& x, const at::Tensor& y, double gamma, c10::string_view precision) {
  check_pair("kernel_sum", x, y);
  return value_op(x, y, false, gamma, check_scalars("kernel_sum", gamma, precision));
}

at::Tensor kernel_sum_self(const at::Tensor& x, double gamma, c10::string_view precision) {
  check_sample("kernel_sum_self", "x", x);
  return value_op(x, x, true, gamma, check_scalars("kernel_sum_self", gamma, precision));
}

std::tuple<at::Tensor, at::Tensor> kernel_sum_value_grad(const at::Tensor& x, const at::Tensor& y, double gamma,
                                                         c10::string_view precision) {
  check_pair("kernel_sum_value_grad", x, y);
  const ValueGrad r = value_grad_op(x, y, Kind::kCross, gamma, check_scalars("kernel_sum_value_grad", gamma, precision));
  return {r.value, r.grad_x};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> kernel_sum_value_grad_pair(const at::Tensor& x, const at::Tensor& y,
                                                                          double gamma, c10::string_view precision) {
  check_pair("kernel_sum_value_grad_pair", x, y);
  const ValueGrad r =
      value_grad_op(x, y, Kind::kPair, gamma, check_scalars("kernel_sum_value_grad_pair", gamma, precision));
  return {r.value, r.grad_x, r.grad_y};
}

std::tuple<at::Tensor, at::Tensor> kernel_sum_self_value_grad(const at::Tensor& x, double gamma,
                                                              c10::string_view precision) {
  check_sample("kernel_sum_self_value_grad", "x", x);
  const ValueGrad r =
      value_grad_op(x, x, Kind::kSelf, gamma, check_scalars("kernel_sum_self_value_grad", gamma, precision));
  return {r.value, r.grad_x};
}

// The gradient-only ops are the one-pass ops without their value (which costs nothing extra: k is
// needed for w = k' anyway).
at::Tensor kernel_sum_grad(const at::Tensor& x, const at::Tensor& y, double gamma, c10::string_view precision) {
  check_pair("kernel_sum_grad", x, y);
  return value_grad_op(x, y, Kind::kCross, gamma, check_scalars("kernel_sum_grad", gamma, precision)).grad_x;
}

std::tuple<at::Tensor, at::Tensor> kernel_sum_grad_pair(const at::Tensor& x, const at::Tensor& y, double gamma,
                                                        c10::string_view precision) {
  check_pair("kernel_sum_grad_pair", x, y);
  const ValueGrad r = value_grad_op(x, y, Kind::kPair, gamma, check_scalars("kernel_sum_grad_pair", gamma, precision));
  return {r.grad_x, r.grad_y};
}

at::Tensor kernel_sum_self_grad(const at::Tensor& x, double gamma, c10::string_view precision) {
  check_sample("kernel_sum_self_grad", "x", x);
  return value_grad_op(x, x, Kind::kSelf, gamma, check_scalars("kernel_sum_self_grad", gamma, precision)).grad_x;
}

}  // namespace
}  // namespace lcw_fast::cuda

TORCH_LIBRARY_IMPL(lcw_fast, CUDA, m) {
  m.impl("kernel_sum", &lcw_fast::cuda::kernel_sum);
  m.impl("kernel_sum_self", &lcw_fast::cuda::kernel_sum_self);
  m.impl("kernel_sum_grad", &lcw_fast::cuda::kernel_sum_grad);
  m.impl("kernel_sum_self_grad", &lcw_fast::cuda::kernel_sum_self_grad);
  m.impl("kernel_sum_grad_pair", &lcw_fast::cuda::kernel_sum_grad_pair);
  m.impl("kernel_sum_value_grad", &lcw_fast::cuda::kernel_sum_value_grad);
  m.impl("kernel_sum_value_grad_pair", &lcw_fast::cuda::kernel_sum_value_grad_pair);
  m.impl("kernel_sum_self_value_grad", &lcw_fast::cuda::kernel_sum_self_value_grad);
}
