// Row-major "NT" matrix product for the C++ kernels:  Y[m, n] = epilogue(m, n, Σ_k X[m, k] · W[n, k])
// Both operands are read along k, the layout of torch Linear weights (out, in) and of row
// vectors, so nothing is packed or transposed: a 4×3 register tile of dot products walks k
// eight floats at a time (AVX2 + FMA, the x86-64-v3 baseline), and a 4-way transposing
// horizontal add finishes each column. Batch 1 is the same code with a 1×3 tile (GEMV).
//
// Threads: the n-tiles are shared with an orphaned `omp for`, so a caller may run several
// products inside one parallel region (one fork per mapping call, a barrier per layer).
// Called outside a parallel region it runs on the calling thread.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstdint>

namespace kfaar::cpu {

// Sum of each of four vectors, as one 4-lane vector.
inline __m128 hsum4(__m256 a, __m256 b, __m256 c, __m256 d) {
  __m256 ab = _mm256_hadd_ps(a, b);   // a01 a23 b01 b23 | a45 a67 b45 b67
  __m256 cd = _mm256_hadd_ps(c, d);
  __m256 abcd = _mm256_hadd_ps(ab, cd);  // a0123 b0123 c0123 d0123 | a4567 ...
  return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

// Mask of the first `n` (0..8) lanes, for the k tail.
inline __m256i tail_mask(int64_t n) {
  alignas(32) static const int32_t kLanes[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kLanes + 8 - n));
}

template <int MR, int NR>
inline __m256 row_or_zero(const __m256 (&acc)[MR][NR], int r, int c) {
  return r < MR ? acc[r < MR ? r : 0][c] : _mm256_setzero_ps();
}

// One MR×NR tile of dot products over the full k range; results in out[r][c].
template <int MR, int NR>
inline void dot_tile(const float* x, int64_t ldx, const float* w, int64_t ldw, int64_t k,
                     float out[MR][NR]) {
  __m256 acc[MR][NR];
  for (int r = 0; r < MR; ++r)
    for (int c = 0; c < NR; ++c) acc[r][c] = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= k; i += 8) {
    __m256 wv[NR];
    for (int c = 0; c < NR; ++c) wv[c] = _mm256_loadu_ps(w + c * ldw + i);
    for (int r = 0; r < MR; ++r) {
      __m256 xv = _mm256_loadu_ps(x + r * ldx + i);
      for (int c = 0; c < NR; ++c) acc[r][c] = _mm256_fmadd_ps(xv, wv[c], acc[r][c]);
    }
  }
  if (i < k) {
    __m256i mask = tail_mask(k - i);
    __m256 wv[NR];
    for (int c = 0; c < NR; ++c) wv[c] = _mm256_maskload_ps(w + c * ldw + i, mask);
    for (int r = 0; r < MR; ++r) {
      __m256 xv = _mm256_maskload_ps(x + r * ldx + i, mask);
      for (int c = 0; c < NR; ++c) acc[r][c] = _mm256_fmadd_ps(xv, wv[c], acc[r][c]);
    }
  }
  for (int c = 0; c < NR; ++c) {
    alignas(16) float s[4];
    _mm_store_ps(s, hsum4(row_or_zero<MR, NR>(acc, 0, c), row_or_zero<MR, NR>(acc, 1, c),
                          row_or_zero<MR, NR>(acc, 2, c), row_or_zero<MR, NR>(acc, 3, c)));
    for (int r = 0; r < MR; ++r) out[r][c] = s[r];
  }
}

template <int MR, int NR, class Epilogue>
inline void tile_store(const float* x, int64_t ldx, const float* w, int64_t ldw, int64_t k,
                       int64_t m0, int64_t n0, const Epilogue& epi) {
  float t[MR][NR];
  dot_tile<MR, NR>(x, ldx, w, ldw, k, t);
  for (int r = 0; r < MR; ++r)
    for (int c = 0; c < NR; ++c) epi(m0 + r, n0 + c, t[r][c]);
}

// Rows m0..m0+mr (mr < 4) against NR weight rows.
template <int NR, class Epilogue>
inline void tile_rows(int64_t mr, const float* x, int64_t ldx, const float* w, int64_t ldw, int64_t k,
                      int64_t m0, int64_t n0, const Epilogue& epi) {
  switch (mr) {
    case 4: tile_store<4, NR>(x, ldx, w, ldw, k, m0, n0, epi); break;
    case 3: tile_store<3, NR>(x, ldx, w, ldw, k, m0, n0, epi); break;
    case 2: tile_store<2, NR>(x, ldx, w, ldw, k, m0, n0, epi); break;
    default: tile_store<1, NR>(x, ldx, w, ldw, k, m0, n0, epi); break;
  }
}

constexpr int64_t kTileM = 4;
constexpr int64_t kTileN = 3;
constexpr int64_t kBlockM = 64;  // rows of X kept hot in L2 while the weight tiles pass over them

// Y = epi(X · Wᵀ): X (m, k) with row stride ldx, W (n, k) with row stride ldw.
// `epi(row, col, dot)` writes the result; it runs once per output element.
template <class Epilogue>
void gemm_nt(const float* x, int64_t ldx, const float* w, int64_t ldw, int64_t m, int64_t n, int64_t k,
             const Epilogue& epi) {
  const int64_t n_tiles = (n + kTileN - 1) / kTileN;
  for (int64_t mb = 0; mb < m; mb += kBlockM) {
    const int64_t me = std::min(m, mb + kBlockM);
#pragma omp for schedule(static)
    for (int64_t t = 0; t < n_tiles; ++t) {
      const int64_t n0 = t * kTileN;
      const int64_t nr = std::min(kTileN, n - n0);
      const float* wt = w + n0 * ldw;
      for (int64_t m0 = mb; m0 < me; m0 += kTileM) {
        const int64_t mr = std::min(kTileM, me - m0);
        const float* xt = x + m0 * ldx;
        if (nr == 3) tile_rows<3>(mr, xt, ldx, wt, ldw, k, m0, n0, epi);
        else if (nr == 2) tile_rows<2>(mr, xt, ldx, wt, ldw, k, m0, n0, epi);
        else tile_rows<1>(mr, xt, ldx, wt, ldw, k, m0, n0, epi);
      }
    }
  }
}

}  // namespace kfaar::cpu
