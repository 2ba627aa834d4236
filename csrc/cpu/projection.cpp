// C++ keyed projection (see projection_params.h for the maths).
//
// For 8 <= dim <= 512 one row lives in dim/8 AVX2 registers for a whole round: the
// Walsh-Hadamard butterflies between registers are adds, the three within a register are
// a shuffle and an FMA each, and the permutation is a vector gather from an L1 buffer that
// also applies the next factor (sign and 1/sqrt(d)). Other dims take a plain scalar path.
#include <cmath>
#include <cstring>
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
  auto row = [&](int64_t i, float* scratch) {
    if (fn) fn(src + i * d, dst + i * d, p.signs, perms, p.rounds, c);
    else row_scalar(p, perms, src + i * d, dst + i * d, scratch, scratch + d);
  };
  const int threads = cpu::threads_for(p.batch * d * p.rounds, 1 << 16);
  if (threads == 1) {  // no parallel region at all: batch 1 is ~0.4 µs of work
    std::vector<float> scratch(fn ? 0 : 2 * d);
    for (int64_t i = 0; i < p.batch; ++i) row(i, scratch.data());
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    std::vector<float> scratch(fn ? 0 : 2 * d);
#pragma omp for schedule(static)
    for (int64_t i = 0; i < p.batch; ++i) row(i, scratch.data());
  }
}

}  // namespace

void projection_cpu(const ProjectionParams& p) {
  if (!p.mean) {
    rotate_rows(p, p.in, p.out);
    return;
  }
  // out = mean + post · Q^{±1} · pre · (in - mean), two products around the rotation
  const int64_t n = p.batch, d = p.dim;
  std::vector<float> centred(n * d), rotated(n * d);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < d; ++j) centred[i * d + j] = p.in[i * d + j] - p.mean[j];
  const int threads = cpu::threads_for(n * d * d, 1 << 18);
  float* rot = rotated.data();
  cpu::Scratch pack(cpu::gemm_scratch_floats(n, d));
  float* packed = pack.get();
#pragma omp parallel num_threads(threads) if (threads > 1)
  cpu::gemm_nt(centred.data(), d, p.pre, d, n, d, d, packed, [rot, d](int64_t i, int64_t j, float v) { rot[i * d + j] = v; });
  rotate_rows(p, rot, rot);
  const float* mean = p.mean;
  float* out = p.out;
#pragma omp parallel num_threads(threads) if (threads > 1)
  cpu::gemm_nt(rot, d, p.post, d, n, d, d, packed, [out, mean, d](int64_t i, int64_t j, float v) { out[i * d + j] = v + mean[j]; });
}

}  // namespace kfaar
