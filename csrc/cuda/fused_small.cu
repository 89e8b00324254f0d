// Fused kernels for small D (2..256): tiles of BM rows of each sample in shared memory, the Gram
// tile G = X_I . Y_J^T on tensor cores (mma_tiles.cuh), distances d = |x|^2 + |y|^2 - 2G, k and
// w = k' per pair, and for the gradient the products W . Y_J (rows) and W^T . X_I (columns) on
// tensor cores, added to float32 (float64) accumulators in global memory. Nothing of size n x m
// is stored.
//   fused_value:      blocks take equal contiguous runs of tile pairs (a self-sum only the upper
//                     triangle, off-diagonal tiles weighted 2), one float64 partial each.
//   fused_value_grad: one launch per round of a schedule of block pairs (A, B) (groups of tiles),
//                     in which no two thread blocks touch the same rows of an accumulator, so the
//                     read-modify-write of the accumulators needs no atomics and happens in a fixed
//                     order: bit-reproducible. Self-sums visit each unordered tile pair once and
//                     update both of its tiles.
// Value and gradient come from the same visit of each pair. The tiles take 23-196 KiB of shared
// memory, so only one or a few 256-thread blocks share an SM anyway: __launch_bounds__(256, 1)
// lets ptxas use the registers that keep the kernels spill-free (without the 1 it capped them at
// 64 registers and spilled).
#include <algorithm>
#include <atomic>
#include <cstdint>

#include <c10/cuda/CUDAException.h>

#include "device_math.cuh"
#include "kernels.h"
#include "mma_tiles.cuh"

namespace lcw_fast::cuda {
namespace {

// Calls f(std::integral_constant<int, DP>) with DP the padded feature count for dim.
template <typename F>
void with_padded_dim(int64_t dim, F&& f) {
  if (dim <= 16) return f(std::integral_constant<int, 16>());
  if (dim <= 32) return f(std::integral_constant<int, 32>());
  if (dim <= 64) return f(std::integral_constant<int, 64>());
  if (dim <= 128) return f(std::integral_constant<int, 128>());
  return f(std::integral_constant<int, 256>());
}

template <typename F>
void with_prec(Prec p, F&& f) {
  switch (p) {
    case Prec::kTf32x3: return f(std::integral_constant<Prec, Prec::kTf32x3>());
    case Prec::kTf32: return f(std::integral_constant<Prec, Prec::kTf32>());
    case Prec::kBf16: return f(std::integral_constant<Prec, Prec::kBf16>());
    case Prec::kF64: return f(std::integral_constant<Prec, Prec::kF64>());
  }
}

template <Prec P>
struct Args {
  using In = typename MmaTraits<P>::In;
  using Acc = typename MmaTraits<P>::Acc;
  const In* x;
  const In* y;
  const Acc* xn;  // |x_i|^2
  const Acc* yn;
  int64_t n, m;
  int dim;
  Acc gamma, inv_c;
};

// Shared-memory tiles of one thread block; part p of an operand tile starts p tiles further.
template <Prec P, int DP>
struct Tiles {
  using C = TileShape<P, DP>;
  using S = typename C::S;
  using Acc = typename C::Acc;
  S* xs;
  S* ys;
  Acc* g;
  S* w;
  __device__ explicit Tiles(unsigned char* base)
      : xs(reinterpret_cast<S*>(base)),
        ys(reinterpret_cast<S*>(base + C::x_bytes)),
        g(reinterpret_cast<Acc*>(base + C::x_bytes + C::y_bytes)),
        w(reinterpret_cast<S*>(base + C::value_smem)) {}
};

// Rows [row0, row0 + BM) of src (count x dim) into the parts of a BM x DP tile, zero-padded.
template <Prec P, int DP>
__device__ __forceinline__ void load_tile(typename TileShape<P, DP>::S* tile, const typename MmaTraits<P>::In* src,
                                          int64_t row0, int64_t count, int dim) {
  using C = TileShape<P, DP>;
  using Acc = typename C::Acc;
  for (int idx = threadIdx.x; idx < C::BM * DP; idx += kBlockThreads) {
    const int r = idx / DP, f = idx % DP;
    const int64_t row = row0 + r;
    const Acc v = row < count && f < dim ? to_value<Acc>(src[row * dim + f]) : Acc(0);
    store_parts<P, MmaTraits<P>::kParts>(tile + r * C::LD + f, tile + C::BM * C::LD + r * C::LD + f, v);
  }
}

// g = X_I . Y_J^T (BM x BN) from the operand tiles.
template <Prec P, int DP>
__device__ __forceinline__ void gram_tile(const Tiles<P, DP>& t, int dim) {
  using C = TileShape<P, DP>;
  using Tr = MmaTraits<P>;
  const int warp = threadIdx.x / 32, k_len = (dim + Tr::K - 1) / Tr::K * Tr::K;
  constexpr int FR = C::BM / Tr::M, FC = C::BN / Tr::N;
  for (int f = warp; f < FR * FC; f += kBlockThreads / 32) {
    const int fr = f / FC, fc = f % FC;
    wmma::fragment<wmma::accumulator, Tr::M, Tr::N, Tr::K, typename Tr::Acc> c;
    wmma::fill_fragment(c, typename Tr::Acc(0));
    mma_accumulate<P, Tr::kGramTerms, wmma::row_major, wmma::col_major>(
        c, [&](int p) { return t.xs + p * C::BM * C::LD + fr * Tr::M * C::LD; }, C::LD, Tr::K,
        [&](int p) { return t.ys + p * C::BN * C::LD + fc * Tr::N * C::LD; }, C::LD, Tr::K, k_len);
    wmma::store_matrix_sync(t.g + fr * Tr::M * C::LDG + fc * Tr::N, c, C::LDG, wmma::mem_row_major);
  }
}

// k over the valid pairs of tile (I, J), times weight, summed per thread; with WRITE_W the
// weights w = k' (0 outside the samples) go to the weight tile.
template <Prec P, int DP, bool WRITE_W>
__device__ __forceinline__ double kernel_tile(const Tiles<P, DP>& t, const Args<P>& a, int64_t i0, int64_t j0,
                                              double weight) {
  using C = TileShape<P, DP>;
  using Acc = typename C::Acc;
  Acc s = Acc(0);
  for (int idx = threadIdx.x; idx < C::BM * C::BN; idx += kBlockThreads) {
    const int r = idx / C::BN, c = idx % C::BN;
    const int64_t i = i0 + r, j = j0 + c;
    Acc w = Acc(0);
    if (i < a.n && j < a.m) {
      Acc d = a.xn[i] + a.yn[j] - Acc(2) * t.g[r * C::LDG + c];
      d = d < Acc(0) ? Acc(0) : d;  // rounding can make a tiny distance negative; NaN passes through
      const Acc k = cw_k(d, a.gamma, a.inv_c);
      s += k;
      w = cw_w_of_k(k, a.inv_c);
    }
    if constexpr (WRITE_W)
      store_parts<P, MmaTraits<P>::kWParts>(t.w + r * C::LDW + c, t.w + C::BM * C::LDW + r * C::LDW + c, w);
  }
  return weight * double(s);
}

// Accumulators of the gradient: acc (rows_pad x DP) += sum_j w_ij z_j and rows (rows_pad) +=
// sum_j w_ij for the rows of x (and of y for the column side).
template <Prec P>
struct Sums {
  using Acc = typename MmaTraits<P>::Acc;
  Acc* acc_x;
  double* rows_x;
  Acc* acc_y;  // column side (y's rows, or x's own for a self-sum); null without one
  double* rows_y;
  int64_t x_slot;  // elements between the x accumulators of consecutive `second` blocks (0: one copy)
  int64_t x_slot_rows;
};

// Row side acc_x[I] += W . Y_J and, with `cols`, column side acc_y[J] += W^T . X_I, plus the row /
// column sums of the weights the products use. Caller: the weight tile is complete (synced).
template <Prec P, int DP>
__device__ __forceinline__ void grad_tile(const Tiles<P, DP>& t, typename MmaTraits<P>::Acc* acc_x, double* rows_x,
                                          typename MmaTraits<P>::Acc* acc_y, double* rows_y, int dim, bool cols) {
  using C = TileShape<P, DP>;
  using Tr = MmaTraits<P>;
  using Acc = typename Tr::Acc;
  constexpr int W = Tr::kWParts;
  const int tid = threadIdx.x;
  if (tid < C::BM) {
    double s = 0.0;
    for (int c = 0; c < C::BN; ++c) s += joined<P, W>(t.w + tid * C::LDW + c, t.w + (C::BM + tid) * C::LDW + c);
    rows_x[tid] += s;
  } else if (cols && tid < C::BM + C::BN) {
    const int c = tid - C::BM;
    double s = 0.0;
    for (int r = 0; r < C::BM; ++r) s += joined<P, W>(t.w + r * C::LDW + c, t.w + (C::BM + r) * C::LDW + c);
    rows_y[c] += s;
  }
  const int warp = tid / 32, fc_count = (dim + Tr::N - 1) / Tr::N;
  constexpr int FR = C::BM / Tr::M;
  const int frags = FR * fc_count * (cols ? 2 : 1);
  for (int f = warp; f < frags; f += kBlockThreads / 32) {
    const bool col_side = f >= FR * fc_count;
    const int g = col_side ? f - FR * fc_count : f, fr = g / fc_count, fc = g % fc_count;
    Acc* out = (col_side ? acc_y : acc_x) + int64_t(fr) * Tr::M * DP + fc * Tr::N;
    wmma::fragment<wmma::accumulator, Tr::M, Tr::N, Tr::K, Acc> c;
    wmma::load_matrix_sync(c, out, DP, wmma::mem_row_major);
    if (!col_side) {
      mma_accumulate<P, Tr::kWyTerms, wmma::row_major, wmma::row_major>(
          c, [&](int p) { return t.w + p * C::BM * C::LDW + fr * Tr::M * C::LDW; }, C::LDW, Tr::K,
          [&](int p) { return t.ys + p * C::BN * C::LD + fc * Tr::N; }, C::LD, int64_t(Tr::K) * C::LD, C::BN);
    } else {
      mma_accumulate<P, Tr::kWyTerms, wmma::col_major, wmma::row_major>(
          c, [&](int p) { return t.w + p * C::BM * C::LDW + fr * Tr::M; }, C::LDW, int64_t(Tr::K) * C::LDW,
          [&](int p) { return t.xs + p * C::BM * C::LD + fc * Tr::N; }, C::LD, int64_t(Tr::K) * C::LD, C::BM);
    }
    wmma::store_matrix_sync(out, c, DP, wmma::mem_row_major);
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

// Loads tile i of x (unless it is already loaded) and tile j of y, forms their Gram tile and returns
// the pair's kernel sum (twice for an off-diagonal pair of a self-sum); with GRAD the tile keeps the
// kernel weights for grad_tile.
template <Prec P, int DP, bool GRAD>
__device__ __forceinline__ double pair_sum(const Tiles<P, DP>& t, const Args<P>& a, bool self, int64_t i, int64_t j,
                                           int64_t& loaded) {
  using C = TileShape<P, DP>;
  __syncthreads();  // every thread is done with the previous tiles
  if (i != loaded) {
    load_tile<P, DP>(t.xs, a.x, i * C::BM, a.n, a.dim);
    loaded = i;
  }
  load_tile<P, DP>(t.ys, a.y, j * C::BN, a.m, a.dim);
  __syncthreads();
  gram_tile<P, DP>(t, a.dim);
  __syncthreads();
  return kernel_tile<P, DP, GRAD>(t, a, i * C::BM, j * C::BN, self && j != i ? 2.0 : 1.0);
}

template <Prec P, int DP>
__global__ void __launch_bounds__(kBlockThreads, 1)
fused_value_kernel(Args<P> a, bool self, int64_t tiles_y, int64_t pairs, int64_t chunk, double* partials) {
  extern __shared__ __align__(128) unsigned char smem[];
  const Tiles<P, DP> t(smem);
  int64_t p = int64_t(blockIdx.x) * chunk, i, j, loaded = -1;
  const int64_t p_end = p + chunk < pairs ? p + chunk : pairs;
  tile_pair(p, self, tiles_y, i, j);
  double total = 0.0;
  for (; p < p_end; ++p) {
    total += pair_sum<P, DP, false>(t, a, self, i, j, loaded);
    if (++j == tiles_y) {
      ++i;
      j = self ? i : 0;
    }
  }
  total = block_sum(total);
  if (threadIdx.x == 0) partials[blockIdx.x] = total;
}

// Block pair (A, B) of this thread block: tiles [A gx, (A + 1) gx) of x against [B gy, (B + 1) gy)
// of y; a self-sum's diagonal pair (A == A) takes the upper triangle of its tiles.
template <Prec P, int DP>
__global__ void __launch_bounds__(kBlockThreads, 1)
fused_value_grad_kernel(Args<P> a, Sums<P> s, bool self, RoundPairs round, int64_t gx, int64_t gy, double* partials) {
  using C = TileShape<P, DP>;
  extern __shared__ __align__(128) unsigned char smem[];
  const Tiles<P, DP> t(smem);
  const int64_t tiles_x = (a.n + C::BM - 1) / C::BM, tiles_y = (a.m + C::BN - 1) / C::BN;
  int64_t A, B;
  if (round.count < 0) {  // a grid of all (A, B): x accumulators per B
    A = blockIdx.x % round.grid_a;
    B = blockIdx.x / round.grid_a;
  } else {
    A = round.first[blockIdx.x];
    B = round.second[blockIdx.x];
  }
  typename MmaTraits<P>::Acc* acc_x = s.acc_x + B * s.x_slot;
  double* rows_x = s.rows_x + B * s.x_slot_rows;
  const int64_t i_end = (A + 1) * gx < tiles_x ? (A + 1) * gx : tiles_x;
  const int64_t j_end = (B + 1) * gy < tiles_y ? (B + 1) * gy : tiles_y;
  double total = 0.0;
  int64_t loaded = -1;
  for (int64_t i = A * gx; i < i_end; ++i) {
    for (int64_t j = self && A == B ? i : B * gy; j < j_end; ++j) {
      total += pair_sum<P, DP, true>(t, a, self, i, j, loaded);
      __syncthreads();
      const bool cols = s.acc_y != nullptr && !(self && i == j);
      grad_tile<P, DP>(t, acc_x + i * C::BM * DP, rows_x + i * C::BM, cols ? s.acc_y + j * C::BN * DP : nullptr,
                       cols ? s.rows_y + j * C::BN : nullptr, a.dim, cols);
    }
  }
  total = block_sum(total);
  if (threadIdx.x == 0) partials[blockIdx.x] = total;
}

// Opts `Kernel` into `bytes` of dynamic shared memory, once per device (a self-sum gradient
// launches hundreds of rounds).
template <auto Kernel>
void allow_smem(size_t bytes) {
  static std::atomic<uint64_t> done{0};
  int device = 0;
  C10_CUDA_CHECK(cudaGetDevice(&device));
  const uint64_t bit = uint64_t(1) << (device % 64);
  if (done.load(std::memory_order_acquire) & bit) return;
  C10_CUDA_CHECK(cudaFuncSetAttribute(Kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
  done.fetch_or(bit, std::memory_order_release);
}

template <Prec P>
Args<P> make_args(const FusedInputs& in) {
  using In = typename MmaTraits<P>::In;
  using Acc = typename MmaTraits<P>::Acc;
  return Args<P>{static_cast<const In*>(in.x), static_cast<const In*>(in.y), static_cast<const Acc*>(in.xn),
                 static_cast<const Acc*>(in.yn), in.n, in.m, int(in.dim), Acc(in.gamma), Acc(in.inv_c)};
}

}  // namespace

int64_t fused_tile_rows(int64_t dim) { return dim > 128 ? 32 : 64; }

int64_t fused_padded_dim(int64_t dim) {
  int64_t dp = 0;
  with_padded_dim(dim, [&](auto d) { dp = decltype(d)::value; });
  return dp;
}

void fused_value(const FusedInputs& in, bool self, int64_t pairs, int64_t chunk, double* partials,
                 cudaStream_t stream) {
  const int64_t rows = fused_tile_rows(in.dim), tiles_y = (in.m + rows - 1) / rows;
  const int64_t blocks = (pairs + chunk - 1) / chunk;
  with_prec(in.prec, [&](auto pc) {
    constexpr Prec P = decltype(pc)::value;
    with_padded_dim(in.dim, [&](auto dp) {
      constexpr int DP = decltype(dp)::value;
      using C = TileShape<P, DP>;
      static_assert(C::BM == (DP > 128 ? 32 : 64), "fused_tile_rows");
      allow_smem<fused_value_kernel<P, DP>>(C::value_smem);
      fused_value_kernel<P, DP><<<unsigned(blocks), kBlockThreads, C::value_smem, stream>>>(
          make_args<P>(in), self, tiles_y, pairs, chunk, partials);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
}

void fused_value_grad_round(const FusedInputs& in, const FusedAccumulators& acc, bool self, const RoundPairs& round,
                            int64_t blocks, int64_t gx, int64_t gy, double* partials, cudaStream_t stream) {
  with_prec(in.prec, [&](auto pc) {
    constexpr Prec P = decltype(pc)::value;
    using Acc = typename MmaTraits<P>::Acc;
    const Sums<P> s{static_cast<Acc*>(acc.acc_x), acc.rows_x, static_cast<Acc*>(acc.acc_y), acc.rows_y,
                    acc.x_slot, acc.x_slot_rows};
    with_padded_dim(in.dim, [&](auto dp) {
      constexpr int DP = decltype(dp)::value;
      using C = TileShape<P, DP>;
      allow_smem<fused_value_grad_kernel<P, DP>>(C::grad_smem);
      fused_value_grad_kernel<P, DP><<<unsigned(blocks), kBlockThreads, C::grad_smem, stream>>>(
          make_args<P>(in), s, self, round, gx, gy, partials);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
}

}  // namespace lcw_fast::cuda
