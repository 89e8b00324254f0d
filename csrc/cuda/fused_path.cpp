// Small D: tensors in, fused kernels (fused_small.cu) and fixed-order reductions (finalize.cu) out.
//
// The gradient runs as rounds of block pairs (A, B), tile groups of x and y, in which no two
// thread blocks touch the same accumulator rows (one launch per round, in order on the stream):
//   kSelf  the circle method over the upper triangle of groups (csrc/cpu/round_robin.h's
//          RoundRobin, shared with the CPU kernels): round 0 the diagonal pairs (A, A), then
//          rounds of disjoint pairs A < B updating both groups.
//   kPair  a Latin square: round r pairs group s of x with group (s + r) mod G of y.
//   kCross one launch of all (A, B); B picks one of `splits` copies of x's accumulators, added
//          in order by finalize_grad (bounded by LCW_FAST_SCRATCH_BYTES).
// Groups are sized so a round has about one thread block per SM.
#include <algorithm>

#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/util/Exception.h>

#include "../cpu/round_robin.h"
#include "host_utils.h"
#include "kernels.h"
#include "paths.h"

namespace lcw_fast::cuda {
namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

FusedInputs inputs(const at::Tensor& x, const at::Tensor& xn, const at::Tensor& y, const at::Tensor& yn,
                   double gamma, Prec prec) {
  return FusedInputs{prec, x.data_ptr(), y.data_ptr(), xn.data_ptr(), yn.data_ptr(), x.size(0), y.size(0),
                     x.size(1), gamma, inv_c(x.size(1))};
}

// Runs every round of `schedule` (RoundRobin or LatinSquare over `groups` groups), skipping
// empty slots; returns the number of value partials written.
template <typename Schedule>
int64_t run_rounds(const Schedule& schedule, const FusedInputs& in, const FusedAccumulators& acc, bool self,
                   int64_t gx, int64_t gy, int64_t groups_x, int64_t groups_y, double* partials,
                   cudaStream_t stream) {
  int64_t written = 0;
  RoundPairs round{};
  for (int64_t r = 0; r < schedule.rounds(); ++r) {
    round.count = 0;
    round.grid_a = 0;
    for (int64_t slot = 0; slot < schedule.slots(r); ++slot) {
      int64_t a = 0, b = 0;
      if (!schedule.pair(r, slot, a, b) || a >= groups_x || b >= groups_y) continue;
      round.first[round.count] = uint16_t(a);
      round.second[round.count] = uint16_t(b);
      ++round.count;
    }
    if (round.count == 0) continue;
    fused_value_grad_round(in, acc, self, round, round.count, gx, gy, partials + written, stream);
    written += round.count;
  }
  return written;
}

}  // namespace

at::Tensor fused_value_path(const at::Tensor& x, const at::Tensor& y, bool self, double gamma, Prec prec) {
  const int64_t rows = fused_tile_rows(x.size(1)), tx = ceil_div(x.size(0), rows), ty = ceil_div(y.size(0), rows);
  const int64_t pairs = self ? tx * (tx + 1) / 2 : tx * ty;
  const int64_t chunk = ceil_div(pairs, 8 * int64_t(sm_count())), blocks = ceil_div(pairs, chunk);
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream().stream();
  const auto f64 = x.options().dtype(at::kDouble);
  const at::Tensor xn = row_norms(x, prec), yn = self ? xn : row_norms(y, prec);
  at::Tensor partials = new_buffer({blocks}, f64), out = new_buffer({}, f64);
  fused_value(inputs(x, xn, y, yn, gamma, prec), self, pairs, chunk, partials.data_ptr<double>(), stream);
  reduce_sum(partials.data_ptr<double>(), blocks, out.data_ptr<double>(), stream);
  return out;
}

ValueGrad fused_value_grad_path(const at::Tensor& x, const at::Tensor& y, Kind kind, double gamma, Prec prec) {
  const int64_t n = x.size(0), m = y.size(0), dim = x.size(1), dp = fused_padded_dim(dim);
  const int64_t rows = fused_tile_rows(dim), tx = ceil_div(n, rows), ty = ceil_div(m, rows);
  const int64_t n_pad = tx * rows, m_pad = ty * rows, sms = sm_count();
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream().stream();
  const auto f64 = x.options().dtype(at::kDouble), acc_opts = x.options().dtype(acc_dtype(prec));
  const at::Tensor xn = row_norms(x, prec), yn = kind == Kind::kSelf ? xn : row_norms(y, prec);
  const FusedInputs in = inputs(x, xn, y, yn, gamma, prec);

  // Group sizes (tiles): kSelf ~2 groups per SM (a round pairs half of them); kPair <= 1 per SM
  // on each side; kCross <= 2 per SM on x, y split into as many accumulator copies as fit.
  int64_t gx = 0, gy = 0, splits = 1;
  if (kind == Kind::kSelf) {
    gx = gy = ceil_div(tx, std::min<int64_t>(2 * sms, kMaxRoundSlots));
  } else if (kind == Kind::kPair) {
    gx = ceil_div(tx, std::min<int64_t>(sms, kMaxRoundSlots));
    gy = ceil_div(ty, std::min<int64_t>(sms, kMaxRoundSlots));
  } else {
    gx = ceil_div(tx, 2 * sms);
    const int64_t copy_bytes = n_pad * (dp * int64_t(c10::elementSize(acc_dtype(prec))) + 8);
    const int64_t want = ceil_div(2 * sms, ceil_div(tx, gx));
    splits = std::clamp<int64_t>(std::min(want, scratch_budget_bytes() / copy_bytes), 1, ty);
    gy = ceil_div(ty, splits);
    splits = ceil_div(ty, gy);
  }
  const int64_t groups_x = ceil_div(tx, gx), groups_y = ceil_div(ty, gy);

  const bool self = kind == Kind::kSelf;
  at::Tensor acc_x = at::zeros({splits * n_pad, dp}, acc_opts), rows_x = at::zeros({splits * n_pad}, f64);
  at::Tensor acc_y, rows_y;
  if (kind == Kind::kPair) {
    acc_y = at::zeros({m_pad, dp}, acc_opts);
    rows_y = at::zeros({m_pad}, f64);
  } else if (self) {
    acc_y = acc_x;
    rows_y = rows_x;
  }
  const FusedAccumulators acc{acc_x.data_ptr(), rows_x.data_ptr<double>(), acc_y.defined() ? acc_y.data_ptr() : nullptr,
                              rows_y.defined() ? rows_y.data_ptr<double>() : nullptr,
                              kind == Kind::kCross ? n_pad * dp : 0, kind == Kind::kCross ? n_pad : 0};

  // Value partials: one per thread block of every round.
  at::Tensor partials = new_buffer({groups_x * groups_y + groups_x}, f64);
  int64_t written = 0;
  if (self) {
    written = run_rounds(cpu::RoundRobin(groups_x), in, acc, true, gx, gy, groups_x, groups_x,
                         partials.data_ptr<double>(), stream);
  } else if (kind == Kind::kPair) {
    written = run_rounds(cpu::LatinSquare(std::max(groups_x, groups_y)), in, acc, false, gx, gy, groups_x, groups_y,
                         partials.data_ptr<double>(), stream);
  } else {
    RoundPairs grid{};
    grid.count = -1;
    grid.grid_a = int32_t(groups_x);
    written = groups_x * groups_y;
    fused_value_grad_round(in, acc, false, grid, written, gx, gy, partials.data_ptr<double>(), stream);
  }
  TORCH_INTERNAL_ASSERT(written <= partials.numel());

  ValueGrad out;
  out.value = new_buffer({}, f64);
  reduce_sum(partials.data_ptr<double>(), written, out.value.data_ptr<double>(), stream);
  const double scale = grad_scale(kind);
  out.grad_x = finish_grad(x, acc_x, dp, n_pad * dp, rows_x, n_pad, splits, scale, out.value, prec);
  if (kind == Kind::kPair) out.grad_y = finish_grad(y, acc_y, dp, 0, rows_y, 0, 1, scale, out.value, prec);
  return out;
}

}  // namespace lcw_fast::cuda
