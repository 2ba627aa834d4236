// The C ABI over the kernels: checks every pointer and size, fills the params struct the
// kernel reads, and turns any C++ exception into a status code.
#include "kfaar/kfaar.h"

#include <cmath>
#include <cstring>
#include <new>
#include <vector>

#include "kfaar/finite.h"
#include "kfaar/isa.h"
#include "kfaar/mapping_params.h"
#include "kfaar/projection_params.h"
#include "kfaar/scoring_params.h"
#include "kfaar/warp_affine_params.h"
#include "kfaar/warp_cells_params.h"

namespace {

using kfaar::all_finite;

template <class F>
int guarded(F&& body) {
  if (kfaar::missing_isa()) return KFAAR_ERROR_UNSUPPORTED_CPU;  // first: nothing below may run on such a CPU
  try {
    return body();
  } catch (const std::bad_alloc&) {
    return KFAAR_ERROR_OUT_OF_MEMORY;
  } catch (...) {
    return KFAAR_ERROR_INTERNAL;
  }
}

int check_projection(const kfaar_projection* p, const float* in, const float* out, int64_t batch) {
  if (!p || !in || !out || !p->signs || !p->perms) return KFAAR_ERROR_NULL_POINTER;
  const int64_t d = p->dim;
  if (batch < 1 || p->rounds < 1 || d < 2 || d > 65536 || (d & (d - 1)) != 0) return KFAAR_ERROR_INVALID_SIZE;
  if (p->mean && (!p->whiten || !p->color)) return KFAAR_ERROR_NULL_POINTER;
  for (int64_t i = 0; i < p->rounds * d; ++i)
    if (p->signs[i] != 1.0f && p->signs[i] != -1.0f) return KFAAR_ERROR_INVALID_PARAMS;
  std::vector<char> seen(d);
  for (int64_t r = 0; r < p->rounds; ++r) {
    std::fill(seen.begin(), seen.end(), 0);
    for (int64_t i = 0; i < d; ++i) {
      const int32_t v = p->perms[r * d + i];
      if (v < 0 || v >= d || seen[v]) return KFAAR_ERROR_INVALID_PARAMS;
      seen[v] = 1;
    }
  }
  if (!all_finite(in, batch * d)) return KFAAR_ERROR_NOT_FINITE;
  if (p->mean && (!all_finite(p->mean, d) || !all_finite(p->whiten, d * d) || !all_finite(p->color, d * d)))
    return KFAAR_ERROR_NOT_FINITE;
  return KFAAR_OK;
}

int projection(const kfaar_projection* params, const float* in, float* out, int64_t batch, bool inverse) {
  return guarded([&] {
    if (int status = check_projection(params, in, out, batch)) return status;
    kfaar::ProjectionParams p;
    p.in = in;
    p.out = out;
    p.signs = params->signs;
    p.perms = params->perms;
    p.mean = params->mean;
    p.pre = params->whiten;
    p.post = params->color;
    p.batch = batch;
    p.dim = params->dim;
    p.rounds = params->rounds;
    p.inverse = inverse;
    kfaar::projection_cpu(p);
    return static_cast<int>(KFAAR_OK);
  });
}

}  // namespace

extern "C" {

const char* kfaar_status_string(int status) {
  switch (status) {
    case KFAAR_OK: return "ok";
    case KFAAR_ERROR_NULL_POINTER: return "a required pointer was NULL";
    case KFAAR_ERROR_INVALID_SIZE: return "a size was out of range (batch >= 1, dim a power of two 2..65536, matching sizes)";
    case KFAAR_ERROR_INVALID_PARAMS: return "invalid parameters (signs must be +-1, perms rows permutations, at most 16 layers)";
    case KFAAR_ERROR_NOT_FINITE: return "an input contained NaN or inf";
    case KFAAR_ERROR_OUT_OF_MEMORY: return "out of memory";
    case KFAAR_ERROR_INTERNAL: return "internal error";
    case KFAAR_ERROR_UNSUPPORTED_CPU:
      return "this CPU lacks instructions the kernels were built for (see kfaar_cpu_supported)";
    default: return "unknown status";
  }
}

int kfaar_abi_version(void) { return KFAAR_SDK_ABI_VERSION; }

int kfaar_cpu_supported(void) { return kfaar::missing_isa() == 0 ? 1 : 0; }

int kfaar_projection_forward(const kfaar_projection* params, const float* in, float* out, int64_t batch) {
  return projection(params, in, out, batch, false);
}

int kfaar_projection_inverse(const kfaar_projection* params, const float* in, float* out, int64_t batch) {
  return projection(params, in, out, batch, true);
}

int kfaar_mapping_run(const kfaar_mapping* params, const float* in, int64_t batch, const float* mix,
                      const float* alpha, float* out) {
  return guarded([&] {
    if (!params || !in || !out || !params->style_weight || !params->style_bias) return static_cast<int>(KFAAR_ERROR_NULL_POINTER);
    if (params->layers < 0 || params->layers > KFAAR_MAX_MAPPING_LAYERS) return static_cast<int>(KFAAR_ERROR_INVALID_PARAMS);
    if (!params->dims || (params->layers > 0 && (!params->weights || !params->biases)) || (mix && !alpha))
      return static_cast<int>(KFAAR_ERROR_NULL_POINTER);
    if (batch < 1 || params->n_styles < 1 || params->style_dim < 1) return static_cast<int>(KFAAR_ERROR_INVALID_SIZE);
    if (!std::isfinite(params->slope) || !std::isfinite(params->gain)) return static_cast<int>(KFAAR_ERROR_NOT_FINITE);
    kfaar::MappingParams p;
    p.layers = params->layers;
    for (int64_t l = 0; l <= params->layers; ++l) {
      if (params->dims[l] < 1) return static_cast<int>(KFAAR_ERROR_INVALID_SIZE);
      p.dims[l] = params->dims[l];
    }
    for (int64_t l = 0; l < params->layers; ++l) {
      if (!params->weights[l] || !params->biases[l]) return static_cast<int>(KFAAR_ERROR_NULL_POINTER);
      p.weight[l] = params->weights[l];
      p.bias[l] = params->biases[l];
    }
    const int64_t n_out = params->n_styles * params->style_dim;
    if (!all_finite(in, batch * p.dims[0]) || (mix && (!all_finite(mix, batch * n_out) || !all_finite(alpha, params->n_styles))))
      return static_cast<int>(KFAAR_ERROR_NOT_FINITE);
    p.in = in;
    p.out = out;
    p.style_weight = params->style_weight;
    p.style_bias = params->style_bias;
    p.mix = mix;
    p.alpha = mix ? alpha : nullptr;
    p.batch = batch;
    p.n_styles = params->n_styles;
    p.style_dim = params->style_dim;
    p.slope = params->slope;
    p.gain = params->gain;
    kfaar::mapping_cpu(p);
    return static_cast<int>(KFAAR_OK);
  });
}

int kfaar_score(const float* probes, int64_t n_probes, const float* templates, int64_t n_templates, int64_t dim,
                float* out) {
  return guarded([&] {
    if (!probes || !templates || !out) return static_cast<int>(KFAAR_ERROR_NULL_POINTER);
    if (n_probes < 1 || n_templates < 1 || dim < 1) return static_cast<int>(KFAAR_ERROR_INVALID_SIZE);
    if (!all_finite(probes, n_probes * dim) || !all_finite(templates, n_templates * dim))
      return static_cast<int>(KFAAR_ERROR_NOT_FINITE);
    kfaar::ScoringParams p;
    p.probes = probes;
    p.templates = templates;
    p.out = out;
    p.n_probes = n_probes;
    p.n_templates = n_templates;
    p.dim = dim;
    kfaar::scoring_cpu(p);
    return static_cast<int>(KFAAR_OK);
  });
}

int kfaar_warp_cell_sums(const uint8_t* photo, int64_t height, int64_t width, const double* matrices,
                         int64_t n_candidates, const int32_t* cells, int64_t n_cells, int64_t res, uint16_t* out) {
  return guarded([&] {
    if (!photo || !matrices || !cells || !out) return static_cast<int>(KFAAR_ERROR_NULL_POINTER);
    if (height < 1 || width < 1 || n_candidates < 1 || n_cells < 1 || res < 1 || res > (1 << 14))
      return static_cast<int>(KFAAR_ERROR_INVALID_SIZE);
    for (int64_t i = 0; i < n_cells; ++i)
      if (cells[i] < 0 || cells[i] >= res * res) return static_cast<int>(KFAAR_ERROR_INVALID_PARAMS);
    if (!all_finite(matrices, n_candidates * 6)) return static_cast<int>(KFAAR_ERROR_NOT_FINITE);
    kfaar::warp_cells_cpu({photo, height, width, matrices, n_candidates, cells, n_cells, res, out});
    return static_cast<int>(KFAAR_OK);
  });
}

namespace {

int warp_affine(const void* src, int64_t height, int64_t width, int64_t channels, const double* matrix,
                int64_t out_width, int64_t out_height, int flags, void* out, bool is_float) {
  return guarded([&] {
    if (!src || !matrix || !out) return static_cast<int>(KFAAR_ERROR_NULL_POINTER);
    constexpr int64_t max_side = int64_t{1} << 20;
    if (height < 1 || width < 1 || channels < 1 || channels > 4 || out_width < 1 || out_height < 1 ||
        height > max_side || width > max_side || out_width > max_side || out_height > max_side)
      return static_cast<int>(KFAAR_ERROR_INVALID_SIZE);
    constexpr int known = KFAAR_WARP_REPLICATE | KFAAR_WARP_CUBIC | KFAAR_WARP_INVERSE;
    if ((flags & ~known) != 0 || (is_float && (flags & KFAAR_WARP_CUBIC)))
      return static_cast<int>(KFAAR_ERROR_INVALID_PARAMS);
    if (!all_finite(matrix, 6)) return static_cast<int>(KFAAR_ERROR_NOT_FINITE);
    kfaar::WarpAffineParams p;
    p.src = src;
    p.height = height;
    p.width = width;
    p.channels = channels;
    p.is_float = is_float;
    p.matrix = matrix;
    p.inverse = (flags & KFAAR_WARP_INVERSE) != 0;
    p.cubic = (flags & KFAAR_WARP_CUBIC) != 0;
    p.out_height = out_height;
    p.out_width = out_width;
    p.replicate = (flags & KFAAR_WARP_REPLICATE) != 0;
    p.out = out;
    kfaar::warp_affine_cpu(p);
    return static_cast<int>(KFAAR_OK);
  });
}

}  // namespace

int kfaar_warp_affine(const uint8_t* src, int64_t height, int64_t width, int64_t channels, const double* matrix,
                      int64_t out_width, int64_t out_height, int flags, uint8_t* out) {
  return warp_affine(src, height, width, channels, matrix, out_width, out_height, flags, out, false);
}

int kfaar_warp_affine_f32(const float* src, int64_t height, int64_t width, int64_t channels, const double* matrix,
                          int64_t out_width, int64_t out_height, int flags, float* out) {
  return warp_affine(src, height, width, channels, matrix, out_width, out_height, flags, out, true);
}

}  // extern "C"
