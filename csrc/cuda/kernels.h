// Raw-pointer launchers of the CUDA kernels (csrc/cuda/*.cu), called by the host code in
// csrc/cuda/*.cpp. Every launcher runs on `stream` and checks its launch. Matrices are row-major
// and contiguous; T is float (float32/float16/bfloat16 inputs, converted by the caller) or double.
// With c = 2D - 3: k(d) = (gamma + d * inv_c)^(-1/2) and w(d) = k'(d) = -k(d)^3 * inv_c / 2.
#pragma once
#include <cstdint>

#include <cuda_runtime_api.h>

namespace lcw_fast::cuda {

// Largest feature count of the fused kernels; larger D goes through cuBLAS Gram blocks.
constexpr int64_t kFusedMaxDim = 256;

// ---- small D (fused_small.cu) ----
// Number of per-block partial sums fused_sum writes for these shapes (self: y is x, m == n).
template <typename T>
int64_t fused_sum_blocks(int64_t n, int64_t m, int64_t dim, bool self);
// partials[b] = block b's share of sum_ij k(|x_i - y_j|^2); self-sums visit upper-triangle tiles only.
template <typename T>
void fused_sum(const T* x, int64_t n, const T* y, int64_t m, int64_t dim, bool self, double gamma,
               double inv_c, double* partials, cudaStream_t stream);
// Number of column splits fused_grad uses for these shapes.
template <typename T>
int64_t fused_grad_splits(int64_t n, int64_t m, int64_t dim);
// For split s of the columns of y: rowsum_parts[s, i] = sum_j w_ij, acc_parts[s, i, :] = sum_j w_ij y_j.
template <typename T>
void fused_grad(const T* x, int64_t n, const T* y, int64_t m, int64_t dim, double gamma, double inv_c,
                T* acc_parts, double* rowsum_parts, cudaStream_t stream);

// ---- reductions shared by both paths (finalize.cu) ----
// out[0] = sum of values[0..count) in a fixed order (bit-reproducible).
void reduce_sum(const double* values, int64_t count, double* out, cudaStream_t stream);
// grad[i, :] = scale * (sum_s rowsum_parts[s, i] * x[i, :] - sum_s acc_parts[s, i, :]).
template <typename T>
void finalize_grad(const T* x, int64_t n, int64_t dim, const T* acc_parts, const double* rowsum_parts,
                   int64_t splits, double scale, T* grad, cudaStream_t stream);

// ---- large D (gram_blocks.cu) ----
// hi = x rounded to TF32, lo = x - hi (exact in float32): the operands of the 3xTF32 product.
void split_tf32(const float* x, int64_t count, float* hi, float* lo, cudaStream_t stream);
// out[i] = |x_i|^2, accumulated in float64.
template <typename T>
void row_sq_norms(const T* x, int64_t n, int64_t dim, T* out, cudaStream_t stream);
// Turns a (rows, cols) Gram block g (row-major) into kernel values: d = rn_i + cn_j - 2 g_ij,
// row_k[i] (=|+=) weight * sum_j k(d_ij); with write_w also row_w[i] (=|+=) sum_j w(d_ij) and
// g_ij <- w_ij (when w_lo is given, g_ij <- TF32 hi part and w_lo_ij <- the rest). `first` says
// whether this is the row's first column block (assign instead of accumulate).
template <typename T>
void gram_epilogue(T* g, float* w_lo, int64_t rows, int64_t cols, const T* rn, const T* cn, double gamma,
                   double inv_c, double weight, bool write_w, bool first, double* row_k, double* row_w,
                   cudaStream_t stream);

}  // namespace lcw_fast::cuda
