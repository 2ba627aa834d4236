// kfaar._C: only registers the per-area bindings.
#include <pybind11/pybind11.h>

#include "bindings/register.h"

PYBIND11_MODULE(_C, m) {
  m.doc() =
      "kfaar native kernels: keyed projection, fused latent mapping, template scoring, affine warps and cell sums of "
      "warped crops";
  kfaar::bind::register_build_info(m);
  kfaar::bind::register_projection(m);
  kfaar::bind::register_mapping(m);
  kfaar::bind::register_scoring(m);
  kfaar::bind::register_warp_cells(m);
  kfaar::bind::register_warp_affine(m);
}
