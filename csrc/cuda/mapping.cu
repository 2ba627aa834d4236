// CUDA fused latent mapping (see mapping_params.h): one tiled NT product per layer whose
// epilogue applies bias and scaled leaky ReLU, then the style affine with optional mixing.
#include <vector>

#include "common.cuh"
#include "kfaar/mapping_params.h"

namespace kfaar {
namespace {

struct BiasLeakyRelu {
  float* out;
  const float* bias;
  int64_t n;
  float slope, gain;
  __device__ void operator()(int64_t i, int64_t j, float v) const {
    v += bias[j];
    out[i * n + j] = (v < 0.0f ? v * slope : v) * gain;
  }
};

struct StyleMix {
  float* out;
  const float* bias;
  const float* mix;    // nullptr: no mixing
  const float* alpha;  // (n_styles,)
  int64_t n, style_dim;
  __device__ void operator()(int64_t i, int64_t j, float v) const {
    v += bias[j];
    if (mix) {
      const float a = alpha[j / style_dim];
      v = a * mix[i * n + j] + (1.0f - a) * v;
    }
    out[i * n + j] = v;
  }
};

}  // namespace

void mapping_cuda(const MappingParams& p) {
  const int64_t batch = p.batch, width = mapping_max_width(p);
  const int64_t n_out = p.n_styles * p.style_dim;
  cuda::DeviceBuffer<float> x(p.in, batch * p.dims[0]), ping(batch * width), pong(batch * width), out(batch * n_out);
  const float* cur = x.get();
  for (int64_t l = 0; l < p.layers; ++l) {
    const int64_t k = p.dims[l], n = p.dims[l + 1];
    cuda::DeviceBuffer<float> w(p.weight[l], n * k), b(p.bias[l], n);
    float* y = (l % 2 == 0) ? ping.get() : pong.get();
    cuda::gemm_nt(cur, w.get(), batch, n, k, BiasLeakyRelu{y, b.get(), n, p.slope, p.gain});
    cur = y;
  }
  const int64_t k = p.dims[p.layers];
  cuda::DeviceBuffer<float> sw(p.style_weight, n_out * k), sb(p.style_bias, n_out);
  auto mix = cuda::upload(p.mix, p.mix ? batch * n_out : 0);
  auto alpha = cuda::upload(p.alpha, p.alpha ? p.n_styles : 0);
  cuda::gemm_nt(cur, sw.get(), batch, n_out, k, StyleMix{out.get(), sb.get(), mix.get(), alpha.get(), n_out, p.style_dim});
  out.copy_to_host(p.out);
}

}  // namespace kfaar
