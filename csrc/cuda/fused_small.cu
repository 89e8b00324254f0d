// Fused kernels for small D (2..256): one thread block per tile of rows of x, the other sample
// streamed tile by tile through shared memory, distances and k / k' in registers; nothing of size
// n x m is ever stored.
//
// A block runs 16 x 16 threads; thread (ty, tx) owns the pairs (rows ty + 16a, columns tx + 16b) of
// each BM x BN tile. Squared distances are summed from differences (no Gram cancellation).
//   fused_sum:  blocks take equal contiguous runs of tile pairs (for a self-sum only the upper
//               triangle, off-diagonal tiles weighted 2) and write one float64 partial each;
//               reduce_sum adds the partials in a fixed order, so results are bit-reproducible.
//   fused_grad: block (row tile, split) walks its share of column tiles, keeps w = k' in shared
//               memory and accumulates sum_j w_ij and sum_j w_ij y_j per row in registers; the
//               splits are added by finalize_grad in a fixed order (no atomics).
#include <algorithm>

#include <c10/cuda/CUDAException.h>

#include "device_math.cuh"
#include "kernels.h"

namespace lcw_fast::cuda {
namespace {

template <typename T, int DP>
struct Tile {
  static constexpr int BM = DP >= 256 ? 32 : 64;  // rows of x per tile
  static constexpr int BN = BM;                   // rows of y per tile
  static constexpr int TM = BM / 16;              // rows per thread
  static constexpr int TN = BN / 16;              // columns per thread
  static constexpr int LD = DP + 1;               // odd stride: column reads hit distinct banks
  static constexpr int Q = DP / 16;               // features per thread in the gradient
  static constexpr size_t sum_smem = size_t(BM + BN) * LD * sizeof(T);
  static constexpr size_t grad_smem = sum_smem + size_t(BM) * (BN + 1) * sizeof(T);
};

// Calls f(std::integral_constant<int, DP>) with DP the padded feature count for dim.
template <typename F>
void with_padded_dim(int64_t dim, F&& f) {
  if (dim <= 16) return f(std::integral_constant<int, 16>());
  if (dim <= 32) return f(std::integral_constant<int, 32>());
  if (dim <= 64) return f(std::integral_constant<int, 64>());
  if (dim <= 128) return f(std::integral_constant<int, 128>());
  return f(std::integral_constant<int, 256>());
}

int sm_count() {
  int device = 0, sms = 0;
  C10_CUDA_CHECK(cudaGetDevice(&device));
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  return sms;
}

// Enough blocks to fill every SM a few times over.
int64_t target_blocks() { return 8 * int64_t(sm_count()); }

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

template <typename Kernel>
void allow_smem(Kernel kernel, size_t bytes) {
  C10_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
}

// Copies rows [row0, row0 + ROWS) of src (count x dim) into a ROWS x (DP + 1) tile, zero-padded.
template <typename T, int DP, int ROWS>
__device__ __forceinline__ void load_tile(T* tile, const T* src, int64_t row0, int64_t count, int dim) {
  for (int idx = threadIdx.x; idx < ROWS * DP; idx += kBlockThreads) {
    const int r = idx / DP, f = idx % DP;
    const int64_t row = row0 + r;
    tile[r * (DP + 1) + f] = (row < count && f < dim) ? src[row * dim + f] : T(0);
  }
}

// d[a][b] = |xs[ty + 16a] - ys[tx + 16b]|^2 over the first dim features.
template <typename T, int DP, int TM, int TN>
__device__ __forceinline__ void tile_sq_dists(T (&d)[TM][TN], const T* xs, const T* ys, int dim) {
  const int ty = threadIdx.x / 16, tx = threadIdx.x % 16;
#pragma unroll
  for (int a = 0; a < TM; ++a)
#pragma unroll
    for (int b = 0; b < TN; ++b) d[a][b] = T(0);
#pragma unroll 4
  for (int f = 0; f < dim; ++f) {
    T xv[TM], yv[TN];
#pragma unroll
    for (int a = 0; a < TM; ++a) xv[a] = xs[(ty + 16 * a) * (DP + 1) + f];
#pragma unroll
    for (int b = 0; b < TN; ++b) yv[b] = ys[(tx + 16 * b) * (DP + 1) + f];
#pragma unroll
    for (int a = 0; a < TM; ++a)
#pragma unroll
      for (int b = 0; b < TN; ++b) {
        const T t = xv[a] - yv[b];
        d[a][b] = fma(t, t, d[a][b]);
      }
  }
}

// Tile pair number p -> (i, j): row-major over all tiles x tiles, or over the upper triangle j >= i.
__device__ __forceinline__ void tile_pair(int64_t p, bool self, int64_t tiles_y, int64_t& i, int64_t& j) {
  if (!self) {
    i = p / tiles_y;
    j = p % tiles_y;
    return;
  }
  i = 0;
  while (p >= tiles_y - i) {  // row i of the triangle holds tiles_y - i pairs
    p -= tiles_y - i;
    ++i;
  }
  j = i + p;
}

template <typename T, int DP>
__global__ void __launch_bounds__(kBlockThreads)
fused_sum_kernel(const T* x, int64_t n, const T* y, int64_t m, int dim, bool self, T gamma, T inv_c,
                 int64_t tiles_y, int64_t pairs, int64_t chunk, double* partials) {
  using C = Tile<T, DP>;
  extern __shared__ __align__(16) unsigned char smem[];
  T* xs = reinterpret_cast<T*>(smem);
  T* ys = xs + C::BM * C::LD;
  const int ty = threadIdx.x / 16, tx = threadIdx.x % 16;

  int64_t p = int64_t(blockIdx.x) * chunk, i, j, loaded = -1;
  const int64_t p_end = p + chunk < pairs ? p + chunk : pairs;
  tile_pair(p, self, tiles_y, i, j);
  double total = 0.0;
  for (; p < p_end; ++p) {
    __syncthreads();  // every thread is done reading the previous tiles
    if (i != loaded) {
      load_tile<T, DP, C::BM>(xs, x, i * C::BM, n, dim);
      loaded = i;
    }
    load_tile<T, DP, C::BN>(ys, y, j * C::BN, m, dim);
    __syncthreads();
    T d[C::TM][C::TN];
    tile_sq_dists<T, DP>(d, xs, ys, dim);
    T s = T(0);
#pragma unroll
    for (int a = 0; a < C::TM; ++a)
#pragma unroll
      for (int b = 0; b < C::TN; ++b) {
        const bool valid = i * C::BM + ty + 16 * a < n && j * C::BN + tx + 16 * b < m;
        if (valid) s += cw_k(d[a][b], gamma, inv_c);
      }
    total += (self && j != i ? 2.0 : 1.0) * double(s);
    if (++j == tiles_y) {
      ++i;
      j = self ? i : 0;
    }
  }
  total = block_sum(total);
  if (threadIdx.x == 0) partials[blockIdx.x] = total;
}

template <typename T, int DP>
__global__ void __launch_bounds__(kBlockThreads)
fused_grad_kernel(const T* x, int64_t n, const T* y, int64_t m, int dim, T gamma, T inv_c, int64_t tiles_y,
                  T* acc_parts, double* rowsum_parts) {
  using C = Tile<T, DP>;
  extern __shared__ __align__(16) unsigned char smem[];
  T* xs = reinterpret_cast<T*>(smem);
  T* ys = xs + C::BM * C::LD;
  T* ws = ys + C::BN * C::LD;  // BM x (BN + 1) weights w_ij of the current tile
  const int ty = threadIdx.x / 16, tx = threadIdx.x % 16;
  const int64_t i = blockIdx.x, split = blockIdx.y, splits = gridDim.y;
  const int64_t j_begin = tiles_y * split / splits, j_end = tiles_y * (split + 1) / splits;

  load_tile<T, DP, C::BM>(xs, x, i * C::BM, n, dim);
  T acc[C::TM][C::Q];
  double rowsum[C::TM];
#pragma unroll
  for (int a = 0; a < C::TM; ++a) {
    rowsum[a] = 0.0;
#pragma unroll
    for (int q = 0; q < C::Q; ++q) acc[a][q] = T(0);
  }
  for (int64_t j = j_begin; j < j_end; ++j) {
    __syncthreads();  // every thread is done with the previous ys / ws
    load_tile<T, DP, C::BN>(ys, y, j * C::BN, m, dim);
    __syncthreads();
    T d[C::TM][C::TN];
    tile_sq_dists<T, DP>(d, xs, ys, dim);
#pragma unroll
    for (int a = 0; a < C::TM; ++a) {
      T rs = T(0);
#pragma unroll
      for (int b = 0; b < C::TN; ++b) {
        const T w = j * C::BN + tx + 16 * b < m ? cw_w(d[a][b], gamma, inv_c) : T(0);
        rs += w;
        ws[(ty + 16 * a) * (C::BN + 1) + tx + 16 * b] = w;
      }
      rowsum[a] += double(rs);
    }
    __syncthreads();
    // Tile-local sums first, then one add per tile: keeps the float32 error of long rows small.
    T part[C::TM][C::Q];
#pragma unroll
    for (int a = 0; a < C::TM; ++a)
#pragma unroll
      for (int q = 0; q < C::Q; ++q) part[a][q] = T(0);
    for (int c = 0; c < C::BN; ++c) {
      T yv[C::Q];
#pragma unroll
      for (int q = 0; q < C::Q; ++q) yv[q] = ys[c * C::LD + tx + 16 * q];
#pragma unroll
      for (int a = 0; a < C::TM; ++a) {
        const T wv = ws[(ty + 16 * a) * (C::BN + 1) + c];
#pragma unroll
        for (int q = 0; q < C::Q; ++q) part[a][q] = fma(wv, yv[q], part[a][q]);
      }
    }
#pragma unroll
    for (int a = 0; a < C::TM; ++a)
#pragma unroll
      for (int q = 0; q < C::Q; ++q) acc[a][q] += part[a][q];
  }
#pragma unroll
  for (int a = 0; a < C::TM; ++a) {
    double rs = rowsum[a];  // the 16 threads of a row form one half-warp
    for (int off = 8; off > 0; off /= 2) rs += __shfl_down_sync(0xffffffffu, rs, off, 16);
    const int64_t row = i * C::BM + ty + 16 * a;
    if (row >= n) continue;
    const int64_t base = split * n + row;
    if (tx == 0) rowsum_parts[base] = rs;
#pragma unroll
    for (int q = 0; q < C::Q; ++q)
      if (tx + 16 * q < dim) acc_parts[base * dim + tx + 16 * q] = acc[a][q];
  }
}

template <typename T>
int64_t tile_rows(int64_t dim) {
  int64_t rows = 0;
  with_padded_dim(dim, [&](auto dp) { rows = Tile<T, decltype(dp)::value>::BM; });
  return rows;
}

template <typename T>
int64_t sum_pairs(int64_t n, int64_t m, int64_t dim, bool self) {
  const int64_t rows = tile_rows<T>(dim), tx = ceil_div(n, rows), ty = ceil_div(m, rows);
  return self ? tx * (tx + 1) / 2 : tx * ty;
}

}  // namespace

template <typename T>
int64_t fused_sum_blocks(int64_t n, int64_t m, int64_t dim, bool self) {
  const int64_t pairs = sum_pairs<T>(n, m, dim, self);
  return ceil_div(pairs, ceil_div(pairs, target_blocks()));
}

template <typename T>
void fused_sum(const T* x, int64_t n, const T* y, int64_t m, int64_t dim, bool self, double gamma,
               double inv_c, double* partials, cudaStream_t stream) {
  const int64_t pairs = sum_pairs<T>(n, m, dim, self);
  const int64_t chunk = ceil_div(pairs, target_blocks()), blocks = ceil_div(pairs, chunk);
  with_padded_dim(dim, [&](auto dp) {
    constexpr int DP = decltype(dp)::value;
    using C = Tile<T, DP>;
    allow_smem(fused_sum_kernel<T, DP>, C::sum_smem);
    fused_sum_kernel<T, DP><<<blocks, kBlockThreads, C::sum_smem, stream>>>(
        x, n, y, m, int(dim), self, T(gamma), T(inv_c), ceil_div(m, C::BN), pairs, chunk, partials);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

template <typename T>
int64_t fused_grad_splits(int64_t n, int64_t m, int64_t dim) {
  const int64_t rows = tile_rows<T>(dim);
  return std::clamp<int64_t>(ceil_div(target_blocks(), ceil_div(n, rows)), 1, ceil_div(m, rows));
}

template <typename T>
void fused_grad(const T* x, int64_t n, const T* y, int64_t m, int64_t dim, double gamma, double inv_c,
                T* acc_parts, double* rowsum_parts, cudaStream_t stream) {
  const int64_t splits = fused_grad_splits<T>(n, m, dim);
  with_padded_dim(dim, [&](auto dp) {
    constexpr int DP = decltype(dp)::value;
    using C = Tile<T, DP>;
    allow_smem(fused_grad_kernel<T, DP>, C::grad_smem);
    const dim3 grid(unsigned(ceil_div(n, C::BM)), unsigned(splits));
    fused_grad_kernel<T, DP><<<grid, kBlockThreads, C::grad_smem, stream>>>(
        x, n, y, m, int(dim), T(gamma), T(inv_c), ceil_div(m, C::BN), acc_parts, rowsum_parts);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

#define LCW_INSTANTIATE(T)                                                                                 \
  template int64_t fused_sum_blocks<T>(int64_t, int64_t, int64_t, bool);                                 \
  template void fused_sum<T>(const T*, int64_t, const T*, int64_t, int64_t, bool, double, double, double*, \
                             cudaStream_t);                                                              \
  template int64_t fused_grad_splits<T>(int64_t, int64_t, int64_t);                                      \
  template void fused_grad<T>(const T*, int64_t, const T*, int64_t, int64_t, double, double, T*, double*, \
                              cudaStream_t);
LCW_INSTANTIATE(float)
LCW_INSTANTIATE(double)
#undef LCW_INSTANTIATE

}  // namespace lcw_fast::cuda
