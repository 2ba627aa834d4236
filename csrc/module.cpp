// kfaar._C: only registers the per-area bindings.
#include <pybind11/pybind11.h>

PYBIND11_MODULE(_C, m) {
  m.doc() = "kfaar native kernels";
}
