// Large D (> 256): Gram blocks x_i . y_j by cuBLAS, then the fused epilogue (gram_blocks.cu), and for
// the gradient a second GEMM  acc_i = sum_j w_ij y_j,  all in blocks of rows x columns sized so the
// pairwise scratch stays within LCW_FAST_CUDA_SCRATCH_BYTES (see host_utils.h) for any n and m.
//
// Precision of the GEMMs (float32 inputs; float16/bfloat16 are computed as float32):
//   default: 3xTF32. Each operand is split into a TF32 part and the float32 remainder,
//            a = a_hi + a_lo, and a.b ~ a_lo.b_hi + a_hi.b_lo + a_hi.b_hi (a_lo.b_lo, ~2^-22 relative,
//            is dropped) on TF32 tensor cores with float32 accumulation: products carry a relative
//            error of about 2^-21 instead of TF32's 2^-11, close to float32 accuracy.
//   fast:    one plain TF32 GEMM (about 1e-3 relative error per product; an opt-in).
//   float64: one FP64 GEMM.
// Distances come from d = |x_i|^2 + |y_j|^2 - 2 x_i.y_j, so the caller centres the samples (lcw_fast
// does) to keep the cancellation small.
#include <algorithm>
#include <cmath>

#include <ATen/cuda/CUDAContextLight.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/util/Exception.h>

#include "host_utils.h"
#include "kernels.h"
#include "paths.h"

namespace lcw_fast::cuda {
namespace {

enum class Precision { kSplitTf32, kTf32, kFloat64 };

Precision precision_for(const at::Tensor& x, bool fast) {
  if (x.scalar_type() == at::kDouble) return Precision::kFloat64;
  return fast ? Precision::kTf32 : Precision::kSplitTf32;
}

void check_cublas(cublasStatus_t status, const char* what) {
  TORCH_CHECK(status == CUBLAS_STATUS_SUCCESS, "lcw_fast CUDA: ", what, " failed: ", cublasGetStatusString(status));
}

// One sample prepared for the GEMMs: `main` is the sample itself, or its TF32 part in 3xTF32 mode,
// where `lo` holds the remainder.
struct Operand {
  at::Tensor main, lo, norms;
  const char* ptr(bool low, int64_t row) const {
    const at::Tensor& t = low ? lo : main;
    return static_cast<const char*>(t.data_ptr()) + row * t.size(1) * int64_t(t.element_size());
  }
};

Operand prepare(const at::Tensor& x, Precision precision, cudaStream_t stream) {
  Operand op;
  op.norms = new_buffer({x.size(0)}, x.options());
  with_compute_type(x, [&](auto zero) {
    using T = decltype(zero);
    row_sq_norms<T>(x.data_ptr<T>(), x.size(0), x.size(1), op.norms.data_ptr<T>(), stream);
  });
  if (precision != Precision::kSplitTf32) {
    op.main = x;
    return op;
  }
  op.main = new_buffer(x.sizes(), x.options());
  op.lo = new_buffer(x.sizes(), x.options());
  split_tf32(x.data_ptr<float>(), x.numel(), op.main.data_ptr<float>(), op.lo.data_ptr<float>(), stream);
  return op;
}

// C = op(A) op(B) (+ C when accumulate), column-major as cuBLAS sees it, in the precision's types.
void gemm(cublasHandle_t handle, Precision precision, cublasOperation_t ta, int64_t m, int64_t n, int64_t k,
          const void* a, int64_t lda, const void* b, int64_t ldb, bool accumulate, void* c, int64_t ldc) {
  const bool f64 = precision == Precision::kFloat64;
  const float alpha32 = 1.0f, beta32 = accumulate ? 1.0f : 0.0f;
  const double alpha64 = 1.0, beta64 = accumulate ? 1.0 : 0.0;
  const cudaDataType_t type = f64 ? CUDA_R_64F : CUDA_R_32F;
  const cublasComputeType_t compute = f64 ? CUBLAS_COMPUTE_64F : CUBLAS_COMPUTE_32F_FAST_TF32;
  check_cublas(cublasGemmEx(handle, ta, CUBLAS_OP_N, int(m), int(n), int(k),
                            f64 ? static_cast<const void*>(&alpha64) : &alpha32, a, type, int(lda), b, type, int(ldb),
                            f64 ? static_cast<const void*>(&beta64) : &beta32, c, type, int(ldc), compute,
                            CUBLAS_GEMM_DEFAULT),
               "cublasGemmEx");
}

// gemm over the precision's terms: one product, or lo.hi + hi.lo + hi.hi for 3xTF32 (small terms
// first). a_part(low) / b_part(low) give the hi (low=false) or lo (low=true) operand pointers.
template <typename A, typename B>
void gemm_terms(cublasHandle_t handle, Precision precision, cublasOperation_t ta, int64_t m, int64_t n, int64_t k,
                A a_part, int64_t lda, B b_part, int64_t ldb, bool accumulate, void* c, int64_t ldc) {
  if (precision != Precision::kSplitTf32) {
    gemm(handle, precision, ta, m, n, k, a_part(false), lda, b_part(false), ldb, accumulate, c, ldc);
    return;
  }
  gemm(handle, precision, ta, m, n, k, a_part(true), lda, b_part(false), ldb, accumulate, c, ldc);
  gemm(handle, precision, ta, m, n, k, a_part(false), lda, b_part(true), ldb, true, c, ldc);
  gemm(handle, precision, ta, m, n, k, a_part(false), lda, b_part(false), ldb, true, c, ldc);
}

struct Blocks {
  int64_t rows, cols;
};

// Row x column block of the pairwise scratch, bytes_per_pair bytes per pair, within the budget
// (at least 64 x 64 pairs; at most 2^30, which keeps cuBLAS's int sizes in range). Self-sums use
// square blocks so the upper triangle is whole blocks.
Blocks choose_blocks(int64_t n, int64_t m, int64_t bytes_per_pair, bool square) {
  const int64_t pairs = std::clamp<int64_t>(scratch_budget_bytes() / bytes_per_pair, 64 * 64, int64_t(1) << 30);
  const int64_t side = int64_t(std::sqrt(double(pairs)));
  if (square) return {std::min(n, side), std::min(n, side)};
  const int64_t rows = std::min(n, side);
  return {rows, std::min(m, std::max(side, pairs / rows))};
}

struct Sums {
  at::Tensor row_k, row_w, acc;  // (n,) float64, (n,) float64, (n, D) compute dtype (grad only)
};

// Walks all row x column blocks (with `triangle`, only blocks on or above the diagonal, those above
// weighted 2) and fills the per-row sums; with want_grad also row_w and acc.
Sums gram_pass(const at::Tensor& x, const at::Tensor& y, bool same, bool triangle, double gamma, bool fast,
               bool want_grad) {
  const int64_t n = x.size(0), m = y.size(0), dim = x.size(1);
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream().stream();
  const cublasHandle_t handle = at::cuda::getCurrentCUDABlasHandle();
  const Precision precision = precision_for(x, fast);
  const bool split = precision == Precision::kSplitTf32;
  const Operand xo = prepare(x, precision, stream);
  const Operand yo = same ? xo : prepare(y, precision, stream);

  const auto f64 = x.options().dtype(at::kDouble);
  Sums sums{new_buffer({n}, f64), new_buffer({n}, f64), at::Tensor()};
  if (want_grad) sums.acc = new_buffer({n, dim}, x.options());
  const int64_t elem = int64_t(x.element_size());
  const Blocks blocks = choose_blocks(n, m, elem + (split && want_grad ? 4 : 0), triangle);
  at::Tensor g = new_buffer({blocks.rows * blocks.cols}, x.options());
  at::Tensor w_lo = split && want_grad ? new_buffer({blocks.rows * blocks.cols}, x.options()) : at::Tensor();
  auto* g_ptr = static_cast<char*>(g.data_ptr());

  for (int64_t r0 = 0; r0 < n; r0 += blocks.rows) {
    const int64_t rb = std::min(blocks.rows, n - r0), c_begin = triangle ? r0 : 0;
    for (int64_t c0 = c_begin; c0 < m; c0 += blocks.cols) {
      const int64_t cb = std::min(blocks.cols, m - c0);
      const bool first = c0 == c_begin;
      // G (rb x cb, row-major) = X_r . Y_c^T, i.e. column-major G^T = Y_c^T(op T) . X_r^T.
      gemm_terms(handle, precision, CUBLAS_OP_T, cb, rb, dim, [&](bool low) { return yo.ptr(low, c0); }, dim,
                 [&](bool low) { return xo.ptr(low, r0); }, dim, false, g_ptr, cb);
      with_compute_type(x, [&](auto zero) {
        using T = decltype(zero);
        gram_epilogue<T>(g.data_ptr<T>(), split && want_grad ? w_lo.data_ptr<float>() : nullptr, rb, cb,
                         xo.norms.data_ptr<T>() + r0, yo.norms.data_ptr<T>() + c0, gamma, inv_c(dim),
                         triangle && c0 != r0 ? 2.0 : 1.0, want_grad, first, sums.row_k.data_ptr<double>() + r0,
                         sums.row_w.data_ptr<double>() + r0, stream);
      });
      if (!want_grad) continue;
      // acc_r (rb x D, row-major) (+)= W (rb x cb) . Y_c, i.e. column-major acc^T = Y_c^T . W^T.
      const char* w_lo_ptr = split ? static_cast<const char*>(w_lo.data_ptr()) : nullptr;
      gemm_terms(handle, precision, CUBLAS_OP_N, dim, rb, cb, [&](bool low) { return yo.ptr(low, c0); }, dim,
                 [&](bool low) { return low ? w_lo_ptr : g_ptr; }, cb, !first,
                 static_cast<char*>(sums.acc.data_ptr()) + r0 * dim * elem, dim);
    }
  }
  return sums;
}

}  // namespace

at::Tensor gram_sum_path(const at::Tensor& x, const at::Tensor& y, bool self, double gamma, bool fast) {
  const Sums sums = gram_pass(x, self ? x : y, self, self, gamma, fast, false);
  at::Tensor out = new_buffer({}, x.options().dtype(at::kDouble));
  reduce_sum(sums.row_k.data_ptr<double>(), x.size(0), out.data_ptr<double>(),
             c10::cuda::getCurrentCUDAStream().stream());
  return out;
}

at::Tensor gram_grad_path(const at::Tensor& x, const at::Tensor& y, double gamma, double scale, bool fast) {
  const bool same = x.is_same(y);
  const Sums sums = gram_pass(x, y, same, false, gamma, fast, true);
  at::Tensor grad = new_buffer(x.sizes(), x.options());
  with_compute_type(x, [&](auto zero) {
    using T = decltype(zero);
    finalize_grad<T>(x.data_ptr<T>(), x.size(0), x.size(1), sums.acc.data_ptr<T>(), sums.row_w.data_ptr<double>(), 1,
                     scale, grad.data_ptr<T>(), c10::cuda::getCurrentCUDAStream().stream());
  });
  return grad;
}

}  // namespace lcw_fast::cuda
