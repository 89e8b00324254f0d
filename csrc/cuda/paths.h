// The two CUDA implementations behind the lcw_fast ops (csrc/cuda/register_cuda.cpp picks one by D).
// Inputs are contiguous CUDA tensors of Prec's input type (kernels.h) on the current device.
//   *_value:      sum_ij k(|x_i - y_j|^2) as a 0-dim float64 tensor (self: y is x, symmetry used).
//   *_value_grad: the value and, from the same visit of each pair, the gradients of the sum:
//                 kSelf  d/dx sum_ij k(|x_i - x_j|^2)   (each unordered pair once, both its points)
//                 kCross d/dx sum_ij k(|x_i - y_j|^2)
//                 kPair  (d/dx, d/dy) of the cross sum
//                 in the inputs' dtype, contiguous; all NaN when an input holds NaN or Inf.
#pragma once
#include <ATen/core/Tensor.h>

#include "kernels.h"

namespace lcw_fast::cuda {

enum class Kind { kSelf, kCross, kPair };

struct ValueGrad {
  at::Tensor value, grad_x, grad_y;  // grad_y only for kPair
};

// d/dx of a cross sum is 2 sum_j w_ij (x_i - y_j); of a self-sum 4 sum_j w_ij (x_i - x_j) (every
// pair moves both points).
inline double grad_scale(Kind kind) { return kind == Kind::kSelf ? 4.0 : 2.0; }

// D <= kFusedMaxDim: fused tensor-core kernels (fused_small.cu).
at::Tensor fused_value_path(const at::Tensor& x, const at::Tensor& y, bool self, double gamma, Prec prec);
ValueGrad fused_value_grad_path(const at::Tensor& x, const at::Tensor& y, Kind kind, double gamma, Prec prec);

// D > kFusedMaxDim: cuBLAS Gram blocks + epilogue (gram_path.cpp).
at::Tensor gram_value_path(const at::Tensor& x, const at::Tensor& y, bool self, double gamma, Prec prec);
ValueGrad gram_value_grad_path(const at::Tensor& x, const at::Tensor& y, Kind kind, double gamma, Prec prec);

}  // namespace lcw_fast::cuda
