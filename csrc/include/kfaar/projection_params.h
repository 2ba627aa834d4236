// Keyed projection: a structured random orthogonal transform Q on R^d,
//   Q = (P_R · H · S_R) ··· (P_1 · H · S_1)
// with key-derived sign flips S_r, the normalised Walsh-Hadamard transform H = H_d / sqrt(d)
// (symmetric and its own inverse) and key-derived permutations P_r. Optionally wrapped in an
// affine map around a mean:
//   out = mean + post · Q^{±1} · pre · (in - mean)
// The kernel does not know which matrix whitens. With pre = whiten (C^{-1/2}) and
// post = color (C^{1/2}) = whiten⁻¹, the same two matrices serve both directions:
//   forward  z' = m + color · Q  · whiten · (z  - m)
//   inverse  z  = m + color · Qᵀ · whiten · (z' - m)   (= m + whiten⁻¹ Qᵀ color⁻¹ (z' - m))
#pragma once

#include <cstdint>

namespace kfaar {

struct ProjectionParams {
  const float* in = nullptr;       // (batch, dim) row-major input
  float* out = nullptr;            // (batch, dim) row-major output; may alias `in`
  const float* signs = nullptr;    // (rounds, dim) each +1.0f or -1.0f
  const int32_t* perms = nullptr;  // (rounds, dim) permutation of 0..dim-1: round r ends y[i] = x[perms[r][i]]
  const float* mean = nullptr;     // (dim,) or nullptr: bare Q, `pre`/`post` ignored
  const float* pre = nullptr;      // (dim, dim) row-major, applied to (in - mean) before Q
  const float* post = nullptr;     // (dim, dim) row-major, applied after Q, then mean added
  int64_t batch = 0;               // >= 1
  int64_t dim = 0;                 // power of two, 2..65536
  int64_t rounds = 0;              // >= 1
  bool inverse = false;            // apply Q⁻¹ = Qᵀ: rounds reversed, each factor inverted
};

// C++ kernel. Expects a params struct the binding has checked; does not throw.
void projection_cpu(const ProjectionParams& p);

#ifdef KFAAR_WITH_CUDA
// CUDA twin on host arrays (copies in and out). Throws std::runtime_error on a CUDA error.
void projection_cuda(const ProjectionParams& p);
#endif

}  // namespace kfaar
