// Fused latent mapping: an MLP of `layers` (linear + scaled leaky ReLU) followed by one affine
// per style that produces the extended code W+, with optional per-style mixing toward a
// second code:
//   h_0 = in;  h_{l+1} = gain · leaky_relu(W_l · h_l + b_l, slope)
//   w[s] = A[s] · h_L + c[s]
//   out[s] = alpha[s] · mix[s] + (1 - alpha[s]) · w[s]      (out[s] = w[s] when mix == nullptr)
#pragma once

#include <cstdint>

namespace kfaar {

constexpr int kMaxMappingLayers = 16;

struct MappingParams {
  const float* in = nullptr;                          // (batch, dims[0])
  float* out = nullptr;                               // (batch, n_styles, style_dim)
  const float* weight[kMaxMappingLayers] = {};        // layer l: (dims[l+1], dims[l]) row-major (torch Linear layout)
  const float* bias[kMaxMappingLayers] = {};          // layer l: (dims[l+1],)
  int64_t dims[kMaxMappingLayers + 1] = {};           // dims[0] = input width, dims[l+1] = width after layer l
  int64_t layers = 0;                                 // 0..kMaxMappingLayers
  const float* style_weight = nullptr;                // (n_styles * style_dim, dims[layers]) row-major
  const float* style_bias = nullptr;                  // (n_styles * style_dim,)
  const float* mix = nullptr;                         // (batch, n_styles, style_dim) or nullptr
  const float* alpha = nullptr;                       // (n_styles,), used with mix
  int64_t batch = 0;                                  // >= 1
  int64_t n_styles = 0;                               // >= 1
  int64_t style_dim = 0;                              // >= 1
  float slope = 0.2f;                                 // leaky ReLU negative slope
  float gain = 1.41421356f;                           // scale after the activation (StyleGAN: sqrt(2))
};

// Widest hidden activation the kernel keeps per sample (scratch is sized from `dims`).
int64_t mapping_max_width(const MappingParams& p);

void mapping_cpu(const MappingParams& p);

#ifdef KFAAR_WITH_CUDA
void mapping_cuda(const MappingParams& p);
#endif

}  // namespace kfaar
