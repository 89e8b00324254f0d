// Host-side helpers of the CUDA ops: environment switches and scratch allocation.
//   LCW_FAST_CUDA_POISON=1          fill every output and scratch buffer with NaN before the kernels
//                                   run (a test hook: any element a kernel forgets to write shows up).
//   LCW_FAST_CUDA_SCRATCH_BYTES=N   budget for the Gram / weight blocks of the large-D path
//                                   (default 256 MiB); the path never allocates more than this for
//                                   its pairwise blocks, whatever n and m are.
#pragma once
#include <cstdint>

#include <ATen/core/Tensor.h>

namespace lcw_fast::cuda {

constexpr int64_t kDefaultScratchBytes = int64_t(256) << 20;

bool poison_enabled();
int64_t scratch_budget_bytes();

// Uninitialised tensor on options' device (NaN-filled when poisoning is on).
at::Tensor new_buffer(at::IntArrayRef sizes, const at::TensorOptions& options);

}  // namespace lcw_fast::cuda

namespace lcw_fast::cuda {

// 1 / c with c = 2D - 3.
inline double inv_c(int64_t dim) { return 1.0 / double(2 * dim - 3); }

// Calls f(T()) with T the C++ type of a compute dtype (float32 or float64).
template <typename F>
void with_compute_type(const at::Tensor& x, F&& f) {
  if (x.scalar_type() == at::kDouble) {
    f(double());
  } else {
    f(float());
  }
}

}  // namespace lcw_fast::cuda
