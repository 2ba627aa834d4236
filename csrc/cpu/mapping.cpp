// C++ fused latent mapping (see mapping_params.h): every layer is one NT product whose
// epilogue applies bias, leaky ReLU and gain (or bias and style mixing for W+), all inside a
// single parallel region so a call forks threads once and meets at a barrier per layer.
#include <algorithm>
#include <vector>

#include "gemm.h"
#include "threads.h"
#include "kfaar/mapping_params.h"

namespace kfaar {

int64_t mapping_max_width(const MappingParams& p) {
  int64_t w = p.dims[0];
  for (int64_t l = 1; l <= p.layers; ++l) w = std::max(w, p.dims[l]);
  return w;
}

void mapping_cpu(const MappingParams& p) {
  const int64_t batch = p.batch, width = mapping_max_width(p);
  const int64_t n_out = p.n_styles * p.style_dim;
  std::vector<float> ping(p.layers > 0 ? batch * width : 0), pong(p.layers > 1 ? batch * width : 0);
  cpu::Scratch pack(cpu::gemm_scratch_floats(batch, width));
  float* packed = pack.get();

  int64_t macs = n_out * p.dims[p.layers];
  for (int64_t l = 0; l < p.layers; ++l) macs += p.dims[l] * p.dims[l + 1];
  const int threads = cpu::threads_for(batch * macs, 1 << 17);

#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    const float* x = p.in;  // (batch, k)
    int64_t k = p.dims[0];
    for (int64_t l = 0; l < p.layers; ++l) {
      float* y = (l % 2 == 0) ? ping.data() : pong.data();  // (batch, n)
      const int64_t n = p.dims[l + 1];
      const float* bias = p.bias[l];
      const float slope = p.slope, gain = p.gain;
      cpu::gemm_nt(x, k, p.weight[l], k, batch, n, k, packed, [=](int64_t i, int64_t j, float v) {
        v += bias[j];
        y[i * n + j] = (v < 0.0f ? v * slope : v) * gain;
      });
      x = y;
      k = n;
    }
    float* out = p.out;  // (batch, n_styles * style_dim)
    const float* bias = p.style_bias;
    if (p.mix) {
      const float *mix = p.mix, *alpha = p.alpha;
      const int64_t style_dim = p.style_dim;
      cpu::gemm_nt(x, k, p.style_weight, k, batch, n_out, k, packed, [=](int64_t i, int64_t j, float v) {
        const float a = alpha[j / style_dim];
        out[i * n_out + j] = a * mix[i * n_out + j] + (1.0f - a) * (v + bias[j]);
      });
    } else {
      cpu::gemm_nt(x, k, p.style_weight, k, batch, n_out, k, packed,
                   [=](int64_t i, int64_t j, float v) { out[i * n_out + j] = v + bias[j]; });
    }
  }
}

}  // namespace kfaar
