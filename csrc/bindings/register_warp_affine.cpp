// Binding of the affine warp: warp_affine_cpu (host only, like the cell sums: it warps host
// photos in host steps; there is no CUDA twin).
#include <string>

#include "checks.h"
#include "kfaar/warp_affine_params.h"
#include "register.h"

namespace kfaar::bind {
namespace {

constexpr int64_t kMaxSide = int64_t{1} << 20;

py::array_t<uint8_t> warp_affine(const py::handle& src_obj, const py::handle& matrix_obj, int64_t width,
                                 int64_t height, bool replicate) {
  auto src = checked<uint8_t>(src_obj, "photo", 3, "(height, width, channels)");
  if (src.shape(2) > 4)
    throw py::value_error("photo: expected 1 to 4 channels on axis 2, got shape " + shape_str(src));
  auto matrix = checked<double>(matrix_obj, "matrix", 2, "(2, 3)");
  check_axis(matrix, "matrix", 0, 2, "2 rows");
  check_axis(matrix, "matrix", 1, 3, "3 columns");
  check_finite(matrix, "matrix");
  if (width < 1 || width > kMaxSide || height < 1 || height > kMaxSide)
    throw py::value_error("size: expected 1 <= width, height <= " + std::to_string(kMaxSide) + ", got (" +
                          std::to_string(width) + ", " + std::to_string(height) + ")");
  WarpAffineParams p;
  p.src = src.data();
  p.height = src.shape(0);
  p.width = src.shape(1);
  p.channels = src.shape(2);
  p.matrix = matrix.data();
  p.out_height = height;
  p.out_width = width;
  p.replicate = replicate;
  py::array_t<uint8_t> out({height, width, p.channels});
  p.out = out.mutable_data();
  {
    py::gil_scoped_release release;
    checked_cpu<WarpAffineParams, warp_affine_cpu>(p);
  }
  return out;
}

}  // namespace

void register_warp_affine(py::module_& m) {
  m.def("warp_affine_cpu", &warp_affine, py::arg("photo"), py::arg("matrix"), py::arg("width"), py::arg("height"),
        py::arg("replicate"),
        "Affine warp on the CPU, OpenCV 4.x's INTER_LINEAR bit for bit: photo (H, W, C) uint8 (C 1-4), matrix (2, 3) "
        "float64 photo -> output -> (height, width, C) uint8; the border replicated, else 0.");
}

}  // namespace kfaar::bind
