#include "host_utils.h"

#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>

#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Exception.h>
#include <cuda_bf16.h>

namespace lcw_fast::cuda {

bool poison_enabled() {
  const char* value = std::getenv("LCW_FAST_POISON");
  return value != nullptr && std::string(value) == "1";
}

int64_t scratch_budget_bytes() {
  const char* value = std::getenv("LCW_FAST_SCRATCH_BYTES");
  if (value == nullptr || *value == '\0') return kDefaultScratchBytes;
  char* end = nullptr;
  const long long bytes = std::strtoll(value, &end, 10);
  TORCH_CHECK(end != value && *end == '\0' && bytes > 0,
              "LCW_FAST_SCRATCH_BYTES must be a positive integer (bytes), got '", value, "'");
  return int64_t(bytes);
}

at::Tensor new_buffer(at::IntArrayRef sizes, const at::TensorOptions& options) {
  at::Tensor t = at::empty(sizes, options);
  if (poison_enabled()) t.fill_(std::numeric_limits<double>::quiet_NaN());
  return t;
}

at::ScalarType acc_dtype(Prec prec) { return prec == Prec::kF64 ? at::kDouble : at::kFloat; }

namespace {

// Calls f(In(), Acc()) with the C++ input and accumulator types of a precision.
template <typename F>
void with_types(Prec prec, F&& f) {
  if (prec == Prec::kF64) {
    f(double(), double());
  } else if (prec == Prec::kBf16) {
    f(__nv_bfloat16(), float());
  } else {
    f(float(), float());
  }
}

template <typename T>
T* ptr(const at::Tensor& t) {
  return static_cast<T*>(t.data_ptr());
}

}  // namespace

at::Tensor row_norms(const at::Tensor& x, Prec prec) {
  at::Tensor out = new_buffer({x.size(0)}, x.options().dtype(acc_dtype(prec)));
  with_types(prec, [&](auto in, auto acc) {
    using In = decltype(in);
    using Acc = decltype(acc);
    row_sq_norms<In, Acc>(ptr<const In>(x), x.size(0), x.size(1), ptr<Acc>(out),
                          c10::cuda::getCurrentCUDAStream().stream());
  });
  return out;
}

at::Tensor finish_grad(const at::Tensor& x, const at::Tensor& acc, int64_t acc_ld, int64_t acc_slot,
                       const at::Tensor& rows, int64_t rows_slot, int64_t slots, double scale,
                       const at::Tensor& value, Prec prec) {
  at::Tensor grad = new_buffer(x.sizes(), x.options());
  with_types(prec, [&](auto in, auto acc_zero) {
    using In = decltype(in);
    using Acc = decltype(acc_zero);
    finalize_grad<In, Acc>(ptr<const In>(x), x.size(0), x.size(1), ptr<const Acc>(acc), acc_ld, acc_slot,
                           ptr<const double>(rows), rows_slot, slots, scale, ptr<const double>(value), ptr<In>(grad),
                           c10::cuda::getCurrentCUDAStream().stream());
  });
  return grad;
}

int sm_count() {
  int device = 0, sms = 0;
  C10_CUDA_CHECK(cudaGetDevice(&device));
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  return sms;
}

}  // namespace lcw_fast::cuda
