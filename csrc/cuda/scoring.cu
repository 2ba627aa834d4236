// CUDA template scoring (see scoring_params.h): inverse row norms, then a tiled NT product
// whose epilogue turns each dot product into a cosine.
#include "common.cuh"
#include "kfaar/scoring_params.h"

namespace kfaar {
namespace {

__global__ void inverse_norms_kernel(const float* __restrict__ rows, int64_t n, int64_t d, float* __restrict__ inv) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  double ss = 0.0;
  for (int64_t k = 0; k < d; ++k) ss += static_cast<double>(rows[i * d + k]) * rows[i * d + k];
  inv[i] = static_cast<float>(1.0 / fmax(sqrt(ss), 1e-12));
}

struct Cosine {
  float* out;
  const float* inv_p;
  const float* inv_t;
  int64_t n_templates;
  __device__ void operator()(int64_t i, int64_t j, float v) const { out[i * n_templates + j] = v * inv_p[i] * inv_t[j]; }
};

void inverse_norms(const float* rows, int64_t n, int64_t d, float* inv) {
  inverse_norms_kernel<<<static_cast<unsigned>((n + 255) / 256), 256>>>(rows, n, d, inv);
  cuda::check_launch("inverse_norms_kernel");
}

}  // namespace

void scoring_cuda(const ScoringParams& p) {
  const int64_t np = p.n_probes, nt = p.n_templates, d = p.dim;
  cuda::DeviceBuffer<float> probes(p.probes, np * d), templates(p.templates, nt * d);
  cuda::DeviceBuffer<float> inv_p(np), inv_t(nt), out(np * nt);
  inverse_norms(probes.get(), np, d, inv_p.get());
  inverse_norms(templates.get(), nt, d, inv_t.get());
  cuda::gemm_nt(probes.get(), templates.get(), np, nt, d, Cosine{out.get(), inv_p.get(), inv_t.get(), nt});
  out.copy_to_host(p.out);
}

}  // namespace kfaar
