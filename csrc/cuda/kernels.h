// Raw-pointer launchers of the CUDA kernels (csrc/cuda/*.cu), called by the host code in
// csrc/cuda/*.cpp. Every launcher runs on `stream` and checks its launch. Matrices are row-major
// and contiguous. With c = 2D - 3: k(d) = (gamma + d * inv_c)^(-1/2) and w(d) = k'(d) = -k(d)^3 * inv_c / 2.
#pragma once
#include <cstdint>

#include <cuda_runtime_api.h>

namespace lcw_fast::cuda {

// Precision of the products, with the element types it implies (In: inputs, Acc: accumulators):
//   kTf32x3  float32 in, 3xTF32 split on TF32 tensor cores, float32 accumulate (precision "default")
//   kTf32    float32 in, plain TF32 (precision "fast")
//   kBf16    bfloat16 in (both samples), bf16 products with float32 accumulate; W split hi/lo bf16
//   kF64     float64 in and out (FP64 tensor cores / GEMM)
enum class Prec { kTf32x3, kTf32, kBf16, kF64 };

// Largest feature count of the fused kernels; larger D goes through cuBLAS Gram blocks.
constexpr int64_t kFusedMaxDim = 256;

// ---- small D (fused_small.cu) ----
// Rows per tile and the padded feature count (accumulator row stride) of the fused kernels.
int64_t fused_tile_rows(int64_t dim);
int64_t fused_padded_dim(int64_t dim);

// Samples x (n x dim), y (m x dim) of Prec's input type and their squared row norms (Acc type).
struct FusedInputs {
  Prec prec;
  const void* x;
  const void* y;
  const void* xn;
  const void* yn;
  int64_t n, m, dim;
  double gamma, inv_c;
};

// Gradient accumulators, Acc type, rows padded to whole tiles, row stride fused_padded_dim:
// acc_x += sum_j w_ij y_j, rows_x += sum_j w_ij; acc_y / rows_y likewise over i (null: no column
// side). The x accumulators of block pair (A, B) are offset by B * x_slot (B * x_slot_rows).
struct FusedAccumulators {
  void* acc_x;
  double* rows_x;
  void* acc_y;
  double* rows_y;
  int64_t x_slot, x_slot_rows;
};

// One round of block pairs: thread block b takes (first[b], second[b]); with count < 0 it takes
// (b % grid_a, b / grid_a) instead (the rows of x are then disjoint through the x slots).
constexpr int kMaxRoundSlots = 512;
struct RoundPairs {
  int32_t count;
  int32_t grid_a;
  uint16_t first[kMaxRoundSlots];
  uint16_t second[kMaxRoundSlots];
};

// partials[b] = block b's share of sum_ij k(|x_i - y_j|^2) over `pairs` tile pairs in runs of
// `chunk` (self: the upper triangle of tiles, y is x).
void fused_value(const FusedInputs& in, bool self, int64_t pairs, int64_t chunk, double* partials,
                 cudaStream_t stream);
// One round: block b walks the tile pairs of its block pair (A, B) (tile groups of gx tiles of x,
// gy of y; a self-sum's (A, A) its upper triangle), adds to the accumulators and writes its share
// of the value to partials[b].
void fused_value_grad_round(const FusedInputs& in, const FusedAccumulators& acc, bool self, const RoundPairs& round,
                            int64_t blocks, int64_t gx, int64_t gy, double* partials, cudaStream_t stream);

// ---- reductions shared by both paths (finalize.cu) ----
// out[0] = sum of values[0..count) in a fixed order (bit-reproducible).
void reduce_sum(const double* values, int64_t count, double* out, cudaStream_t stream);
// grad[i, :] = scale * (sum_s rows[s * rows_slot + i] * x[i, :] - sum_s acc[s * acc_slot + i * acc_ld + :])
// over `slots` copies, and NaN everywhere when *value is NaN (a non-finite input; no host sync).
// In: float, double or __nv_bfloat16 (bf16 with float Acc).
template <typename In, typename Acc>
void finalize_grad(const In* x, int64_t n, int64_t dim, const Acc* acc, int64_t acc_ld, int64_t acc_slot,
                   const double* rows, int64_t rows_slot, int64_t slots, double scale, const double* value, In* grad,
                   cudaStream_t stream);
// out[i] = |x_i|^2, accumulated in float64 (In -> Acc as finalize_grad).
template <typename In, typename Acc>
void row_sq_norms(const In* x, int64_t n, int64_t dim, Acc* out, cudaStream_t stream);

// ---- large D (gram_blocks.cu) ----
// hi = x rounded to TF32, lo = x - hi (exact in float32): the operands of the 3xTF32 product.
void split_tf32(const float* x, int64_t count, float* hi, float* lo, cudaStream_t stream);

// Where the Gram epilogue puts the weights w = k' of a block:
//   kNone: nowhere (value only); kInPlace: g <- w; kTf32: g <- TF32 part, w_lo (float) <- rest;
//   kBf16: w_hi, w_lo (bf16) <- the bf16 parts.
enum class WSplit { kNone, kInPlace, kTf32, kBf16 };
// Turns a (rows, cols) Gram block g (row-major, T = float or double) into kernel values:
// d = rn_i + cn_j - 2 g_ij, row_k[i] += weight * sum_j k(d_ij) and (unless kNone) row_w[i] +=
// sum_j w_ij, with w stored as `split` says.
template <typename T>
void gram_epilogue(T* g, int64_t rows, int64_t cols, const T* rn, const T* cn, double gamma, double inv_c,
                   double weight, WSplit split, void* w_hi, void* w_lo, double* row_k, double* row_w,
                   cudaStream_t stream);
// col_w[j] += sum_i w_ij of a weight block stored as gram_epilogue stored it (hi: g, or w_hi for kBf16).
template <typename T>
void column_weight_sums(WSplit split, const void* hi, const void* lo, int64_t rows, int64_t cols, double* col_w,
                        cudaStream_t stream);

}  // namespace lcw_fast::cuda
