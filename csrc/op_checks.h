// Argument checks the CPU and CUDA kernels of the lcw_fast ops share (schemas in csrc/lcw_fast.cpp):
// shapes, dimensions and the scalar arguments. Each device adds its own device and dtype rules.
// Messages name the op and the argument, e.g. "lcw_fast::kernel_sum: y must be 2-D of shape (n, D)".
#pragma once

#include <cmath>

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>
#include <c10/util/string_view.h>

namespace lcw_fast {

inline void check_shape(const char* op, const char* name, const at::Tensor& t) {
  TORCH_CHECK(t.dim() == 2, "lcw_fast::", op, ": ", name, " must be 2-D of shape (n, D), got shape ", t.sizes());
  TORCH_CHECK(t.size(1) >= 2, "lcw_fast::", op, ": ", name, " must have dimension D >= 2, got D = ", t.size(1));
}

inline void check_same_dim(const char* op, const at::Tensor& x, const at::Tensor& y) {
  TORCH_CHECK(x.size(1) == y.size(1), "lcw_fast::", op, ": x and y must have the same dimension D, got ",
              x.size(1), " and ", y.size(1));
}

// Returns true for precision "fast".
inline bool check_scalars(const char* op, double gamma, c10::string_view precision) {
  TORCH_CHECK(std::isfinite(gamma) && gamma > 0.0, "lcw_fast::", op, ": gamma must be positive and finite, got ",
              gamma);
  TORCH_CHECK(precision == "default" || precision == "fast", "lcw_fast::", op,
              ": precision must be 'default' or 'fast', got '", precision, "'");
  return precision == "fast";
}

}  // namespace lcw_fast
