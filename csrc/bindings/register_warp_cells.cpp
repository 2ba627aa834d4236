// Binding of the cell sums of warped crops: warp_cells_cpu (host only: it reads a host photo,
// and recovery's search is a host step; there is no CUDA twin).
#include <string>

#include "checks.h"
#include "kfaar/warp_cells_params.h"
#include "register.h"

namespace kfaar::bind {
namespace {

py::array_t<uint16_t> warp_cells(const py::handle& photo_obj, const py::handle& matrices_obj,
                                 const py::handle& cells_obj, int64_t res) {
  auto photo = checked<uint8_t>(photo_obj, "photo", 3, "(height, width, 3)");
  check_axis(photo, "photo", 2, 3, "3 channels (RGB)");
  auto matrices = checked<double>(matrices_obj, "matrices", 3, "(n_candidates, 2, 3)");
  check_axis(matrices, "matrices", 1, 2, "2 rows");
  check_axis(matrices, "matrices", 2, 3, "3 columns");
  check_finite(matrices, "matrices");
  auto cells = checked<int32_t>(cells_obj, "cells", 1, "(n_cells,)");
  if (res < 1 || res > (1 << 14)) throw py::value_error("res: expected 1 <= res <= 16384, got " + std::to_string(res));
  const int32_t* c = cells.data();
  for (py::ssize_t i = 0; i < cells.size(); ++i)
    if (c[i] < 0 || c[i] >= res * res)
      throw py::value_error("cells: expected indices in [0, res * res = " + std::to_string(res * res) + "), got " +
                            std::to_string(c[i]) + " at " + std::to_string(i));
  WarpCellsParams p;
  p.photo = photo.data();
  p.height = photo.shape(0);
  p.width = photo.shape(1);
  p.matrices = matrices.data();
  p.n_candidates = matrices.shape(0);
  p.cells = c;
  p.n_cells = cells.shape(0);
  p.res = res;
  py::array_t<uint16_t> out({p.n_candidates, p.n_cells, static_cast<int64_t>(3)});
  p.out = out.mutable_data();
  {
    py::gil_scoped_release release;
    checked_cpu<WarpCellsParams, warp_cells_cpu>(p);
  }
  return out;
}

}  // namespace

void register_warp_cells(py::module_& m) {
  m.def("warp_cells_cpu", &warp_cells, py::arg("photo"), py::arg("matrices"), py::arg("cells"), py::arg("res"),
        "Cell sums of warped crops on the CPU: photo (H, W, 3) uint8, matrices (N, 2, 3) float64 photo -> "
        "crop, cells (n,) int32 into the res x res grid -> (N, n, 3) uint16 sums of each cell's 2 x 2 pixels.");
}

}  // namespace kfaar::bind
