// The two CUDA implementations behind the lcw_fast ops (csrc/cuda/register_cuda.cpp picks one by D).
// Inputs are contiguous CUDA tensors of one compute dtype (float32 or float64) on the current device.
//   *_sum:  sum_ij k(|x_i - y_j|^2) as a 0-dim float64 tensor (self: y is x, symmetry used).
//   *_grad: scale * sum_j w_ij (x_i - y_j) as an (n, D) tensor of x's dtype; scale is 2 for the
//           gradient of a cross sum and 4 for a self-sum (y is x: every pair moves both points).
#pragma once
#include <ATen/core/Tensor.h>

namespace lcw_fast::cuda {

// D <= kFusedMaxDim: fused kernels (fused_small.cu).
at::Tensor fused_sum_path(const at::Tensor& x, const at::Tensor& y, bool self, double gamma);
at::Tensor fused_grad_path(const at::Tensor& x, const at::Tensor& y, double gamma, double scale);

// D > kFusedMaxDim: cuBLAS Gram blocks + epilogue (gram_path.cpp). fast: plain TF32 GEMMs (float32 only).
at::Tensor gram_sum_path(const at::Tensor& x, const at::Tensor& y, bool self, double gamma, bool fast);
at::Tensor gram_grad_path(const at::Tensor& x, const at::Tensor& y, double gamma, double scale, bool fast);

}  // namespace lcw_fast::cuda
