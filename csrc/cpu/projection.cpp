// C++ keyed projection (see projection_params.h for the maths).
//
// With AVX2 and 8 <= dim <= 512 there are two register kernels: batches of 8 rows go through
// the "SoA" block kernel (one coordinate per lane, see rotate_block8), the rest one row at a
// time, the row in dim/8 registers for a whole round (butterflies between registers are adds,
// the three within a register a shuffle and an FMA each, and the permutation a vector gather
// that also applies the next factor). Other dims, and builds without AVX2, take a scalar path.
#include <cmath>
#include <cstring>
#include <utility>
#include <vector>

#include "gemm.h"  // also says whether this build has AVX2 (KFAAR_GEMM_AVX2)
#include "kfaar/projection_params.h"
#include "threads.h"

namespace kfaar {
namespace {

#ifdef KFAAR_GEMM_AVX2  // the x86-64-v3 build: AVX2 + FMA (gemm.h)

// In-register unnormalised WHT of NV*8 floats.
template <int NV>
inline void wht_regs(__m256 (&v)[NV]) {
  for (int h = 1; h < NV; h *= 2)
    for (int i = 0; i < NV; i += 2 * h)
      for (int j = i; j < i + h; ++j) {
        __m256 a = v[j], b = v[j + h];
        v[j] = _mm256_add_ps(a, b);
        v[j + h] = _mm256_sub_ps(a, b);
      }
  // Butterflies of stride 1, 2, 4 inside each register: out = partner + v * (±1 pattern).
  const __m256 s1 = _mm256_setr_ps(1, -1, 1, -1, 1, -1, 1, -1);
  const __m256 s2 = _mm256_setr_ps(1, 1, -1, -1, 1, 1, -1, -1);
  const __m256 s4 = _mm256_setr_ps(1, 1, 1, 1, -1, -1, -1, -1);
  for (int j = 0; j < NV; ++j) {
    __m256 x = v[j];
    x = _mm256_fmadd_ps(x, s1, _mm256_permute_ps(x, 0xB1));
    x = _mm256_fmadd_ps(x, s2, _mm256_permute_ps(x, 0x4E));
    x = _mm256_fmadd_ps(x, s4, _mm256_permute2f128_ps(x, x, 1));
    v[j] = x;
  }
}

// v[j] = src[idx[8j..8j+7]] * scale[8j..] * c  (a permutation fused with the next diagonal factor).
template <int NV>
inline void gather_scaled(__m256 (&v)[NV], const float* src, const int32_t* idx, const float* scale, float c) {
  const __m256 cv = _mm256_set1_ps(c);
  for (int j = 0; j < NV; ++j) {
    __m256i iv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(idx + 8 * j));
    __m256 g = _mm256_i32gather_ps(src, iv, 4);
    __m256 s = scale ? _mm256_mul_ps(_mm256_loadu_ps(scale + 8 * j), cv) : cv;
    v[j] = _mm256_mul_ps(g, s);
  }
}

template <int NV>
void forward_row(const float* in, float* out, const float* signs, const int32_t* perms, int64_t rounds, float c) {
  constexpr int D = NV * 8;
  alignas(32) float buf[D];
  __m256 v[NV];
  for (int j = 0; j < NV; ++j) v[j] = _mm256_mul_ps(_mm256_loadu_ps(in + 8 * j), _mm256_loadu_ps(signs + 8 * j));
  for (int64_t r = 0; r < rounds; ++r) {
    wht_regs<NV>(v);
    for (int j = 0; j < NV; ++j) _mm256_store_ps(buf + 8 * j, v[j]);
    const float* next_sign = r + 1 < rounds ? signs + (r + 1) * D : nullptr;
    gather_scaled<NV>(v, buf, perms + r * D, next_sign, c);
  }
  for (int j = 0; j < NV; ++j) _mm256_storeu_ps(out + 8 * j, v[j]);
}

// Qᵀ: rounds from last to first, each undoing the permutation (a gather by its inverse),
// then H, then the signs.
template <int NV>
void inverse_row(const float* in, float* out, const float* signs, const int32_t* inv_perms, int64_t rounds, float c) {
  constexpr int D = NV * 8;
  alignas(32) float buf[D];
  __m256 v[NV];
  gather_scaled<NV>(v, in, inv_perms + (rounds - 1) * D, nullptr, 1.0f);
  const __m256 cv = _mm256_set1_ps(c);
  for (int64_t r = rounds - 1;; --r) {
    wht_regs<NV>(v);
    const float* sign = signs + r * D;
    for (int j = 0; j < NV; ++j) v[j] = _mm256_mul_ps(v[j], _mm256_mul_ps(_mm256_loadu_ps(sign + 8 * j), cv));
    if (r == 0) break;
    for (int j = 0; j < NV; ++j) _mm256_store_ps(buf + 8 * j, v[j]);
    gather_scaled<NV>(v, buf, inv_perms + (r - 1) * D, nullptr, 1.0f);
  }
  for (int j = 0; j < NV; ++j) _mm256_storeu_ps(out + 8 * j, v[j]);
}

// ---- Eight rows at once, one coordinate per register lane ("SoA") ----------------------
// A block holds 8 rows as dim vectors: lane k of vector i is coordinate i of row k. The
// butterflies are then whole-register adds between vectors (no shuffles), and a permutation
// is just which vector a later pass loads, so it costs nothing of its own. Each round is one
// or two radix-16 passes over the block (dim 128: bits 0-3, then 4-6), the first loading
// through the previous permutation and applying this round's diagonal, the last applying
// the scale. About 1.7x faster per row than the row kernel above (0.24 vs 0.4 µs at dim 128).

// 8×8 transpose of r[0..7] in place.
inline void transpose8(__m256 (&r)[8]) {
  __m256 t[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  __m256 u[8];
  for (int i = 0; i < 8; i += 4) {
    u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
    u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
    u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
  }
  for (int i = 0; i < 4; ++i) {
    r[i] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
    r[i + 4] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
  }
}

struct PassEnds {
  const int32_t* load_idx;  // (dim,) or nullptr: the first pass loads src[load_idx[j]] (a permutation)
  const float* pre;         // (dim,) or nullptr: the first pass multiplies vector j by pre[j]
  const float* post;        // (dim,) or nullptr: the last pass multiplies vector j by post[j] * c ...
  float c;                  // ... or by c alone
};

// Butterflies over index bits [lo, lo + B) for every group of 2^B vectors differing only there.
template <int B>
void block_pass(const __m256* src, __m256* dst, int64_t d, int lo, bool first, bool last, const PassEnds& e) {
  constexpr int G = 1 << B;
  const int64_t h = int64_t{1} << lo;
  const int32_t* idx = first ? e.load_idx : nullptr;
  const float* pre = first ? e.pre : nullptr;
  for (int64_t hi = 0; hi < d; hi += h * G)
    for (int64_t low = 0; low < h; ++low) {
      const int64_t base = hi + low;
      __m256 v[G];  // fully unrolled below, so v lives in registers
#pragma GCC unroll 16
      for (int t = 0; t < G; ++t) {
        const int64_t j = base + t * h;
        v[t] = src[idx ? idx[j] : j];
        if (pre) v[t] = _mm256_mul_ps(v[t], _mm256_broadcast_ss(pre + j));
      }
#pragma GCC unroll 4
      for (int s = 1; s < G; s *= 2)
#pragma GCC unroll 16
        for (int t = 0; t < G; t += 2 * s)
#pragma GCC unroll 8
          for (int u = t; u < t + s; ++u) {
            const __m256 a = v[u], b = v[u + s];
            v[u] = _mm256_add_ps(a, b);
            v[u + s] = _mm256_sub_ps(a, b);
          }
#pragma GCC unroll 16
      for (int t = 0; t < G; ++t) {
        const int64_t j = base + t * h;
        __m256 x = v[t];
        if (last) x = _mm256_mul_ps(x, e.post ? _mm256_set1_ps(e.post[j] * e.c) : _mm256_set1_ps(e.c));
        dst[j] = x;
      }
    }
}

template <int B>
void run_pass(const __m256* src, __m256* dst, int64_t d, int lo, int bits, bool first, bool last, const PassEnds& e) {
  if constexpr (B > 1) {
    if (bits < B) return run_pass<B - 1>(src, dst, d, lo, bits, first, last, e);
  }
  block_pass<B>(src, dst, d, lo, first, last, e);
}

// One WHT of the block from x into y, in passes of at most 4 bits (split evenly: 7 = 4 + 3).
void block_wht(const __m256* x, __m256* y, int64_t d, const PassEnds& e) {
  int bits = 0;
  while ((int64_t{1} << bits) < d) ++bits;
  const int passes = (bits + 3) / 4;
  int lo = 0;
  for (int k = 0; k < passes; ++k) {
    const int b = (bits - lo) / (passes - k);
    run_pass<4>(k == 0 ? x : y, y, d, lo, b, k == 0, k == passes - 1, e);
    lo += b;
  }
}

// Q^{±1} on 8 rows: in (8, d) -> out (8, d), rows `stride` floats apart. x, y: d vectors each.
void rotate_block8(const float* in, float* out, int64_t stride, int64_t d, const float* signs, const int32_t* perms,
                   const int32_t* inv_perms, int64_t rounds, bool inverse, float c, __m256* x, __m256* y) {
  for (int64_t col = 0; col < d; col += 8) {
    __m256 r[8];
    for (int k = 0; k < 8; ++k) r[k] = _mm256_loadu_ps(in + k * stride + col);
    transpose8(r);
    for (int k = 0; k < 8; ++k) x[col + k] = r[k];
  }
  const int32_t* pending = nullptr;  // forward: the last round's permutation, applied on the next load
  for (int64_t step = 0; step < rounds; ++step) {
    PassEnds e{};
    e.c = c;
    if (!inverse) {  // y = H · S_r · P_{r-1} x, the scale c folded into the last pass
      const int64_t r = step;
      e.load_idx = pending;
      e.pre = signs + r * d;
      pending = perms + r * d;
    } else {  // y = S_r · H · P_rᵀ x
      const int64_t r = rounds - 1 - step;
      e.load_idx = inv_perms + r * d;
      e.post = signs + r * d;
    }
    block_wht(x, y, d, e);
    std::swap(x, y);
  }
  for (int64_t col = 0; col < d; col += 8) {
    __m256 r[8];
    for (int k = 0; k < 8; ++k) r[k] = x[pending ? pending[col + k] : col + k];
    transpose8(r);
    for (int k = 0; k < 8; ++k) _mm256_storeu_ps(out + k * stride + col, r[k]);
  }
}

#endif  // KFAAR_GEMM_AVX2

// Any power-of-two dim, one row at a time through two scratch rows.
void wht_scalar(float* x, int64_t d) {
  for (int64_t h = 1; h < d; h *= 2)
    for (int64_t i = 0; i < d; i += 2 * h)
      for (int64_t j = i; j < i + h; ++j) {
        float a = x[j], b = x[j + h];
        x[j] = a + b;
        x[j + h] = a - b;
      }
}

void row_scalar(const ProjectionParams& p, const int32_t* inv_perms, const float* in, float* out, float* a, float* b) {
  const int64_t d = p.dim;
  const float c = 1.0f / std::sqrt(static_cast<float>(d));
  std::memcpy(a, in, sizeof(float) * d);
  for (int64_t step = 0; step < p.rounds; ++step) {
    if (!p.inverse) {
      const int64_t r = step;
      for (int64_t i = 0; i < d; ++i) a[i] *= p.signs[r * d + i];
      wht_scalar(a, d);
      for (int64_t i = 0; i < d; ++i) b[i] = a[p.perms[r * d + i]] * c;
    } else {
      const int64_t r = p.rounds - 1 - step;
      for (int64_t i = 0; i < d; ++i) b[i] = a[inv_perms[r * d + i]];
      wht_scalar(b, d);
      for (int64_t i = 0; i < d; ++i) b[i] *= p.signs[r * d + i] * c;
    }
    std::swap(a, b);
  }
  std::memcpy(out, a, sizeof(float) * d);
}

using RowFn = void (*)(const float*, float*, const float*, const int32_t*, int64_t, float);

#ifdef KFAAR_GEMM_AVX2
template <int NV>
RowFn row_fn(bool inverse) {
  return inverse ? &inverse_row<NV> : &forward_row<NV>;
}
#endif

// The register kernel for `dim`, or nullptr for the scalar path.
RowFn pick_row_fn(int64_t dim, bool inverse) {
#ifdef KFAAR_GEMM_AVX2
  switch (dim) {
    case 8: return row_fn<1>(inverse);
    case 16: return row_fn<2>(inverse);
    case 32: return row_fn<4>(inverse);
    case 64: return row_fn<8>(inverse);
    case 128: return row_fn<16>(inverse);
    case 256: return row_fn<32>(inverse);
    case 512: return row_fn<64>(inverse);
    default: return nullptr;
  }
#else
  (void)dim;
  (void)inverse;
  return nullptr;
#endif
}

// Q^{±1} on `batch` rows of src into dst (rows may alias).
void rotate_rows(const ProjectionParams& p, const float* src, float* dst) {
  const int64_t d = p.dim;
  std::vector<int32_t> inv_perms;  // (rounds, dim), only for the inverse
  if (p.inverse) {
    inv_perms.resize(p.rounds * d);
    for (int64_t r = 0; r < p.rounds; ++r)
      for (int64_t i = 0; i < d; ++i) inv_perms[r * d + p.perms[r * d + i]] = static_cast<int32_t>(i);
  }
  const int32_t* perms = p.inverse ? inv_perms.data() : p.perms;
  const float c = 1.0f / std::sqrt(static_cast<float>(d));
  const RowFn fn = pick_row_fn(d, p.inverse);
  // Work unit u: rows [8u, 8u + 8) as one SoA block where the register kernels exist, else one row.
  const int64_t blocks = fn ? p.batch / 8 : 0;
  const int64_t units = blocks + (p.batch - 8 * blocks);
  auto unit = [&](int64_t u, float* scratch, float* block) {
#ifdef KFAAR_GEMM_AVX2
    if (u < blocks) {
      __m256* x = reinterpret_cast<__m256*>(block);  // (d,) vectors, then (d,) more for y
      rotate_block8(src + 8 * u * d, dst + 8 * u * d, d, d, p.signs, p.perms, inv_perms.data(), p.rounds, p.inverse,
                    c, x, x + d);
      return;
    }
#endif
    (void)block;
    const int64_t i = 8 * blocks + (u - blocks);
    if (fn) fn(src + i * d, dst + i * d, p.signs, perms, p.rounds, c);
    else row_scalar(p, perms, src + i * d, dst + i * d, scratch, scratch + d);
  };
  const int threads = cpu::threads_for(p.batch * d * p.rounds, 1 << 16);
  auto per_thread = [&](bool parallel) {
    std::vector<float> scratch(fn ? 0 : 2 * d);
    cpu::Scratch block(blocks ? 2 * d * 8 : 0);  // x and y of one 8-row block, 32-byte aligned
    if (!parallel) {
      for (int64_t u = 0; u < units; ++u) unit(u, scratch.data(), block.get());
      return;
    }
#pragma omp for schedule(static)
    for (int64_t u = 0; u < units; ++u) unit(u, scratch.data(), block.get());
  };
  if (threads == 1) {  // no parallel region at all: batch 1 is ~0.4 µs of work
    per_thread(false);
    return;
  }
#pragma omp parallel num_threads(threads)
  per_thread(true);
}

// The whole affine map as one dense matrix, M = post · Q^{±1} · pre (d, d) row-major, built by
// rotating the columns of `pre` and multiplying by `post`: O(d² log d + d³), paid back once the
// batch reaches d rows (two d² products per row become one).
void affine_matrix(const ProjectionParams& p, float* m) {
  const int64_t d = p.dim;
  std::vector<float> cols(d * d);  // row j = column j of pre, then Q^{±1} of it
  for (int64_t i = 0; i < d; ++i)
    for (int64_t j = 0; j < d; ++j) cols[j * d + i] = p.pre[i * d + j];
  ProjectionParams q = p;
  q.batch = d;
  rotate_rows(q, cols.data(), cols.data());  // rows of (Q^{±1} · pre)ᵀ
  cpu::Scratch pack(cpu::gemm_scratch_floats(d, d));
  cpu::gemm_nt(p.post, d, cols.data(), d, d, d, d, pack.get(), [m, d](int64_t i, int64_t j, float v) { m[i * d + j] = v; });
}

}  // namespace

void projection_cpu(const ProjectionParams& p) {
  if (!p.mean) {
    rotate_rows(p, p.in, p.out);
    return;
  }
  // out = mean + post · Q^{±1} · pre · (in - mean)
  const int64_t n = p.batch, d = p.dim;
  std::vector<float> centred(n * d);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < d; ++j) centred[i * d + j] = p.in[i * d + j] - p.mean[j];
  const int threads = cpu::threads_for(n * d * d, 1 << 18);
  cpu::Scratch pack(cpu::gemm_scratch_floats(n, d));
  float* packed = pack.get();
  const float* mean = p.mean;
  float* out = p.out;
  auto add_mean = [out, mean, d](int64_t i, int64_t j, float v) { out[i * d + j] = v + mean[j]; };
  if (n >= d) {  // one product with the whole map
    std::vector<float> m(d * d);
    affine_matrix(p, m.data());
#pragma omp parallel num_threads(threads) if (threads > 1)
    cpu::gemm_nt(centred.data(), d, m.data(), d, n, d, d, packed, add_mean);
    return;
  }
  // few rows: two products around the structured rotation
  std::vector<float> rotated(n * d);
  float* rot = rotated.data();
#pragma omp parallel num_threads(threads) if (threads > 1)
  cpu::gemm_nt(centred.data(), d, p.pre, d, n, d, d, packed, [rot, d](int64_t i, int64_t j, float v) { rot[i * d + j] = v; });
  rotate_rows(p, rot, rot);
#pragma omp parallel num_threads(threads) if (threads > 1)
  cpu::gemm_nt(rot, d, p.post, d, n, d, d, packed, add_mean);
}

}  // namespace kfaar
