// Inner loops of the fused CPU kernels on one pair tile, on raw row-major pointers.
//
// A tile pairs bm rows of x with bn rows of y (bm, bn <= 4 kTile). Its scratch holds a
// bm x bn row-major matrix (leading dimension bn): first the squared distances d, then, for the
// backward pass, w = k'(d) written over them. The loops are written so that GCC vectorises them
// (`omp simd`, built with -fopenmp and -fno-math-errno); reductions run in the input precision
// over at most one tile row or column and the callers accumulate them in float64.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

// Hot loops are compiled for AVX-512 and AVX2+FMA as well as baseline x86-64; the loader picks the
// best the CPU supports (GCC function multi-versioning), so the build stays portable.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define LCW_FAST_CPU_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define LCW_FAST_CPU_CLONES
#endif

namespace lcw_fast::cpu {

constexpr int64_t kTile = 128;

// d = |x_a - y_b|^2 from differences (exact for small D). x: bm rows of length dim;
// yt: y transposed (dim rows of leading dimension ldy), already offset to the tile's first column.
template <typename T>
LCW_FAST_CPU_CLONES void direct_sq_dists(const T* x, int64_t bm, const T* yt, int64_t ldy, int64_t bn, int64_t dim, T* d) {
  for (int64_t a = 0; a < bm; ++a) {
    T* row = d + a * bn;
    const T* xa = x + a * dim;
    std::fill(row, row + bn, T(0));
    for (int64_t k = 0; k < dim; ++k) {
      const T xv = xa[k];
      const T* yk = yt + k * ldy;
#pragma omp simd
      for (int64_t b = 0; b < bn; ++b) {
        const T t = xv - yk[b];
        row[b] += t * t;
      }
    }
  }
}

// Turns the Gram tile g = x_a . y_b (in place) into squared distances |x_a|^2 + |y_b|^2 - 2 g,
// clamped at 0 against rounding; `diagonal` (x and y are the same tile) makes d_aa exactly 0.
template <typename T>
LCW_FAST_CPU_CLONES void gram_to_sq_dists(const T* x_norms, const T* y_norms, int64_t bm, int64_t bn, bool diagonal, T* g) {
  for (int64_t a = 0; a < bm; ++a) {
    T* row = g + a * bn;
    const T xa = x_norms[a];
#pragma omp simd
    for (int64_t b = 0; b < bn; ++b) row[b] = std::max(xa + y_norms[b] - T(2) * row[b], T(0));
    if (diagonal) row[a] = T(0);
  }
}

// The kernel k(d) = (gamma + d / c)^(-1/2) and its derivative k'(d) = -k^3 / (2c).
template <typename T>
struct Kernel {
  T gamma, inv_c;
  T value(T d) const { return T(1) / std::sqrt(gamma + d * inv_c); }
};

// sum_ab k(d_ab) over the tile, in float64.
template <typename T>
LCW_FAST_CPU_CLONES double tile_kernel_sum(const T* d, int64_t bm, int64_t bn, Kernel<T> kernel) {
  double total = 0.0;
  for (int64_t a = 0; a < bm; ++a) {
    const T* row = d + a * bn;
    T s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t b = 0; b < bn; ++b) s += kernel.value(row[b]);
    total += s;
  }
  return total;
}

// Overwrites d with w = k'(d), adds the row sums of w to row_sums[a] (float64) and returns
// sum_ab k(d_ab) over the tile (float64): the value comes with the gradient at one more add per
// pair. On a diagonal tile w_aa is zeroed: its term w_aa (x_a - x_a) vanishes, and dropping it
// keeps a lone point's gradient exactly 0 instead of a rounding residue of w_aa x_a - w_aa x_a.
template <typename T>
LCW_FAST_CPU_CLONES double tile_derivative(T* d, int64_t bm, int64_t bn, bool diagonal, Kernel<T> kernel,
                                           double* row_sums) {
  const T scale = T(-0.5) * kernel.inv_c;
  double total = 0.0;
  for (int64_t a = 0; a < bm; ++a) {
    T* row = d + a * bn;
    T s = 0, v = 0;
#pragma omp simd reduction(+ : s, v)
    for (int64_t b = 0; b < bn; ++b) {
      const T k = kernel.value(row[b]);
      row[b] = scale * k * k * k;
      s += row[b];
      v += k;
    }
    if (diagonal) {
      s -= row[a];
      row[a] = T(0);
    }
    row_sums[a] += s;
    total += v;
  }
  return total;
}

// col_sums[b] += sum_a w_ab (float64).
template <typename T>
LCW_FAST_CPU_CLONES void add_column_sums(const T* w, int64_t bm, int64_t bn, double* col_sums) {
  for (int64_t a = 0; a < bm; ++a) {
    const T* row = w + a * bn;
#pragma omp simd
    for (int64_t b = 0; b < bn; ++b) col_sums[b] += row[b];
  }
}

// out (bm x dim) = W . Y for small dim, with Y given transposed: out_ak = sum_b w_ab yt[k][b].
template <typename T>
LCW_FAST_CPU_CLONES void direct_row_products(const T* w, int64_t bm, int64_t bn, const T* yt, int64_t ldy, int64_t dim, T* out) {
  for (int64_t a = 0; a < bm; ++a) {
    const T* row = w + a * bn;
    for (int64_t k = 0; k < dim; ++k) {
      const T* yk = yt + k * ldy;
      T s = 0;
#pragma omp simd reduction(+ : s)
      for (int64_t b = 0; b < bn; ++b) s += row[b] * yk[b];
      out[a * dim + k] = s;
    }
  }
}

// out (dim x bn) = X^T . W for small dim: out_kb = sum_a x_ak w_ab. x: bm rows of length dim.
template <typename T>
LCW_FAST_CPU_CLONES void direct_col_products(const T* w, int64_t bm, int64_t bn, const T* x, int64_t dim, T* out) {
  std::fill(out, out + dim * bn, T(0));
  for (int64_t a = 0; a < bm; ++a) {
    const T* row = w + a * bn;
    for (int64_t k = 0; k < dim; ++k) {
      const T xv = x[a * dim + k];
      T* ok = out + k * bn;
#pragma omp simd
      for (int64_t b = 0; b < bn; ++b) ok[b] += xv * row[b];
    }
  }
}

// acc[a][k] += p[a][k] for a bm x dim block (float64 accumulators).
template <typename T>
LCW_FAST_CPU_CLONES void add_rows(const T* p, int64_t bm, int64_t dim, double* acc) {
  const int64_t count = bm * dim;
#pragma omp simd
  for (int64_t i = 0; i < count; ++i) acc[i] += p[i];
}

// acc[b][k] += pt[k][b]: adds a transposed dim x bn block to bn accumulator rows of length dim.
template <typename T>
LCW_FAST_CPU_CLONES void add_rows_transposed(const T* pt, int64_t bn, int64_t dim, double* acc) {
  for (int64_t k = 0; k < dim; ++k) {
    const T* pk = pt + k * bn;
    for (int64_t b = 0; b < bn; ++b) acc[b * dim + k] += pk[b];
  }
}

}  // namespace lcw_fast::cpu
