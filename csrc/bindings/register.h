// One registration function per area; module.cpp only calls these.
#pragma once

#include <pybind11/pybind11.h>

namespace kfaar::bind {

void register_build_info(pybind11::module_& m);
void register_projection(pybind11::module_& m);
void register_mapping(pybind11::module_& m);
void register_scoring(pybind11::module_& m);
void register_warp_cells(pybind11::module_& m);
void register_warp_affine(pybind11::module_& m);

}  // namespace kfaar::bind
