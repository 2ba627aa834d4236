// Binding of the affine warp: warp_affine_cpu (host only, like the cell sums: it warps host
// photos in host steps; there is no CUDA twin).
#include <string>

#include "checks.h"
#include "kfaar/warp_affine_params.h"
#include "register.h"

namespace kfaar::bind {
namespace {

constexpr int64_t kMaxSide = int64_t{1} << 20;

template <class T>
py::array_t<T> run(const py::handle& src_obj, const py::array_t<double>& matrix, int64_t width, int64_t height,
                   bool replicate, bool cubic, bool inverse) {
  auto src = checked<T>(src_obj, "photo", 3, "(height, width, channels)");
  if (src.shape(2) > 4)
    throw py::value_error("photo: expected 1 to 4 channels on axis 2, got shape " + shape_str(src));
  WarpAffineParams p;
  p.src = src.data();
  p.height = src.shape(0);
  p.width = src.shape(1);
  p.channels = src.shape(2);
  p.is_float = std::is_same_v<T, float>;
  p.matrix = matrix.data();
  p.inverse = inverse;
  p.cubic = cubic;
  p.out_height = height;
  p.out_width = width;
  p.replicate = replicate;
  py::array_t<T> out({height, width, static_cast<int64_t>(p.channels)});
  p.out = out.mutable_data();
  {
    py::gil_scoped_release release;
    checked_cpu<WarpAffineParams, warp_affine_cpu>(p);
  }
  return out;
}

py::array warp_affine(const py::handle& src_obj, const py::handle& matrix_obj, int64_t width, int64_t height,
                      bool replicate, bool cubic, bool inverse) {
  auto matrix = checked<double>(matrix_obj, "matrix", 2, "(2, 3)");
  check_axis(matrix, "matrix", 0, 2, "2 rows");
  check_axis(matrix, "matrix", 1, 3, "3 columns");
  check_finite(matrix, "matrix");
  if (width < 1 || width > kMaxSide || height < 1 || height > kMaxSide)
    throw py::value_error("size: expected 1 <= width, height <= " + std::to_string(kMaxSide) + ", got (" +
                          std::to_string(width) + ", " + std::to_string(height) + ")");
  if (py::isinstance<py::array>(src_obj) &&
      py::reinterpret_borrow<py::array>(src_obj).dtype().equal(py::dtype::of<float>())) {
    if (cubic) throw py::value_error("interpolation: cubic is for uint8 photos; a float32 one is warped linearly");
    return run<float>(src_obj, matrix, width, height, replicate, cubic, inverse);
  }
  return run<uint8_t>(src_obj, matrix, width, height, replicate, cubic, inverse);
}

}  // namespace

void register_warp_affine(py::module_& m) {
  m.def("warp_affine_cpu", &warp_affine, py::arg("photo"), py::arg("matrix"), py::arg("width"), py::arg("height"),
        py::arg("replicate"), py::arg("cubic") = false, py::arg("inverse") = false,
        "Affine warp on the CPU with OpenCV 4.x's arithmetic: photo (H, W, C) uint8 or float32 (C 1-4), matrix (2, 3) "
        "float64 photo -> output (output -> photo with inverse) -> (height, width, C) of photo's type; the border "
        "replicated, else 0; bicubic (uint8) with cubic, else bilinear.");
}

}  // namespace kfaar::bind
