// Large D (> 256): Gram blocks x_i . y_j by cuBLAS, the fused epilogue (gram_blocks.cu), and for the
// gradient the GEMMs  acc_x[R] += W . Y_C  (row side) and  acc_y[C] += W^T . X_R  (column side: the
// other sample, or the other block of an off-diagonal self-sum block), all in blocks of rows x
// columns sized so the pairwise scratch stays within LCW_FAST_SCRATCH_BYTES (host_utils.h). A
// self-sum walks the upper triangle of square blocks (at least kTriangleBlocks per side whenever n
// allows blocks of kMinSide rows), so each unordered pair is visited once, value and both sides of
// the gradient from that one visit. The GEMMs run one after another on the current stream: the
// accumulation order is fixed, results are bit-reproducible.
//
// Precision of the GEMMs (Prec, kernels.h):
//   kTf32x3: each operand split into a TF32 part and the float32 remainder, a = a_hi + a_lo, and
//            a.b ~ a_lo.b_hi + a_hi.b_lo + a_hi.b_hi (a_lo.b_lo, ~2^-22 relative, dropped) on TF32
//            tensor cores with float32 accumulation; the weights W are split the same way.
//   kTf32:   one plain TF32 GEMM per product (about 1e-3 relative error per product; opt-in).
//   kBf16:   bf16 samples stay bf16: the Gram is one bf16 GEMM with float32 compute (exact
//            products); W is split into bf16 hi + lo parts and W.Y = W_lo.Y + W_hi.Y, Y exact.
//   kF64:    one FP64 GEMM.
// Distances come from d = |x_i|^2 + |y_j|^2 - 2 x_i.y_j, so the caller centres the samples (lcw_fast
// does) to keep the cancellation small.
#include <algorithm>
#include <cmath>

#include <ATen/cuda/CUDAContextLight.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/util/Exception.h>

#include "host_utils.h"
#include "kernels.h"
#include "paths.h"

namespace lcw_fast::cuda {
namespace {

constexpr int64_t kTriangleBlocks = 8;
constexpr int64_t kMinSide = 256;

void check_cublas(cublasStatus_t status, const char* what) {
  TORCH_CHECK(status == CUBLAS_STATUS_SUCCESS, "lcw_fast CUDA: ", what, " failed: ", cublasGetStatusString(status));
}

// One sample prepared for the GEMMs: `main` is the sample itself, or its TF32 part in kTf32x3,
// where `lo` holds the remainder.
struct Operand {
  at::Tensor main, lo, norms;
  const char* ptr(bool low, int64_t row) const {
    const at::Tensor& t = low ? lo : main;
    return static_cast<const char*>(t.data_ptr()) + row * t.size(1) * int64_t(t.element_size());
  }
};

Operand prepare(const at::Tensor& x, Prec prec, cudaStream_t stream) {
  Operand op;
  op.norms = row_norms(x, prec);
  if (prec != Prec::kTf32x3) {
    op.main = x;
    return op;
  }
  op.main = new_buffer(x.sizes(), x.options());
  op.lo = new_buffer(x.sizes(), x.options());
  split_tf32(x.data_ptr<float>(), x.numel(), op.main.data_ptr<float>(), op.lo.data_ptr<float>(), stream);
  return op;
}

// C (+)= op(A) op(B), column-major as cuBLAS sees it; A and B of the precision's operand type, C
// of its accumulator type.
void gemm(cublasHandle_t handle, Prec prec, cublasOperation_t ta, cublasOperation_t tb, int64_t m, int64_t n,
          int64_t k, const void* a, int64_t lda, const void* b, int64_t ldb, bool accumulate, void* c, int64_t ldc) {
  const bool f64 = prec == Prec::kF64;
  const float alpha32 = 1.0f, beta32 = accumulate ? 1.0f : 0.0f;
  const double alpha64 = 1.0, beta64 = accumulate ? 1.0 : 0.0;
  const cudaDataType_t in_type = f64 ? CUDA_R_64F : prec == Prec::kBf16 ? CUDA_R_16BF : CUDA_R_32F;
  const cudaDataType_t out_type = f64 ? CUDA_R_64F : CUDA_R_32F;
  const cublasComputeType_t compute = f64                  ? CUBLAS_COMPUTE_64F
                                      : prec == Prec::kBf16 ? CUBLAS_COMPUTE_32F
                                                            : CUBLAS_COMPUTE_32F_FAST_TF32;
  check_cublas(cublasGemmEx(handle, ta, tb, int(m), int(n), int(k), f64 ? static_cast<const void*>(&alpha64) : &alpha32,
                            a, in_type, int(lda), b, in_type, int(ldb), f64 ? static_cast<const void*>(&beta64) : &beta32,
                            c, out_type, int(ldc), compute, CUBLAS_GEMM_DEFAULT),
               "cublasGemmEx");
}

// The terms of a product at a precision, as (A part, B part) with true = the lo part:
// split x split (3xTF32), exact x split (bf16 W.Y with W as B), or one term.
struct Terms {
  int count;
  bool a_low[3], b_low[3];
};
constexpr Terms kSplitTerms{3, {true, false, false}, {false, true, false}};
constexpr Terms kBLowTerms{2, {false, false}, {true, false}};
constexpr Terms kOneTerm{1, {false}, {false}};

Terms gram_terms(Prec prec) { return prec == Prec::kTf32x3 ? kSplitTerms : kOneTerm; }
Terms weight_terms(Prec prec) {
  return prec == Prec::kTf32x3 ? kSplitTerms : prec == Prec::kBf16 ? kBLowTerms : kOneTerm;
}

// gemm over the terms (small terms first); a_part(low) / b_part(low) give the operand pointers.
template <typename A, typename B>
void gemm_terms(cublasHandle_t handle, Prec prec, const Terms& terms, cublasOperation_t ta, cublasOperation_t tb,
                int64_t m, int64_t n, int64_t k, A a_part, int64_t lda, B b_part, int64_t ldb, bool accumulate,
                void* c, int64_t ldc) {
  for (int t = 0; t < terms.count; ++t)
    gemm(handle, prec, ta, tb, m, n, k, a_part(terms.a_low[t]), lda, b_part(terms.b_low[t]), ldb, accumulate || t > 0,
         c, ldc);
}

struct Blocks {
  int64_t rows, cols;
};

// Row x column block of the pairwise scratch, bytes_per_pair bytes per pair, within the budget
// (at least 64 x 64 pairs; at most 2^30, which keeps cuBLAS's int sizes in range). Self-sums use
// square blocks of at most ceil(n / kTriangleBlocks) rows (rounded up to 128, at least kMinSide),
// so the upper triangle of blocks skips about half the pairs at every n > kMinSide.
Blocks choose_blocks(int64_t n, int64_t m, int64_t bytes_per_pair, bool square) {
  const int64_t pairs = std::clamp<int64_t>(scratch_budget_bytes() / bytes_per_pair, 64 * 64, int64_t(1) << 30);
  const int64_t side = int64_t(std::sqrt(double(pairs)));
  if (square) {
    const int64_t tri = std::max(kMinSide, (n + kTriangleBlocks - 1) / kTriangleBlocks + 127) / 128 * 128;
    const int64_t s = std::min({n, side, tri});
    return {s, s};
  }
  const int64_t rows = std::min(n, side);
  return {rows, std::min(m, std::max(side, pairs / rows))};
}

// Scratch bytes per pair of a block: the Gram entry plus the weights' extra parts.
int64_t bytes_per_pair(Prec prec, bool grad) {
  const int64_t g = prec == Prec::kF64 ? 8 : 4;
  if (!grad) return g;
  return g + (prec == Prec::kTf32x3 ? 4 : prec == Prec::kBf16 ? 4 : 0);
}

WSplit weight_split(Prec prec, bool grad) {
  if (!grad) return WSplit::kNone;
  return prec == Prec::kTf32x3 ? WSplit::kTf32 : prec == Prec::kBf16 ? WSplit::kBf16 : WSplit::kInPlace;
}

struct Pass {
  at::Tensor row_k;          // (n,) float64: weighted sum_j k_ij per row
  at::Tensor row_w, acc_x;   // (n,) float64, (n, D) accumulator dtype (grad only)
  at::Tensor col_w, acc_y;   // the column side (kPair; kSelf uses row_w / acc_x)
};

// Walks the row x column blocks (kSelf: the upper triangle, off-diagonal blocks weighted 2) and
// fills the per-row sums; with want_grad also the gradient accumulators of both sides.
Pass gram_pass(const at::Tensor& x, const at::Tensor& y, Kind kind, double gamma, Prec prec, bool want_grad) {
  const int64_t n = x.size(0), m = y.size(0), dim = x.size(1);
  const bool self = kind == Kind::kSelf;
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream().stream();
  const cublasHandle_t handle = at::cuda::getCurrentCUDABlasHandle();
  const Operand xo = prepare(x, prec, stream);
  const Operand yo = self ? xo : prepare(y, prec, stream);

  const auto f64 = x.options().dtype(at::kDouble), acc_opts = x.options().dtype(acc_dtype(prec));
  Pass pass{at::zeros({n}, f64)};
  const bool cols_side = want_grad && kind != Kind::kCross;
  if (want_grad) {
    pass.row_w = at::zeros({n}, f64);
    pass.acc_x = at::zeros({n, dim}, acc_opts);
  }
  if (want_grad && kind == Kind::kPair) {
    pass.col_w = at::zeros({m}, f64);
    pass.acc_y = at::zeros({m, dim}, acc_opts);
  } else if (want_grad && self) {
    pass.col_w = pass.row_w;
    pass.acc_y = pass.acc_x;
  }
  const WSplit split = weight_split(prec, want_grad);
  const Blocks blocks = choose_blocks(n, m, bytes_per_pair(prec, want_grad), self);
  const int64_t block_pairs = blocks.rows * blocks.cols;
  at::Tensor g = new_buffer({block_pairs}, acc_opts);
  at::Tensor w_lo = split == WSplit::kTf32 ? new_buffer({block_pairs}, acc_opts)
                    : split == WSplit::kBf16 ? new_buffer({block_pairs}, x.options())
                                             : at::Tensor();
  at::Tensor w_hi = split == WSplit::kBf16 ? new_buffer({block_pairs}, x.options()) : g;
  const int64_t acc_elem = int64_t(c10::elementSize(acc_dtype(prec)));
  auto* g_ptr = static_cast<char*>(g.data_ptr());
  const char* w_lo_ptr = w_lo.defined() ? static_cast<const char*>(w_lo.data_ptr()) : nullptr;
  const char* w_hi_ptr = static_cast<const char*>(w_hi.data_ptr());

  for (int64_t r0 = 0; r0 < n; r0 += blocks.rows) {
    const int64_t rb = std::min(blocks.rows, n - r0);
    for (int64_t c0 = self ? r0 : 0; c0 < m; c0 += blocks.cols) {
      const int64_t cb = std::min(blocks.cols, m - c0);
      const bool off_diagonal = self && c0 != r0;
      // G (rb x cb, row-major) = X_r . Y_c^T, i.e. column-major G^T = Y_c^T(op T) . X_r^T.
      gemm_terms(handle, prec, gram_terms(prec), CUBLAS_OP_T, CUBLAS_OP_N, cb, rb, dim,
                 [&](bool low) { return yo.ptr(low, c0); }, dim, [&](bool low) { return xo.ptr(low, r0); }, dim, false,
                 g_ptr, cb);
      with_acc_type(prec, [&](auto zero) {
        using T = decltype(zero);
        gram_epilogue<T>(g.data_ptr<T>(), rb, cb, xo.norms.data_ptr<T>() + r0, yo.norms.data_ptr<T>() + c0, gamma,
                         inv_c(dim), off_diagonal ? 2.0 : 1.0, split, w_hi.data_ptr(),
                         w_lo.defined() ? w_lo.data_ptr() : nullptr, pass.row_k.data_ptr<double>() + r0,
                         want_grad ? pass.row_w.data_ptr<double>() + r0 : nullptr, stream);
      });
      if (!want_grad) continue;
      auto w_part = [&](bool low) { return low ? w_lo_ptr : w_hi_ptr; };
      // acc_x[r] (rb x D, row-major) += W (rb x cb) . Y_c, i.e. column-major acc^T = Y_c^T . W^T.
      gemm_terms(handle, prec, weight_terms(prec), CUBLAS_OP_N, CUBLAS_OP_N, dim, rb, cb,
                 [&](bool low) { return yo.ptr(low, c0); }, dim, w_part, cb, true,
                 static_cast<char*>(pass.acc_x.data_ptr()) + r0 * dim * acc_elem, dim);
      if (!cols_side || (self && !off_diagonal)) continue;
      // acc_y[c] (cb x D) += W^T . X_r, i.e. column-major acc^T = X_r^T . W (W^T in cuBLAS's view, op T).
      with_acc_type(prec, [&](auto zero) {
        using T = decltype(zero);
        column_weight_sums<T>(split, w_hi_ptr, w_lo_ptr, rb, cb, pass.col_w.data_ptr<double>() + c0, stream);
      });
      gemm_terms(handle, prec, weight_terms(prec), CUBLAS_OP_N, CUBLAS_OP_T, dim, cb, rb,
                 [&](bool low) { return xo.ptr(low, r0); }, dim, w_part, cb, true,
                 static_cast<char*>(pass.acc_y.data_ptr()) + c0 * dim * acc_elem, dim);
    }
  }
  return pass;
}

at::Tensor value_of(const Pass& pass) {
  at::Tensor out = new_buffer({}, pass.row_k.options());
  reduce_sum(pass.row_k.data_ptr<double>(), pass.row_k.numel(), out.data_ptr<double>(),
             c10::cuda::getCurrentCUDAStream().stream());
  return out;
}

}  // namespace

at::Tensor gram_value_path(const at::Tensor& x, const at::Tensor& y, bool self, double gamma, Prec prec) {
  return value_of(gram_pass(x, self ? x : y, self ? Kind::kSelf : Kind::kCross, gamma, prec, false));
}

ValueGrad gram_value_grad_path(const at::Tensor& x, const at::Tensor& y, Kind kind, double gamma, Prec prec) {
  const Pass pass = gram_pass(x, y, kind, gamma, prec, true);
  ValueGrad out;
  out.value = value_of(pass);
  const int64_t dim = x.size(1);
  const double scale = grad_scale(kind);
  out.grad_x = finish_grad(x, pass.acc_x, dim, 0, pass.row_w, 0, 1, scale, out.value, prec);
  if (kind == Kind::kPair) out.grad_y = finish_grad(y, pass.acc_y, dim, 0, pass.col_w, 0, 1, scale, out.value, prec);
  return out;
}

}  // namespace lcw_fast::cuda
