// Bindings of the fused latent mapping: mapping_cpu and (when built with CUDA) mapping_cuda.
#include <cmath>
#include <string>
#include <vector>

#include "checks.h"
#include "kfaar/mapping_params.h"
#include "register.h"

namespace kfaar::bind {
namespace {

using Kernel = void (*)(const MappingParams&);

std::string indexed(const char* name, size_t i) { return std::string(name) + "[" + std::to_string(i) + "]"; }

py::array_t<float> mapping(Kernel kernel, const py::handle& x_obj, const py::sequence& weights,
                           const py::sequence& biases, const py::handle& style_weight_obj,
                           const py::handle& style_bias_obj, const py::handle& mix_obj, const py::handle& alpha_obj,
                           double slope, double gain, bool check_weights) {
  auto x = checked<float>(x_obj, "x", 2, "(batch, in_dim)");
  const int64_t batch = x.shape(0);
  if (weights.size() != biases.size())
    throw py::value_error("biases: expected one bias per weight (" + std::to_string(weights.size()) + "), got " +
                          std::to_string(biases.size()));
  if (weights.size() > static_cast<size_t>(kMaxMappingLayers))
    throw py::value_error("weights: expected at most " + std::to_string(kMaxMappingLayers) + " layers, got " +
                          std::to_string(weights.size()));
  if (!std::isfinite(slope) || !std::isfinite(gain))
    throw py::value_error("slope, gain: expected finite numbers, got slope=" + std::to_string(slope) +
                          ", gain=" + std::to_string(gain));

  MappingParams p;
  std::vector<py::array_t<float>> keep;  // the checked arrays stay alive while the kernel runs
  p.dims[0] = x.shape(1);
  p.layers = static_cast<int64_t>(weights.size());
  for (size_t l = 0; l < weights.size(); ++l) {
    const std::string wn = indexed("weights", l), bn = indexed("biases", l);
    auto w = checked<float>(weights[l], wn.c_str(), 2, "(out_dim, in_dim)");
    auto b = checked<float>(biases[l], bn.c_str(), 1, "(out_dim,)");
    check_axis(w, wn.c_str(), 1, p.dims[l], l == 0 ? "in_dim of x" : "out_dim of the previous layer");
    check_axis(b, bn.c_str(), 0, w.shape(0), "out_dim of its weight");
    p.weight[l] = w.data();
    p.bias[l] = b.data();
    p.dims[l + 1] = w.shape(0);
    keep.push_back(w);
    keep.push_back(b);
  }
  const int64_t hidden = p.dims[p.layers];
  auto sw = checked<float>(style_weight_obj, "style_weight", 3, "(n_styles, style_dim, hidden)");
  check_axis(sw, "style_weight", 2, hidden, p.layers ? "out_dim of the last layer" : "in_dim of x");
  p.n_styles = sw.shape(0);
  p.style_dim = sw.shape(1);
  auto sb = checked<float>(style_bias_obj, "style_bias", 2, "(n_styles, style_dim)");
  check_axis(sb, "style_bias", 0, p.n_styles, "n_styles of style_weight");
  check_axis(sb, "style_bias", 1, p.style_dim, "style_dim of style_weight");
  py::array_t<float> mix, alpha;
  if (mix_obj.is_none() != alpha_obj.is_none())
    throw py::value_error("mix, alpha: expected both or neither, got only " + std::string(mix_obj.is_none() ? "alpha" : "mix"));
  if (!mix_obj.is_none()) {
    mix = checked<float>(mix_obj, "mix", 3, "(batch, n_styles, style_dim)");
    check_axis(mix, "mix", 0, batch, "batch of x");
    check_axis(mix, "mix", 1, p.n_styles, "n_styles of style_weight");
    check_axis(mix, "mix", 2, p.style_dim, "style_dim of style_weight");
    alpha = checked<float>(alpha_obj, "alpha", 1, "(n_styles,)");
    check_axis(alpha, "alpha", 0, p.n_styles, "n_styles of style_weight");
    p.mix = mix.data();
    p.alpha = alpha.data();
  }
  // values last: every structural mistake is reported first, as in Python
  check_finite(x, "x");
  if (p.mix) {
    check_finite(mix, "mix");
    check_finite(alpha, "alpha");
  }
  if (check_weights) {
    for (size_t l = 0; l < weights.size(); ++l) {
      check_finite(keep[2 * l], indexed("weights", l).c_str());
      check_finite(keep[2 * l + 1], indexed("biases", l).c_str());
    }
    check_finite(sw, "style_weight");
    check_finite(sb, "style_bias");
  }
  py::array_t<float> out({batch, p.n_styles, p.style_dim});
  p.in = x.data();
  p.out = out.mutable_data();
  p.style_weight = sw.data();
  p.style_bias = sb.data();
  p.batch = batch;
  p.slope = static_cast<float>(slope);
  p.gain = static_cast<float>(gain);
  {
    py::gil_scoped_release release;
    kernel(p);
  }
  return out;
}

void def_mapping(py::module_& m, const char* name, Kernel kernel, const char* doc) {
  m.def(
      name,
      [kernel](const py::handle& x, const py::sequence& weights, const py::sequence& biases, const py::handle& sw,
               const py::handle& sb, const py::handle& mix, const py::handle& alpha, double slope, double gain,
               bool check_weights) {
        return mapping(kernel, x, weights, biases, sw, sb, mix, alpha, slope, gain, check_weights);
      },
      py::arg("x"), py::arg("weights"), py::arg("biases"), py::arg("style_weight"), py::arg("style_bias"),
      py::kw_only(), py::arg("mix") = py::none(), py::arg("alpha") = py::none(), py::arg("slope") = 0.2,
      py::arg("gain") = 1.4142135623730951, py::arg("check_weights") = true, doc);
}

}  // namespace

void register_mapping(py::module_& m) {
  def_mapping(m, "mapping_cpu", &checked_cpu<MappingParams, mapping_cpu>,
              "Fused latent mapping on the CPU: x (batch, in_dim) -> W+ (batch, n_styles, style_dim). "
              "check_weights=False skips the NaN/inf scan of weights already validated once.");
#ifdef KFAAR_WITH_CUDA
  def_mapping(m, "mapping_cuda", &mapping_cuda, "Fused latent mapping on the GPU (host arrays in and out).");
#endif
}

}  // namespace kfaar::bind
