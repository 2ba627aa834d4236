// C++ template scoring: inverse norms of both sides, then one NT product whose epilogue
// scales each dot product into a cosine.
#include <algorithm>
#include <cmath>
#include <vector>

#include "gemm.h"
#include "threads.h"
#include "kfaar/scoring_params.h"

namespace kfaar {
namespace {

// 1 / max(|row|, 1e-12) of each row (eight float lanes per row with AVX2, summed in double).
void inverse_norms(const float* rows, int64_t n, int64_t d, float* inv) {
#pragma omp for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float* r = rows + i * d;
    double ss = 0.0;
    int64_t k = 0;
#ifdef KFAAR_GEMM_AVX2
    __m256 acc = _mm256_setzero_ps();
    for (; k + 8 <= d; k += 8) {
      const __m256 v = _mm256_loadu_ps(r + k);
      acc = _mm256_fmadd_ps(v, v, acc);
    }
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, acc);
    for (float l : lanes) ss += l;
#endif
    for (; k < d; ++k) ss += static_cast<double>(r[k]) * r[k];
    inv[i] = static_cast<float>(1.0 / std::max(std::sqrt(ss), 1e-12));
  }
}

}  // namespace

void scoring_cpu(const ScoringParams& p) {
  const int64_t np = p.n_probes, nt = p.n_templates, d = p.dim;
  std::vector<float> inv_p(np), inv_t(nt);
  const float *ip = inv_p.data(), *it = inv_t.data();
  float* out = p.out;
  cpu::Scratch pack(cpu::gemm_scratch_floats(np, d));
  float* packed = pack.get();
  const int threads = cpu::threads_for(np * nt * d, 1 << 17);
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    inverse_norms(p.probes, np, d, inv_p.data());
    inverse_norms(p.templates, nt, d, inv_t.data());  // both end in a barrier
    cpu::gemm_nt(p.probes, d, p.templates, d, np, nt, d, packed,
                 [=](int64_t i, int64_t j, float v) { out[i * nt + j] = v * ip[i] * it[j]; });
  }
}

}  // namespace kfaar
