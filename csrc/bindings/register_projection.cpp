// Bindings of the keyed projection: projection_cpu and (when built with CUDA) projection_cuda.
#include <string>
#include <vector>

#include "checks.h"
#include "kfaar/projection_params.h"
#include "register.h"

namespace kfaar::bind {
namespace {

constexpr int64_t kMaxDim = 65536;

// Signs must be ±1 and each perms row a permutation: a bad index would read out of bounds.
void check_round_params(const py::array_t<float>& signs, const py::array_t<int32_t>& perms, int64_t dim) {
  const float* s = signs.data();
  for (int64_t i = 0; i < signs.size(); ++i)
    if (s[i] != 1.0f && s[i] != -1.0f)
      throw py::value_error("signs: expected every value to be +1 or -1, got " + std::to_string(s[i]) +
                            " at flat index " + std::to_string(i));
  std::vector<char> seen(dim);
  const int32_t* p = perms.data();
  for (int64_t r = 0; r < perms.shape(0); ++r) {
    std::fill(seen.begin(), seen.end(), 0);
    for (int64_t i = 0; i < dim; ++i) {
      const int32_t v = p[r * dim + i];
      if (v < 0 || v >= dim || seen[v])
        throw py::value_error("perms: expected each row to be a permutation of 0.." + std::to_string(dim - 1) +
                              ", row " + std::to_string(r) + " is not");
      seen[v] = 1;
    }
  }
}

using Kernel = void (*)(const ProjectionParams&);

py::array_t<float> projection(Kernel kernel, const py::handle& z_obj, const py::handle& signs_obj,
                              const py::handle& perms_obj, bool inverse, const py::handle& mean_obj,
                              const py::handle& whiten_obj, const py::handle& color_obj) {
  auto z = checked<float>(z_obj, "z", 2, "(batch, dim)");
  const int64_t batch = z.shape(0), dim = z.shape(1);
  if (!is_power_of_two(dim) || dim > kMaxDim)
    throw py::value_error("z: expected dim to be a power of two from 2 to 65536 (e.g. 128), got " + std::to_string(dim));
  auto signs = checked<float>(signs_obj, "signs", 2, "(rounds, dim)");
  auto perms = checked<int32_t>(perms_obj, "perms", 2, "(rounds, dim)");
  check_axis(signs, "signs", 1, dim, "dim of z");
  check_axis(perms, "perms", 0, signs.shape(0), "rounds of signs");
  check_axis(perms, "perms", 1, dim, "dim of z");
  check_round_params(signs, perms, dim);

  ProjectionParams p;
  const bool affine = !mean_obj.is_none() || !whiten_obj.is_none() || !color_obj.is_none();
  py::array_t<float> mean, whiten, color;  // keep the checked arrays alive
  if (affine) {
    if (mean_obj.is_none() || whiten_obj.is_none() || color_obj.is_none())
      throw py::value_error("whitening: expected mean, whiten and color together, got only some of them");
    mean = checked<float>(mean_obj, "mean", 1, "(dim,)");
    whiten = checked<float>(whiten_obj, "whiten", 2, "(dim, dim)");
    color = checked<float>(color_obj, "color", 2, "(dim, dim)");
    check_axis(mean, "mean", 0, dim, "dim of z");
    check_axis(whiten, "whiten", 0, dim, "dim of z");
    check_axis(whiten, "whiten", 1, dim, "dim of z");
    check_axis(color, "color", 0, dim, "dim of z");
    check_axis(color, "color", 1, dim, "dim of z");
    p.mean = mean.data();
    p.pre = whiten.data();
    p.post = color.data();
  }
  check_finite(z, "z");  // values last: every structural mistake is reported first, as in Python
  if (affine) {
    check_finite(mean, "mean");
    check_finite(whiten, "whiten");
    check_finite(color, "color");
  }
  py::array_t<float> out({batch, dim});
  p.in = z.data();
  p.out = out.mutable_data();
  p.signs = signs.data();
  p.perms = perms.data();
  p.batch = batch;
  p.dim = dim;
  p.rounds = signs.shape(0);
  p.inverse = inverse;
  {
    py::gil_scoped_release release;
    kernel(p);
  }
  return out;
}

void def_projection(py::module_& m, const char* name, Kernel kernel, const char* doc) {
  m.def(
      name,
      [kernel](const py::handle& z, const py::handle& signs, const py::handle& perms, bool inverse,
               const py::handle& mean, const py::handle& whiten, const py::handle& color) {
        return projection(kernel, z, signs, perms, inverse, mean, whiten, color);
      },
      py::arg("z"), py::arg("signs"), py::arg("perms"), py::arg("inverse") = false,
      py::arg("mean") = py::none(), py::arg("whiten") = py::none(), py::arg("color") = py::none(), doc);
}

}  // namespace

void register_projection(py::module_& m) {
  def_projection(m, "projection_cpu", &checked_cpu<ProjectionParams, projection_cpu>,
                 "Keyed projection on the CPU: z (batch, dim) float32 -> (batch, dim). "
                 "out = mean + color · Q^{±1} · whiten · (z - mean), or Q^{±1} z without whitening.");
#ifdef KFAAR_WITH_CUDA
  def_projection(m, "projection_cuda", &projection_cuda, "Keyed projection on the GPU (host arrays in and out).");
#endif
}

}  // namespace kfaar::bind
