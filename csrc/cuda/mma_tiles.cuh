// Tensor-core tile products of the fused small-D kernels (fused_small.cu), by WMMA:
//   Gram  G  = X_I . Y_J^T          (BM x BN, from the row tiles in shared memory)
//   rows  A_I += W . Y_J            (BM x DP, the row side of the gradient)
//   cols  A_J += W^T . X_I          (BN x DP, the column side: the other sample, or the other
//                                    tile of an off-diagonal self-sum pair)
// at the precision of `Prec`:
//   kTf32x3  float32 inputs, precision "default": every operand split into a TF32 part and the
//            float32 rest, a.b ~ a_lo.b_hi + a_hi.b_lo + a_hi.b_hi (small terms first; a_lo.b_lo,
//            ~2^-22 relative, dropped), float32 accumulation: about float32 accuracy.
//   kTf32    float32 inputs, precision "fast": one TF32 product (about 1e-3 relative per product).
//   kBf16    bfloat16 inputs (both samples): the Gram in bf16 (bf16 x bf16 is exact in the float32
//            accumulator); W split into bf16 hi + lo parts, Y exact: W.Y ~ W_lo.Y + W_hi.Y.
//   kF64     float64: DMMA (m8n8k4) in float64.
// Shared-memory operands are stored in `parts` copies (hi, lo) of row-major tiles with a padded
// stride; every fragment pointer is 32-byte aligned and every stride a multiple of 16 bytes, as
// wmma::load_matrix_sync requires.
#pragma once
#include <cstdint>
#include <type_traits>

#include <cuda_bf16.h>
#include <mma.h>

#include "device_math.cuh"
#include "kernels.h"

namespace lcw_fast::cuda {

namespace wmma = nvcuda::wmma;

template <Prec P>
struct MmaTraits;

template <>
struct MmaTraits<Prec::kTf32x3> {
  using In = float;   // elements of the input samples
  using S = float;    // operand (and weight) parts in shared memory
  using Acc = float;  // accumulators: Gram, gradient sums
  using Frag = wmma::precision::tf32;
  static constexpr int M = 16, N = 16, K = 8, kParts = 2, kWParts = 2, kGramTerms = 3, kWyTerms = 3;
};
template <>
struct MmaTraits<Prec::kTf32> {
  using In = float;
  using S = float;
  using Acc = float;
  using Frag = wmma::precision::tf32;
  static constexpr int M = 16, N = 16, K = 8, kParts = 1, kWParts = 1, kGramTerms = 1, kWyTerms = 1;
};
template <>
struct MmaTraits<Prec::kBf16> {
  using In = __nv_bfloat16;
  using S = __nv_bfloat16;
  using Acc = float;
  using Frag = __nv_bfloat16;
  static constexpr int M = 16, N = 16, K = 16, kParts = 1, kWParts = 2, kGramTerms = 1, kWyTerms = 2;
};
template <>
struct MmaTraits<Prec::kF64> {
  using In = double;
  using S = double;
  using Acc = double;
  using Frag = double;
  static constexpr int M = 8, N = 8, K = 4, kParts = 1, kWParts = 1, kGramTerms = 1, kWyTerms = 1;
};

// Term t of a product of `terms` terms uses part a_part of the left operand and b_part of the
// right one (1 = lo, 0 = hi): 3 terms lo.hi, hi.lo, hi.hi; 2 terms (bf16 W.Y) lo.Y, hi.Y; 1 term hi.hi.
__device__ __forceinline__ constexpr int a_part(int t, int terms) { return terms > 1 && t == 0 ? 1 : 0; }
__device__ __forceinline__ constexpr int b_part(int t, int terms) { return terms == 3 && t == 1 ? 1 : 0; }

// S from a float / double value (bf16 by round-to-nearest; torch builds without implicit bf16 conversions).
template <typename S, typename V>
__device__ __forceinline__ S from_value(V v) {
  if constexpr (std::is_same_v<S, __nv_bfloat16>) {
    return __float2bfloat16_rn(float(v));
  } else {
    return S(v);
  }
}

template <typename V, typename In>
__device__ __forceinline__ V to_value(In v) {
  if constexpr (std::is_same_v<In, __nv_bfloat16>) {
    return V(__bfloat162float(v));
  } else {
    return V(v);
  }
}

// Value v stored in PARTS parts of the precision's shared-memory type: hi (PARTS = 1), or hi and
// lo = v - hi (TF32 parts for the tf32 precisions, bf16 parts for kBf16).
template <Prec P, int PARTS, typename V>
__device__ __forceinline__ void store_parts(typename MmaTraits<P>::S* hi, typename MmaTraits<P>::S* lo, V v) {
  using S = typename MmaTraits<P>::S;
  if constexpr (PARTS == 1) {
    *hi = from_value<S>(v);
  } else if constexpr (P == Prec::kBf16) {
    const __nv_bfloat16 h = __float2bfloat16_rn(float(v));
    *hi = h;
    *lo = __float2bfloat16_rn(float(v) - __bfloat162float(h));
  } else {
    const float h = tf32_round(float(v));
    *hi = h;
    *lo = float(v) - h;
  }
}

// The value of a weight stored by store_parts in PARTS parts: what the products multiply by.
template <Prec P, int PARTS>
__device__ __forceinline__ double joined(const typename MmaTraits<P>::S* hi, const typename MmaTraits<P>::S* lo) {
  if constexpr (PARTS == 1) {
    return to_value<double>(*hi);
  } else {
    return to_value<double>(*hi) + to_value<double>(*lo);
  }
}

template <typename Frag>
__device__ __forceinline__ void round_tf32(Frag& f) {
#pragma unroll
  for (int t = 0; t < f.num_elements; ++t) f.x[t] = wmma::__float_to_tf32(f.x[t]);
}

// c (+)= sum over k < k_len (a multiple of K) and the product's terms of A[:, k] B[k, :], for one
// M x N output fragment. a(p) / b(p) give part p of the operands at the fragment's origin; the k
// step of A is a_step, of B b_step elements.
template <Prec P, int TERMS, typename LayoutA, typename LayoutB, typename CFrag, typename AOf, typename BOf>
__device__ __forceinline__ void mma_accumulate(CFrag& c, AOf a, int lda, int64_t a_step, BOf b, int ldb,
                                               int64_t b_step, int k_len) {
  using Tr = MmaTraits<P>;
  wmma::fragment<wmma::matrix_a, Tr::M, Tr::N, Tr::K, typename Tr::Frag, LayoutA> fa;
  wmma::fragment<wmma::matrix_b, Tr::M, Tr::N, Tr::K, typename Tr::Frag, LayoutB> fb;
  for (int k = 0; k < k_len; k += Tr::K) {
#pragma unroll
    for (int t = 0; t < TERMS; ++t) {
      wmma::load_matrix_sync(fa, a(a_part(t, TERMS)) + k / Tr::K * a_step, lda);
      wmma::load_matrix_sync(fb, b(b_part(t, TERMS)) + k / Tr::K * b_step, ldb);
      if constexpr (P == Prec::kTf32x3 || P == Prec::kTf32) {
        round_tf32(fa);
        round_tf32(fb);
      }
      wmma::mma_sync(c, fa, fb, c);
    }
  }
}

// Tile geometry and shared-memory layout of the fused kernels for padded dimension DP.
template <Prec P, int DP>
struct TileShape {
  using Tr = MmaTraits<P>;
  using S = typename Tr::S;
  using Acc = typename Tr::Acc;
  static constexpr int BM = DP >= 256 ? 32 : 64;  // rows per tile (both samples)
  static constexpr int BN = BM;
  static constexpr int PAD = 16 / int(sizeof(S));  // 16 bytes: strides stay multiples of 16 B, rows shift banks
  static constexpr int LD = DP + PAD;              // operand tiles: BM x DP, stride LD
  static constexpr int LDW = BN + PAD;             // weight tile: BM x BN, stride LDW
  static constexpr int LDG = BN + 16 / int(sizeof(Acc));
  static constexpr size_t align(size_t bytes) { return (bytes + 127) / 128 * 128; }
  static constexpr size_t x_bytes = align(size_t(Tr::kParts) * BM * LD * sizeof(S));
  static constexpr size_t y_bytes = align(size_t(Tr::kParts) * BN * LD * sizeof(S));
  static constexpr size_t g_bytes = align(size_t(BM) * LDG * sizeof(Acc));
  static constexpr size_t w_bytes = align(size_t(Tr::kWParts) * BM * LDW * sizeof(S));
  static constexpr size_t value_smem = x_bytes + y_bytes + g_bytes;
  static constexpr size_t grad_smem = value_smem + w_bytes;
  // 227 KiB is sm_90's opt-in limit per block, static shared memory (block_sum's) included.
  static_assert(grad_smem + 1024 <= 227 * 1024, "tile does not fit the shared memory of one SM");
  static_assert(BM % Tr::M == 0 && BN % Tr::N == 0 && DP % Tr::N == 0 && BN % Tr::K == 0, "tile / fragment shape");
};

}  // namespace lcw_fast::cuda
