// Argument checks shared by the bindings. Every failure names the argument, what it got and
// what it needs, as a ValueError or TypeError; python/kfaar/ops/_checks.py words them the same.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "kfaar/finite.h"
#include "kfaar/isa.h"

namespace kfaar::bind {

namespace py = pybind11;

// Refuses to run a C++ kernel on a CPU without the instructions it was compiled for (it would
// die of SIGILL): the Python dispatch never gets here then (kfaar/ops/_dispatch.py), a direct
// call of kfaar._C.<op>_cpu gets a RuntimeError.
inline void require_cpu_isa() {
  if (const uint32_t missing = missing_isa())
    throw std::runtime_error("the C++ kernels were built for instructions this CPU lacks (" + isa_names(missing) +
                             "): use the reference kernels (KFAAR_KERNELS=ref), or rebuild for this CPU with "
                             "pip install . -C cmake.define.KFAAR_CPU_FLAGS=-O3");
}

// A host kernel behind that check.
template <class Params, void (*Kernel)(const Params&)>
void checked_cpu(const Params& p) {
  require_cpu_isa();
  Kernel(p);
}

inline std::string shape_str(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
  return s + (a.ndim() == 1 ? ",)" : ")");
}

template <class T>
constexpr const char* dtype_name() {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, int32_t> ||
                    std::is_same_v<T, uint8_t>,
                "checked<T>: float, double, int32_t or uint8_t");
  if constexpr (std::is_same_v<T, float>) return "float32";
  if constexpr (std::is_same_v<T, double>) return "float64";
  if constexpr (std::is_same_v<T, int32_t>) return "int32";
  return "uint8";
}

// A numpy array of `dtype` (float32, float64, int32 or uint8), C-contiguous and aligned, with `ndim`
// dimensions; `layout` names the axes, e.g. "(batch, dim)".
template <class T>
py::array_t<T> checked(const py::handle& obj, const char* name, int ndim, const char* layout) {
  const char* dtype = dtype_name<T>();
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(std::string(name) + ": expected a numpy " + dtype + " array " + layout + ", got " +
                         std::string(py::str(py::type::handle_of(obj).attr("__name__"))));
  auto a = py::reinterpret_borrow<py::array>(obj);
  // equal, not the same object: an unpickled float32 array carries its own (equal) dtype
  // instance; a byte-swapped one ('>f4') is not equal and is refused
  if (!a.dtype().equal(py::dtype::of<T>()))
    throw py::type_error(std::string(name) + ": expected dtype " + dtype + ", got " + std::string(py::str(a.dtype())) +
                         " (convert with .astype(np." + dtype + "))");
  if (a.ndim() != ndim)
    throw py::value_error(std::string(name) + ": expected " + std::to_string(ndim) + " dimensions " + layout +
                          ", got shape " + shape_str(a));
  const int flags = a.flags();
  if (!(flags & py::array::c_style))
    throw py::value_error(std::string(name) + ": expected a C-contiguous array, got a strided view of shape " +
                          shape_str(a) + " (use np.ascontiguousarray)");
  if (!(flags & py::detail::npy_api::NPY_ARRAY_ALIGNED_))
    throw py::value_error(std::string(name) + ": expected an aligned array, got a misaligned buffer (copy it with np.array)");
  for (py::ssize_t i = 0; i < a.ndim(); ++i)
    if (a.shape(i) < 1)
      throw py::value_error(std::string(name) + ": expected every axis of " + layout + " to be >= 1, got shape " +
                            shape_str(a));
  return py::reinterpret_borrow<py::array_t<T>>(a);
}

inline void check_axis(const py::array& a, const char* name, int axis, int64_t expected, const char* what) {
  if (a.shape(axis) != expected)
    throw py::value_error(std::string(name) + ": expected " + what + " = " + std::to_string(expected) + " on axis " +
                          std::to_string(axis) + ", got shape " + shape_str(a));
}

inline bool is_power_of_two(int64_t v) { return v >= 2 && (v & (v - 1)) == 0; }

template <class T>
inline void check_finite(const py::array_t<T>& a, const char* name) {
  if (!all_finite(a.data(), a.size()))
    throw py::value_error(std::string(name) + ": expected finite values, got NaN or inf");
}

}  // namespace kfaar::bind
