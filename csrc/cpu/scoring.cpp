// C++ template scoring: inverse norms of both sides, then one NT product whose epilogue
// scales each dot product into a cosine.
#include <algorithm>
#include <cmath>
#include <vector>

#include "gemm.h"
#include "kfaar/scoring_params.h"

namespace kfaar {
namespace {

void inverse_norms(const float* rows, int64_t n, int64_t d, float* inv) {
  for (int64_t i = 0; i < n; ++i) {
    double ss = 0.0;
    for (int64_t k = 0; k < d; ++k) ss += static_cast<double>(rows[i * d + k]) * rows[i * d + k];
    inv[i] = static_cast<float>(1.0 / std::max(std::sqrt(ss), 1e-12));
  }
}

}  // namespace

void scoring_cpu(const ScoringParams& p) {
  const int64_t np = p.n_probes, nt = p.n_templates, d = p.dim;
  std::vector<float> inv_p(np), inv_t(nt);
  inverse_norms(p.probes, np, d, inv_p.data());
  inverse_norms(p.templates, nt, d, inv_t.data());
  const float *ip = inv_p.data(), *it = inv_t.data();
  float* out = p.out;
  const bool threaded = np * nt * d >= (1 << 17);
#pragma omp parallel if (threaded)
  cpu::gemm_nt(p.probes, d, p.templates, d, np, nt, d,
               [=](int64_t i, int64_t j, float v) { out[i * nt + j] = v * ip[i] * it[j]; });
}

}  // namespace kfaar
