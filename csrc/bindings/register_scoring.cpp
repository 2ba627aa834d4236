// Bindings of batched template scoring: scoring_cpu and (when built with CUDA) scoring_cuda.
#include "checks.h"
#include "kfaar/scoring_params.h"
#include "register.h"

namespace kfaar::bind {
namespace {

using Kernel = void (*)(const ScoringParams&);

py::array_t<float> scoring(Kernel kernel, const py::handle& probes_obj, const py::handle& templates_obj) {
  auto probes = checked<float>(probes_obj, "probes", 2, "(n_probes, dim)");
  auto templates = checked<float>(templates_obj, "templates", 2, "(n_templates, dim)");
  check_axis(templates, "templates", 1, probes.shape(1), "dim of probes");
  check_finite(probes, "probes");
  check_finite(templates, "templates");
  ScoringParams p;
  p.n_probes = probes.shape(0);
  p.n_templates = templates.shape(0);
  p.dim = probes.shape(1);
  py::array_t<float> out({p.n_probes, p.n_templates});
  p.probes = probes.data();
  p.templates = templates.data();
  p.out = out.mutable_data();
  {
    py::gil_scoped_release release;
    kernel(p);
  }
  return out;
}

void def_scoring(py::module_& m, const char* name, Kernel kernel, const char* doc) {
  m.def(
      name, [kernel](const py::handle& probes, const py::handle& templates) { return scoring(kernel, probes, templates); },
      py::arg("probes"), py::arg("templates"), doc);
}

}  // namespace

void register_scoring(py::module_& m) {
  def_scoring(m, "scoring_cpu", &checked_cpu<ScoringParams, scoring_cpu>,
              "Cosine similarity on the CPU: probes (P, dim), templates (T, dim) -> (P, T) float32.");
#ifdef KFAAR_WITH_CUDA
  def_scoring(m, "scoring_cuda", &scoring_cuda, "Cosine similarity on the GPU (host arrays in and out).");
#endif
}

}  // namespace kfaar::bind
