#include "host_utils.h"

#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>

#include <ATen/ops/empty.h>
#include <c10/util/Exception.h>

namespace lcw_fast::cuda {

bool poison_enabled() {
  const char* value = std::getenv("LCW_FAST_CUDA_POISON");
  return value != nullptr && std::string(value) == "1";
}

int64_t scratch_budget_bytes() {
  const char* value = std::getenv("LCW_FAST_CUDA_SCRATCH_BYTES");
  if (value == nullptr || *value == '\0') return kDefaultScratchBytes;
  char* end = nullptr;
  const long long bytes = std::strtoll(value, &end, 10);
  TORCH_CHECK(end != value && *end == '\0' && bytes > 0,
              "LCW_FAST_CUDA_SCRATCH_BYTES must be a positive integer (bytes), got '", value, "'");
  return int64_t(bytes);
}

at::Tensor new_buffer(at::IntArrayRef sizes, const at::TensorOptions& options) {
  at::Tensor t = at::empty(sizes, options);
  if (poison_enabled()) t.fill_(std::numeric_limits<double>::quiet_NaN());
  return t;
}

}  // namespace lcw_fast::cuda
