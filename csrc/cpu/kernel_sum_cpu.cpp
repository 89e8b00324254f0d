// Fused CPU kernels of the eight lcw_fast ops (semantics in csrc/lcw_fast.cpp).
//
// The pairs are visited in tiles of kTile rows (up to kWideTile for the pair gradients on the
// Gram path) by kTile (direct path) or up to kWideTile (Gram path) columns; a tile's squared distances live in fixed per-thread scratch and never as an
// n x m matrix. Extra memory: O((n + m) D) (a transposed copy or the row norms, and the float64
// gradient accumulators) plus O(kWideTile (D + kWideTile)) per thread.
//
// Distances: for D <= kDirectMaxDim (10) straight from differences (exact, vectorised over the tile's
// columns); above it from a Gram tile, |x|^2 + |y|^2 - 2 x.y, with the tile product done by
// ATen's CPU matmul (single-threaded inside our parallel region). The Gram form loses float32
// accuracy for points far from the origin; lcw_fast.distance centres the samples first.
// Backward: with w = k'(d), d/dx_i sum_j k(|x_i - y_j|^2) = 2 (sum_j w_ij x_i - sum_j w_ij y_j),
// so a tile needs the row sums of w and the tile product W . Y_J. The gradients w.r.t. both x and
// y (kernel_sum_grad_pair) share each tile: rows I of x get W . Y_J, rows J of y get W^T . X_I, one
// Latin-square round of (row group, column group) pairs at a time (round_robin.h).
// Self-sums visit only the diagonal tiles and the columns right of them (off-diagonal pairs count
// twice); their gradient updates rows I with W . X_J and rows J with W^T . X_I, one round-robin
// round of tile groups at a time (round_robin.h), so no two threads write the same rows.
// Every gradient pass also sums k over the tiles it visits (tile_derivative), so the one-pass ops
// (value and gradients) cost a gradient pass; the gradient-only ops drop that value. The value-only
// ops keep their own, cheaper pass (no tile products).
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/mm_cpu_dispatch.h>
#include <torch/library.h>

#include <atomic>
#include <functional>
#include <limits>
#include <numeric>
#include <tuple>
#include <vector>

#include "../op_checks.h"
#include "round_robin.h"
#include "tile_loops.h"

namespace lcw_fast::cpu {
namespace {

// Above this dimension the Gram tile through a BLAS matmul beats the direct difference loop
// (measured on AVX-512: direct is faster for D <= 10, the Gram path from D = 12 up).
constexpr int64_t kDirectMaxDim = 10;

// Tiles on the Gram path pair kTile rows of x with up to kWideTile columns of y: one wider matmul
// per block instead of four, so the kTile x D block of x is packed and its W . Y partial product
// flushed to the float64 accumulators a quarter as often (measured at n = 1024, D = 784: a few
// percent less time per op). The per-thread scratch grows to O(kWideTile D).
constexpr int64_t kWideTile = 4 * kTile;

struct Span {
  int64_t begin, size;
};

int64_t num_tiles(int64_t n) { return (n + kTile - 1) / kTile; }

Span tile(int64_t t, int64_t n) {
  const int64_t begin = t * kTile;
  return {begin, std::min(kTile, n - begin)};
}

// Calls f(span) for consecutive spans of at most `width` rows covering [begin, end).
template <typename F>
void for_each_span(int64_t begin, int64_t end, int64_t width, F&& f) {
  for (int64_t b = begin; b < end; b += width) f(Span{b, std::min(width, end - b)});
}

// Runs body(item, state) for every item in [0, count) on the intra-op threads: each thread makes
// its own state (scratch) and claims the next unclaimed item until none is left. On a loaded
// machine a descheduled thread then holds the others up by at most one item, where a static
// split would make them wait for its whole share.
template <typename MakeState, typename Body>
void for_each_item(int64_t count, const MakeState& make_state, const Body& body) {
  std::atomic<int64_t> next{0};
  at::parallel_for(0, std::min<int64_t>(count, at::get_num_threads()), 1, [&](int64_t, int64_t) {
    auto state = make_state();
    for (int64_t item = next++; item < count; item = next++) body(item, state);
  });
}

// The sum over items of term(item, state), added in item order: the result does not depend on
// the thread count or on which thread took which item.
template <typename MakeState, typename Term>
double sum_items(int64_t count, const MakeState& make_state, const Term& term) {
  std::vector<double> parts(count);
  for_each_item(count, make_state, [&](int64_t item, auto& state) { parts[item] = term(item, state); });
  return std::accumulate(parts.begin(), parts.end(), 0.0);
}

// A (rows x cols) view of raw memory for ATen's matmul. from_blob views carry no autograd or
// inference-mode state, so they are safe to build on the worker threads.
template <typename T>
at::Tensor view(const T* data, int64_t rows, int64_t cols, int64_t row_stride, int64_t col_stride) {
  return at::from_blob(const_cast<T*>(data), {rows, cols}, {row_stride, col_stride},
                       at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value));
}

void matmul(at::Tensor out, const at::Tensor& a, const at::Tensor& b) {
  at::cpu::mm_out(out, a, b);
}

// One (n, D) sample as the tile loops need it: contiguous rows, plus a transposed copy (direct
// path) or the squared row norms (Gram path).
template <typename T>
struct Sample {
  explicit Sample(const at::Tensor& t)
      : rows_tensor(t.contiguous()), n(t.size(0)), dim(t.size(1)), direct(dim <= kDirectMaxDim) {
    rows = rows_tensor.const_data_ptr<T>();
    if (direct) {
      aux_tensor = rows_tensor.t().contiguous();
    } else {
      aux_tensor = at::empty({n}, rows_tensor.options());
      T* norms = aux_tensor.mutable_data_ptr<T>();
      at::parallel_for(0, n, 64, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
          const T* r = row(i);
          double s = 0.0;
#pragma omp simd reduction(+ : s)
          for (int64_t k = 0; k < dim; ++k) s += double(r[k]) * double(r[k]);
          norms[i] = T(s);
        }
      });
    }
    aux = aux_tensor.const_data_ptr<T>();
  }

  const T* row(int64_t i) const { return rows + i * dim; }

  // Width of the column blocks when this sample gives a tile's columns.
  int64_t cols() const { return direct ? kTile : kWideTile; }

  // False if any entry is NaN or +-Inf (x * 0 is NaN exactly for those).
  bool finite() const {
    const double probe = at::parallel_reduce(
        0, n * dim, 1 << 16, 0.0,
        [&](int64_t begin, int64_t end, double acc) {
          T s = 0;
#pragma omp simd reduction(+ : s)
          for (int64_t i = begin; i < end; ++i) s += rows[i] * T(0);
          return acc + s;
        },
        std::plus<double>());
    return probe == 0.0;
  }

  at::Tensor rows_tensor, aux_tensor;
  const T* rows = nullptr;
  const T* aux = nullptr;  // direct: D x n transposed rows; Gram: n squared norms
  int64_t n, dim;
  bool direct;
};

// Per-thread scratch: the distance / derivative tile (height x width, height kTile unless a
// caller pairs wider row spans) and the two tile products (height x D and width x D).
template <typename T>
struct Scratch {
  Scratch(int64_t dim, int64_t width, int64_t height = kTile)
      : tile(height * width), rows(height * dim), cols(dim * width) {}
  std::vector<T> tile, rows, cols;
};

// d (i.size x j.size) = squared distances between the tiles i of x and j of y.
template <typename T>
void sq_dists(const Sample<T>& x, Span i, const Sample<T>& y, Span j, bool diagonal, T* d) {
  if (x.direct) {
    direct_sq_dists(x.row(i.begin), i.size, y.aux + j.begin, y.n, j.size, x.dim, d);
    return;
  }
  matmul(view(d, i.size, j.size, j.size, 1), view(x.row(i.begin), i.size, x.dim, x.dim, 1),
         view(y.row(j.begin), x.dim, j.size, 1, x.dim));
  gram_to_sq_dists(x.aux + i.begin, y.aux + j.begin, i.size, j.size, diagonal, d);
}

// acc (i.size x D, float64) += W . Y_j
template <typename T>
void add_row_products(const T* w, Span i, const Sample<T>& y, Span j, Scratch<T>& s, double* acc) {
  if (y.direct) {
    direct_row_products(w, i.size, j.size, y.aux + j.begin, y.n, y.dim, s.rows.data());
  } else {
    matmul(view(s.rows.data(), i.size, y.dim, y.dim, 1), view(w, i.size, j.size, j.size, 1),
           view(y.row(j.begin), j.size, y.dim, y.dim, 1));
  }
  add_rows(s.rows.data(), i.size, y.dim, acc);
}

// acc (j.size x D, float64) += W^T . X_i
template <typename T>
void add_col_products(const T* w, const Sample<T>& x, Span i, Span j, Scratch<T>& s, double* acc) {
  if (x.direct) {  // the direct loop yields the product transposed, D x j.size
    direct_col_products(w, i.size, j.size, x.row(i.begin), x.dim, s.cols.data());
    add_rows_transposed(s.cols.data(), j.size, x.dim, acc);
    return;
  }
  matmul(view(s.cols.data(), j.size, x.dim, x.dim, 1), view(w, j.size, i.size, 1, j.size),
         view(x.row(i.begin), i.size, x.dim, x.dim, 1));
  add_rows(s.cols.data(), j.size, x.dim, acc);
}

// g_a = factor * (sums_a x_a - acc_a) for `count` rows from `begin`; sums and acc start at row begin.
template <typename T>
void write_grad(const Sample<T>& x, int64_t begin, int64_t count, const double* sums, const double* acc,
                double factor, T* grad) {
  for (int64_t a = 0; a < count; ++a) {
    const T* xa = x.row(begin + a);
    T* ga = grad + (begin + a) * x.dim;
    const double* acc_a = acc + a * x.dim;
    for (int64_t k = 0; k < x.dim; ++k) ga[k] = T(factor * (sums[a] * double(xa[k]) - acc_a[k]));
  }
}

template <typename T>
double cross_sum(const Sample<T>& x, const Sample<T>& y, Kernel<T> kernel) {
  const int64_t width = y.cols();
  return sum_items(
      num_tiles(x.n), [&] { return Scratch<T>(x.dim, width); },
      [&](int64_t t, Scratch<T>& s) {
        const Span i = tile(t, x.n);
        double acc = 0.0;
        for_each_span(0, y.n, width, [&](Span j) {
          sq_dists(x, i, y, j, false, s.tile.data());
          acc += tile_kernel_sum(s.tile.data(), i.size, j.size, kernel);
        });
        return acc;
      });
}

template <typename T>
double self_sum(const Sample<T>& x, Kernel<T> kernel) {
  const int64_t tiles = num_tiles(x.n), width = x.cols();
  // Row tile t pairs with itself and the columns right of it; work item p takes the row tiles p
  // and tiles - 1 - p, so that every item covers about the same number of pairs.
  auto row_tile_sum = [&](int64_t t, Scratch<T>& s) {
    T* d = s.tile.data();
    const Span i = tile(t, x.n);
    sq_dists(x, i, x, i, true, d);
    double acc = tile_kernel_sum(d, i.size, i.size, kernel);
    for_each_span(i.begin + i.size, x.n, width, [&](Span j) {
      sq_dists(x, i, x, j, false, d);
      acc += 2.0 * tile_kernel_sum(d, i.size, j.size, kernel);
    });
    return acc;
  };
  return sum_items(
      (tiles + 1) / 2, [&] { return Scratch<T>(x.dim, width); },
      [&](int64_t p, Scratch<T>& s) {
        const int64_t mirror = tiles - 1 - p;
        return row_tile_sum(p, s) + (mirror != p ? row_tile_sum(mirror, s) : 0.0);
      });
}

// Per-thread state of the cross gradient: scratch and one row tile's float64 accumulators.
template <typename T>
struct RowTileState {
  RowTileState(int64_t dim, int64_t width) : s(dim, width), sums(kTile), acc(kTile * dim) {}
  Scratch<T> s;
  std::vector<double> sums, acc;
};

// (sum_ij k(|x_i - y_j|^2), its gradient w.r.t. x): one row tile of x per work item.
template <typename T>
std::tuple<double, at::Tensor> cross_value_grad(const Sample<T>& x, const Sample<T>& y, Kernel<T> kernel) {
  at::Tensor grad = at::empty({x.n, x.dim}, x.rows_tensor.options());
  T* g = grad.mutable_data_ptr<T>();
  const int64_t width = y.cols();
  const double value = sum_items(
      num_tiles(x.n), [&] { return RowTileState<T>(x.dim, width); },
      [&](int64_t t, RowTileState<T>& state) {
        const Span i = tile(t, x.n);
        std::fill(state.sums.begin(), state.sums.end(), 0.0);
        std::fill(state.acc.begin(), state.acc.end(), 0.0);
        double total = 0.0;
        for_each_span(0, y.n, width, [&](Span j) {
          T* w = state.s.tile.data();
          sq_dists(x, i, y, j, false, w);
          total += tile_derivative(w, i.size, j.size, false, kernel, state.sums.data());
          add_row_products(w, i, y, j, state.s, state.acc.data());
        });
        write_grad(x, i.begin, i.size, state.sums.data(), state.acc.data(), 2.0, g);
        return total;
      });
  return {value, grad};
}

// Float64 gradient accumulators of one (n, D) sample: per row, the sum of its w and the w-weighted
// sum of the other sample's rows.
struct Accumulators {
  Accumulators(int64_t n, int64_t dim) : dim(dim), sums(n, 0.0), acc(n * dim, 0.0) {}
  double* sums_at(int64_t row) { return sums.data() + row; }
  double* acc_at(int64_t row) { return acc.data() + row * dim; }
  int64_t dim;
  std::vector<double> sums, acc;
};

// The gradient factor * (sums_a x_a - acc_a) of every row of x, in x's dtype.
template <typename T>
at::Tensor finish_grad(const Sample<T>& x, Accumulators& a, double factor) {
  at::Tensor grad = at::empty({x.n, x.dim}, x.rows_tensor.options());
  T* g = grad.mutable_data_ptr<T>();
  at::parallel_for(0, x.n, 256, [&](int64_t begin, int64_t end) {
    write_grad(x, begin, end - begin, a.sums_at(begin), a.acc_at(begin), factor, g);
  });
  return grad;
}

// Adds the pairs of the rows i of x and j of y to the accumulators of both ends: rows i of gx get
// W . Y_j, rows j of gy get W^T . X_i. For the self-gradient y is x and gy is gx; on a diagonal
// tile (j is i) the transposed half is the same pairs again and is skipped. Returns the tile's
// sum of k (float64).
template <typename T>
double accumulate_pair(const Sample<T>& x, Span i, const Sample<T>& y, Span j, Kernel<T> kernel, Scratch<T>& s,
                     Accumulators& gx, Accumulators& gy) {
  T* w = s.tile.data();
  const bool diagonal = &gx == &gy && i.begin == j.begin;
  sq_dists(x, i, y, j, diagonal, w);
  const double value = tile_derivative(w, i.size, j.size, diagonal, kernel, gx.sums_at(i.begin));
  add_row_products(w, i, y, j, s, gx.acc_at(i.begin));
  if (!diagonal) {
    add_column_sums(w, i.size, j.size, gy.sums_at(j.begin));
    add_col_products(w, x, i, j, s, gy.acc_at(j.begin));
  }
  return value;
}

// `count` groups of consecutive tiles of an n-row sample, of as equal sizes as can be.
struct TileGroups {
  TileGroups(int64_t n, int64_t count) : n(n), tiles(num_tiles(n)), count(count) {}
  int64_t first_tile(int64_t g) const { return g * tiles / count; }
  int64_t row_begin(int64_t g) const { return first_tile(g) * kTile; }
  int64_t row_end(int64_t g) const { return std::min(n, first_tile(g + 1) * kTile); }
  int64_t n, tiles, count;
};

// Adds every pair of the rows [a_begin, a_end) of x and [b_begin, b_end) of y (disjoint when y is
// x) to the accumulators of both ends, in tiles of up to width x width. Returns their sum of k.
template <typename T>
double accumulate_block(const Sample<T>& x, int64_t a_begin, int64_t a_end, const Sample<T>& y, int64_t b_begin,
                      int64_t b_end, int64_t width, Kernel<T> kernel, Scratch<T>& s, Accumulators& gx,
                      Accumulators& gy) {
  double value = 0.0;
  for_each_span(a_begin, a_end, width, [&](Span i) {
    for_each_span(b_begin, b_end, width, [&](Span j) { value += accumulate_pair(x, i, y, j, kernel, s, gx, gy); });
  });
  return value;
}

// Runs body(a, b, state) for every block pair of `schedule` (round_robin.h): the pairs of a round
// in parallel, the rounds one after another. Each row's accumulators are then updated in an order
// fixed by the schedule, so the result does not depend on which thread took which pair. Returns
// the sum of body's results, added in schedule order.
template <typename Schedule, typename MakeState, typename Body>
double run_rounds(const Schedule& schedule, const MakeState& make_state, const Body& body) {
  double total = 0.0;
  for (int64_t round = 0; round < schedule.rounds(); ++round) {
    total += sum_items(schedule.slots(round), make_state, [&](int64_t slot, auto& state) {
      int64_t a = 0, b = 0;
      return schedule.pair(round, slot, a, b) ? body(a, b, state) : 0.0;
    });
  }
  return total;
}

// (sum_ij k(|x_i - x_j|^2), its gradient): each unordered pair once, off-diagonal tiles counted twice.
template <typename T>
std::tuple<double, at::Tensor> self_value_grad(const Sample<T>& x, Kernel<T> kernel) {
  const int64_t width = x.cols();
  // Two groups of tiles per thread, so that there are few rounds (each ends in a barrier, costly
  // on a loaded machine) and every slot of a round carries the same work. Inside a group a row
  // tile meets the columns right of it in spans of up to `width` rows; two groups meet in tiles of
  // up to width x width, which flush W^T . X_I to the accumulators less often (see pair_value_grad).
  const TileGroups groups(x.n, std::min<int64_t>(num_tiles(x.n), 2 * at::get_num_threads()));
  Accumulators acc(x.n, x.dim);
  const double value = run_rounds(
      RoundRobin(groups.count), [&] { return Scratch<T>(x.dim, width, width); },
      [&](int64_t a, int64_t b, Scratch<T>& s) {
        if (a != b) {
          return 2.0 * accumulate_block(x, groups.row_begin(a), groups.row_end(a), x, groups.row_begin(b),
                                        groups.row_end(b), width, kernel, s, acc, acc);
        }
        double total = 0.0;
        for (int64_t t = groups.first_tile(a); t < groups.first_tile(a + 1); ++t) {
          const Span i = tile(t, x.n);
          total += accumulate_pair(x, i, x, i, kernel, s, acc, acc);
          total += 2.0 * accumulate_block(x, i.begin, i.begin + i.size, x, i.begin + i.size, groups.row_end(a),
                                          width, kernel, s, acc, acc);
        }
        return total;
      });
  // Both ends of every pair move: d/dx_p sum_ij k(|x_i - x_j|^2) = 4 sum_j w_pj (x_p - x_j).
  return {value, finish_grad(x, acc, 4.0)};
}

// The cross sum and its gradients w.r.t. x and y from one pass over the tiles: each distance tile
// serves both (three tile products instead of the four of two cross_grad calls). Row groups of x
// meet column groups of y in a Latin square, one group pair per thread and round. Rows as well as
// columns go in spans of `width`: both products are flushed to the float64 accumulators once per
// tile, and a kTile-row tile would flush the width x D product W^T . X_I once per kTile rows.
template <typename T>
std::tuple<double, at::Tensor, at::Tensor> pair_value_grad(const Sample<T>& x, const Sample<T>& y,
                                                           Kernel<T> kernel) {
  const int64_t width = y.cols();
  const int64_t count = std::min({int64_t(at::get_num_threads()), num_tiles(x.n), num_tiles(y.n)});
  const TileGroups rows(x.n, count), cols(y.n, count);
  Accumulators gx(x.n, x.dim), gy(y.n, y.dim);
  const double value = run_rounds(
      LatinSquare(count), [&] { return Scratch<T>(x.dim, width, width); },
      [&](int64_t a, int64_t b, Scratch<T>& s) {
        return accumulate_block(x, rows.row_begin(a), rows.row_end(a), y, cols.row_begin(b), cols.row_end(b),
                                width, kernel, s, gx, gy);
      });
  return {value, finish_grad(x, gx, 2.0), finish_grad(y, gy, 2.0)};
}

// ---- op entry points ---------------------------------------------------------------------------

void check_sample(const char* op, const char* name, const at::Tensor& t) {
  TORCH_CHECK(t.device().is_cpu(), "lcw_fast::", op, ": ", name, " must be a CPU tensor, got ", t.device());
  check_shape(op, name, t);
  TORCH_CHECK(t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble, "lcw_fast::", op, ": ", name,
              " must be float32 or float64 on the CPU, got ", t.scalar_type(),
              " (convert half precision to float32 first, as lcw_fast.cw_distance does)");
}

void check_pair(const char* op, const at::Tensor& x, const at::Tensor& y) {
  check_sample(op, "x", x);
  check_sample(op, "y", y);
  TORCH_CHECK(x.scalar_type() == y.scalar_type(), "lcw_fast::", op, ": x and y must have the same dtype, got ",
              x.scalar_type(), " and ", y.scalar_type());
  check_same_dim(op, x, y);
}

template <typename T>
Kernel<T> make_kernel(double gamma, int64_t dim) {
  return {T(gamma), T(1.0 / double(2 * dim - 3))};
}

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

at::Tensor float64_scalar(double value, const at::Tensor& like) {
  at::Tensor out = at::empty({}, like.options().dtype(at::kDouble));
  *out.mutable_data_ptr<double>() = value;
  return out;
}

template <typename T>
at::Tensor nan_grad(const Sample<T>& x) {
  at::Tensor grad = at::empty({x.n, x.dim}, x.rows_tensor.options());
  T* g = grad.mutable_data_ptr<T>();
  std::fill(g, g + x.n * x.dim, std::numeric_limits<T>::quiet_NaN());
  return grad;
}

at::Tensor kernel_sum(const at::Tensor& x, const at::Tensor& y, double gamma, c10::string_view precision) {
  check_pair("kernel_sum", x, y);
  check_scalars("kernel_sum", gamma, precision);
  double total = 0.0;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lcw_fast::kernel_sum", [&] {
    const Sample<scalar_t> xs(x), ys(y);
    total = xs.finite() && ys.finite() ? cross_sum(xs, ys, make_kernel<scalar_t>(gamma, xs.dim)) : kNaN;
  });
  return float64_scalar(total, x);
}

at::Tensor kernel_sum_self(const at::Tensor& x, double gamma, c10::string_view precision) {
  check_sample("kernel_sum_self", "x", x);
  check_scalars("kernel_sum_self", gamma, precision);
  double total = 0.0;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lcw_fast::kernel_sum_self", [&] {
    const Sample<scalar_t> xs(x);
    total = xs.finite() ? self_sum(xs, make_kernel<scalar_t>(gamma, xs.dim)) : kNaN;
  });
  return float64_scalar(total, x);
}

// The one-pass ops; each gradient-only op is its one-pass op without the value. Non-finite input:
// a NaN value and all-NaN gradients, without visiting the pairs.

std::tuple<at::Tensor, at::Tensor> cross_value_grad_op(const char* op, const at::Tensor& x, const at::Tensor& y,
                                                       double gamma, c10::string_view precision) {
  check_pair(op, x, y);
  check_scalars(op, gamma, precision);
  std::tuple<double, at::Tensor> out;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lcw_fast::kernel_sum_value_grad", [&] {
    const Sample<scalar_t> xs(x), ys(y);
    out = xs.finite() && ys.finite() ? cross_value_grad(xs, ys, make_kernel<scalar_t>(gamma, xs.dim))
                                     : std::make_tuple(kNaN, nan_grad(xs));
  });
  return {float64_scalar(std::get<0>(out), x), std::get<1>(out)};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> pair_value_grad_op(const char* op, const at::Tensor& x,
                                                                  const at::Tensor& y, double gamma,
                                                                  c10::string_view precision) {
  check_pair(op, x, y);
  check_scalars(op, gamma, precision);
  std::tuple<double, at::Tensor, at::Tensor> out;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lcw_fast::kernel_sum_value_grad_pair", [&] {
    const Sample<scalar_t> xs(x), ys(y);
    out = xs.finite() && ys.finite() ? pair_value_grad(xs, ys, make_kernel<scalar_t>(gamma, xs.dim))
                                     : std::make_tuple(kNaN, nan_grad(xs), nan_grad(ys));
  });
  return {float64_scalar(std::get<0>(out), x), std::get<1>(out), std::get<2>(out)};
}

std::tuple<at::Tensor, at::Tensor> self_value_grad_op(const char* op, const at::Tensor& x, double gamma,
                                                      c10::string_view precision) {
  check_sample(op, "x", x);
  check_scalars(op, gamma, precision);
  std::tuple<double, at::Tensor> out;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lcw_fast::kernel_sum_self_value_grad", [&] {
    const Sample<scalar_t> xs(x);
    out = xs.finite() ? self_value_grad(xs, make_kernel<scalar_t>(gamma, xs.dim)) : std::make_tuple(kNaN, nan_grad(xs));
  });
  return {float64_scalar(std::get<0>(out), x), std::get<1>(out)};
}

std::tuple<at::Tensor, at::Tensor> kernel_sum_value_grad(const at::Tensor& x, const at::Tensor& y, double gamma,
                                                         c10::string_view precision) {
  return cross_value_grad_op("kernel_sum_value_grad", x, y, gamma, precision);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> kernel_sum_value_grad_pair(const at::Tensor& x, const at::Tensor& y,
                                                                          double gamma, c10::string_view precision) {
  return pair_value_grad_op("kernel_sum_value_grad_pair", x, y, gamma, precision);
}

std::tuple<at::Tensor, at::Tensor> kernel_sum_self_value_grad(const at::Tensor& x, double gamma,
                                                              c10::string_view precision) {
  return self_value_grad_op("kernel_sum_self_value_grad", x, gamma, precision);
}

at::Tensor kernel_sum_grad(const at::Tensor& x, const at::Tensor& y, double gamma, c10::string_view precision) {
  return std::get<1>(cross_value_grad_op("kernel_sum_grad", x, y, gamma, precision));
}

std::tuple<at::Tensor, at::Tensor> kernel_sum_grad_pair(const at::Tensor& x, const at::Tensor& y, double gamma,
                                                        c10::string_view precision) {
  auto out = pair_value_grad_op("kernel_sum_grad_pair", x, y, gamma, precision);
  return {std::get<1>(out), std::get<2>(out)};
}

at::Tensor kernel_sum_self_grad(const at::Tensor& x, double gamma, c10::string_view precision) {
  return std::get<1>(self_value_grad_op("kernel_sum_self_grad", x, gamma, precision));
}

}  // namespace
}  // namespace lcw_fast::cpu

TORCH_LIBRARY_IMPL(lcw_fast, CPU, m) {
  m.impl("kernel_sum", &lcw_fast::cpu::kernel_sum);
  m.impl("kernel_sum_self", &lcw_fast::cpu::kernel_sum_self);
  m.impl("kernel_sum_grad", &lcw_fast::cpu::kernel_sum_grad);
  m.impl("kernel_sum_self_grad", &lcw_fast::cpu::kernel_sum_self_grad);
  m.impl("kernel_sum_grad_pair", &lcw_fast::cpu::kernel_sum_grad_pair);
  m.impl("kernel_sum_value_grad", &lcw_fast::cpu::kernel_sum_value_grad);
  m.impl("kernel_sum_value_grad_pair", &lcw_fast::cpu::kernel_sum_value_grad_pair);
  m.impl("kernel_sum_self_value_grad", &lcw_fast::cpu::kernel_sum_self_value_grad);
}
