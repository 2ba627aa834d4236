// Row-major "NT" matrix product for the C++ kernels:  Y[m, n] = epilogue(m, n, Σ_k X[m, k] · W[n, k])
// W is read in its own layout (torch Linear weights (out, in), templates (T, d)); nothing is
// transposed in the caller. Two paths, both AVX2 + FMA (the x86-64-v3 baseline):
//  - few rows (m < kPackMinRows, batch 1 is a GEMV): register tiles of dot products walk k
//    eight floats at a time, and a transposing horizontal add finishes each column;
//  - many rows: X is packed into k-major panels of 16 rows, and a 16×6 tile broadcasts one W
//    value per FMA pair. That moves 2.5× fewer bytes per FMA than the dot tiles, which is what
//    limits a dot-product GEMM once the operands leave L1.
//
// Threads: work is shared with orphaned `omp for`, so a caller may run several products inside
// one parallel region (one fork per mapping call, a barrier per product). Called outside a
// parallel region it runs on the calling thread. The caller owns the packing scratch
// (gemm_scratch_floats), so nothing is allocated inside the parallel region.
#pragma once

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define KFAAR_GEMM_AVX2 1
#endif

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <new>

namespace kfaar::cpu {

inline int64_t round_up(int64_t v, int64_t to) { return (v + to - 1) / to * to; }

#ifdef KFAAR_GEMM_AVX2

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

// Rows m0..m0+mr (mr <= 4) against NR weight rows.
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

// Up to NR weight rows (a ragged last tile takes the narrower kernels).
template <int NR, class Epilogue>
inline void tile_cols(int64_t mr, int64_t nr, const float* x, int64_t ldx, const float* w, int64_t ldw, int64_t k,
                      int64_t m0, int64_t n0, const Epilogue& epi) {
  if constexpr (NR > 1) {
    if (nr < NR) {
      tile_cols<NR - 1>(mr, nr, x, ldx, w, ldw, k, m0, n0, epi);
      return;
    }
  }
  tile_rows<NR>(mr, x, ldx, w, ldw, k, m0, n0, epi);
}

constexpr int64_t kBlockM = 64;  // rows of X kept hot in L2 while the weight tiles pass over them

// Tiles of up to 4 rows × NR weight rows; NR is chosen so a tile keeps ~12 accumulators.
template <int NR, class Epilogue>
void gemm_nt_tiles(const float* x, int64_t ldx, const float* w, int64_t ldw, int64_t m, int64_t n, int64_t k,
                   const Epilogue& epi) {
  const int64_t n_tiles = (n + NR - 1) / NR;
  for (int64_t mb = 0; mb < m; mb += kBlockM) {
    const int64_t me = std::min(m, mb + kBlockM);
#pragma omp for schedule(static)
    for (int64_t t = 0; t < n_tiles; ++t) {
      const int64_t n0 = t * NR;
      const int64_t nr = std::min<int64_t>(NR, n - n0);
      for (int64_t m0 = mb; m0 < me; m0 += 4)
        tile_cols<NR>(std::min<int64_t>(4, me - m0), nr, x + m0 * ldx, ldx, w + n0 * ldw, ldw, k, m0, n0, epi);
    }
  }
}

constexpr int64_t kPackMinRows = 16;
constexpr int kPanel = 16;                  // rows of X per packed panel: two registers
constexpr int kPanelW = 6;                  // W rows per tile: 12 accumulators
constexpr int64_t kPackBlockBytes = 256 << 10;  // packed rows streamed per W tile, sized for L2

// Floats of scratch gemm_nt needs for an (m, k) left operand.
inline int64_t gemm_scratch_floats(int64_t m, int64_t k) { return m >= kPackMinRows ? round_up(m, kPanel) * k : 0; }

// Panel p of `pack` holds rows 16p..16p+15 of X k-major (pack[p·16k + kk·16 + r]); rows past m are 0.
inline void pack_panels(const float* x, int64_t ldx, int64_t m, int64_t k, float* pack) {
  const int64_t panels = (m + kPanel - 1) / kPanel;
#pragma omp for schedule(static)
  for (int64_t p = 0; p < panels; ++p) {
    float* dst = pack + p * kPanel * k;
    const int64_t rows = std::min<int64_t>(kPanel, m - p * kPanel);
    const float* src = x + p * kPanel * ldx;
    for (int64_t kk = 0; kk < k; ++kk) {  // contiguous writes; 16 sequential read streams
      for (int64_t r = 0; r < rows; ++r) dst[kk * kPanel + r] = src[r * ldx + kk];
      for (int64_t r = rows; r < kPanel; ++r) dst[kk * kPanel + r] = 0.0f;
    }
  }
}

// One packed panel (16 rows) against NW rows of W: out[j][r] = Σ_k X[r, k] · W[j, k].
template <int NW>
inline void panel_tile(const float* panel, const float* w, int64_t ldw, int64_t k, float out[NW][kPanel]) {
  __m256 acc[NW][2];
  for (int j = 0; j < NW; ++j) acc[j][0] = acc[j][1] = _mm256_setzero_ps();
  for (int64_t kk = 0; kk < k; ++kk) {
    const __m256 x0 = _mm256_load_ps(panel + kk * kPanel);
    const __m256 x1 = _mm256_load_ps(panel + kk * kPanel + 8);
    for (int j = 0; j < NW; ++j) {
      const __m256 wb = _mm256_broadcast_ss(w + j * ldw + kk);
      acc[j][0] = _mm256_fmadd_ps(wb, x0, acc[j][0]);
      acc[j][1] = _mm256_fmadd_ps(wb, x1, acc[j][1]);
    }
  }
  for (int j = 0; j < NW; ++j) {
    _mm256_storeu_ps(out[j], acc[j][0]);
    _mm256_storeu_ps(out[j] + 8, acc[j][1]);
  }
}

template <int NW, class Epilogue>
inline void panel_store(const float* panel, const float* w, int64_t ldw, int64_t k, int64_t m0, int64_t rows,
                        int64_t n0, const Epilogue& epi) {
  float t[NW][kPanel];
  panel_tile<NW>(panel, w, ldw, k, t);
  for (int64_t r = 0; r < rows; ++r)
    for (int j = 0; j < NW; ++j) epi(m0 + r, n0 + j, t[j][r]);
}

template <class Epilogue>
void gemm_nt_packed(const float* x, int64_t ldx, const float* w, int64_t ldw, int64_t m, int64_t n, int64_t k,
                    float* pack, const Epilogue& epi) {
  pack_panels(x, ldx, m, k, pack);  // ends in a barrier: every panel is ready
  const int64_t panels = (m + kPanel - 1) / kPanel;
  const int64_t block = std::max<int64_t>(1, kPackBlockBytes / (kPanel * k * 4));  // panels per L2 block
  const int64_t n_tiles = (n + kPanelW - 1) / kPanelW;
  for (int64_t pb = 0; pb < panels; pb += block) {
    const int64_t pe = std::min(panels, pb + block);
#pragma omp for schedule(static) nowait
    for (int64_t t = 0; t < n_tiles; ++t) {
      const int64_t n0 = t * kPanelW, nw = std::min<int64_t>(kPanelW, n - n0);
      const float* wt = w + n0 * ldw;
      for (int64_t p = pb; p < pe; ++p) {
        const float* panel = pack + p * kPanel * k;
        const int64_t m0 = p * kPanel, rows = std::min<int64_t>(kPanel, m - m0);
        switch (nw) {
          case 6: panel_store<6>(panel, wt, ldw, k, m0, rows, n0, epi); break;
          case 5: panel_store<5>(panel, wt, ldw, k, m0, rows, n0, epi); break;
          case 4: panel_store<4>(panel, wt, ldw, k, m0, rows, n0, epi); break;
          case 3: panel_store<3>(panel, wt, ldw, k, m0, rows, n0, epi); break;
          case 2: panel_store<2>(panel, wt, ldw, k, m0, rows, n0, epi); break;
          default: panel_store<1>(panel, wt, ldw, k, m0, rows, n0, epi); break;
        }
      }
    }
  }
#pragma omp barrier
}

// Y = epi(X · Wᵀ): X (m, k) with row stride ldx, W (n, k) with row stride ldw.
// `epi(row, col, dot)` writes the result; it runs once per output element. `scratch` holds
// gemm_scratch_floats(m, k) floats, 32-byte aligned.
template <class Epilogue>
void gemm_nt(const float* x, int64_t ldx, const float* w, int64_t ldw, int64_t m, int64_t n, int64_t k,
             float* scratch, const Epilogue& epi) {
  switch (m) {  // few rows (batch 1 is a GEMV): wider tiles keep enough independent FMAs in flight
    case 1: gemm_nt_tiles<8>(x, ldx, w, ldw, m, n, k, epi); return;
    case 2: gemm_nt_tiles<6>(x, ldx, w, ldw, m, n, k, epi); return;
    case 3: gemm_nt_tiles<4>(x, ldx, w, ldw, m, n, k, epi); return;
    default:
      if (m < kPackMinRows) gemm_nt_tiles<3>(x, ldx, w, ldw, m, n, k, epi);
      else gemm_nt_packed(x, ldx, w, ldw, m, n, k, scratch, epi);
  }
}

#else  // portable C++: any CPU (ARM builds, or x86 without -march=x86-64-v3)

inline int64_t gemm_scratch_floats(int64_t, int64_t) { return 0; }

// Eight partial sums per dot product let the compiler vectorise without reassociating.
template <class Epilogue>
void gemm_nt(const float* x, int64_t ldx, const float* w, int64_t ldw, int64_t m, int64_t n, int64_t k, float*,
             const Epilogue& epi) {
#pragma omp for schedule(static)
  for (int64_t j = 0; j < n; ++j) {
    const float* wr = w + j * ldw;
    for (int64_t i = 0; i < m; ++i) {
      const float* xr = x + i * ldx;
      float acc[8] = {};
      int64_t kk = 0;
      for (; kk + 8 <= k; kk += 8)
        for (int l = 0; l < 8; ++l) acc[l] += xr[kk + l] * wr[kk + l];
      float sum = 0.0f;
      for (float a : acc) sum += a;
      for (; kk < k; ++kk) sum += xr[kk] * wr[kk];
      epi(i, j, sum);
    }
  }
}

#endif  // KFAAR_GEMM_AVX2

// 32-byte aligned float scratch owned by one kernel call.
class Scratch {
 public:
  explicit Scratch(int64_t floats) : data_(floats > 0 ? static_cast<float*>(std::aligned_alloc(32, round_up(floats * 4, 32))) : nullptr) {
    if (floats > 0 && !data_) throw std::bad_alloc();
  }
  ~Scratch() { std::free(data_); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  float* get() const { return data_; }

 private:
  float* data_;
};

}  // namespace kfaar::cpu
