// Batched template scoring: cosine similarity of every probe against every template.
//   out[i, j] = <probes[i], templates[j]> / (|probes[i]| · |templates[j]|)
// A zero vector scores 0 against everything (its norm is clamped to 1e-12 as in torch).
#pragma once

#include <cstdint>

namespace kfaar {

struct ScoringParams {
  const float* probes = nullptr;     // (n_probes, dim)
  const float* templates = nullptr;  // (n_templates, dim)
  float* out = nullptr;              // (n_probes, n_templates)
  int64_t n_probes = 0;              // >= 1
  int64_t n_templates = 0;           // >= 1
  int64_t dim = 0;                   // >= 1
};

void scoring_cpu(const ScoringParams& p);

#ifdef KFAAR_WITH_CUDA
void scoring_cuda(const ScoringParams& p);
#endif

}  // namespace kfaar
