// Host-side helpers of the CUDA ops: environment switches, scratch allocation, and the steps both
// paths share (row norms, the gradient from its accumulators).
//   LCW_FAST_POISON=1          fill every output and scratch buffer with NaN before the kernels
//                              run (a test hook: any element a kernel forgets to write shows up).
//   LCW_FAST_SCRATCH_BYTES=N   budget for the pairwise blocks of the large-D path and the
//                              per-split accumulators of the small-D path (default 256 MiB).
// Both variables are shared with the Triton backend.
#pragma once
#include <cstdint>

#include <ATen/core/Tensor.h>

#include "kernels.h"

namespace lcw_fast::cuda {

constexpr int64_t kDefaultScratchBytes = int64_t(256) << 20;

bool poison_enabled();
int64_t scratch_budget_bytes();

// Uninitialised tensor on options' device (NaN-filled when poisoning is on).
at::Tensor new_buffer(at::IntArrayRef sizes, const at::TensorOptions& options);

// 1 / c with c = 2D - 3.
inline double inv_c(int64_t dim) { return 1.0 / double(2 * dim - 3); }

// dtype of the accumulators (and norms) of a precision: float64 for kF64, float32 otherwise.
at::ScalarType acc_dtype(Prec prec);

// Calls f(Acc()) with the C++ accumulator type of a precision.
template <typename F>
void with_acc_type(Prec prec, F&& f) {
  if (prec == Prec::kF64) {
    f(double());
  } else {
    f(float());
  }
}

// |x_i|^2 (n,) in acc_dtype(prec), x of prec's input dtype.
at::Tensor row_norms(const at::Tensor& x, Prec prec);

// The gradient scale * (rows_i x_i - acc_i) summed over `slots` accumulator copies (see
// finalize_grad in kernels.h), in x's dtype; NaN everywhere when value (0-dim float64) is NaN.
at::Tensor finish_grad(const at::Tensor& x, const at::Tensor& acc, int64_t acc_ld, int64_t acc_slot,
                       const at::Tensor& rows, int64_t rows_slot, int64_t slots, double scale,
                       const at::Tensor& value, Prec prec);

int sm_count();

}  // namespace lcw_fast::cuda
