// What this build of kfaar._C contains, and which CUDA devices the machine shows.
#include <pybind11/pybind11.h>

#include <string>

#include "cpu/threads.h"
#include "kfaar/isa.h"
#include "register.h"
#ifdef KFAAR_WITH_CUDA
#include "kfaar/cuda_device.h"
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

#ifndef KFAAR_BUILD_TYPE
#define KFAAR_BUILD_TYPE "unknown"
#endif
#ifndef KFAAR_CXX_COMPILER
#define KFAAR_CXX_COMPILER "unknown"
#endif
#ifndef KFAAR_CPU_FLAGS
#define KFAAR_CPU_FLAGS ""
#endif
#ifndef KFAAR_CUDA_ARCHITECTURES
#define KFAAR_CUDA_ARCHITECTURES ""
#endif

namespace kfaar::bind {

namespace py = pybind11;

void register_build_info(py::module_& m) {
  m.def(
      "build_info",
      []() {
        py::dict d;
        d["build_type"] = KFAAR_BUILD_TYPE;
        d["cxx_compiler"] = KFAAR_CXX_COMPILER;
        d["cpu_flags"] = KFAAR_CPU_FLAGS;
        d["kernels_isa"] = isa_names(kernels_isa());  // what the kernels were compiled to use
        d["cpu_missing"] = isa_names(missing_isa());  // what of it this CPU lacks ("" : it runs them)
#ifdef _OPENMP
        d["openmp"] = std::to_string(_OPENMP);
        d["omp_max_threads"] = omp_get_max_threads();
#else
        d["openmp"] = "";
        d["omp_max_threads"] = 1;
#endif
#ifdef KFAAR_WITH_CUDA
        d["cuda_compiled"] = true;
        d["cuda_architectures"] = KFAAR_CUDA_ARCHITECTURES;
        d["cuda_runtime_version"] = cuda_runtime_version();
        d["cuda_driver_version"] = cuda_driver_version();
#else
        d["cuda_compiled"] = false;
        d["cuda_architectures"] = "";
        d["cuda_runtime_version"] = 0;
        d["cuda_driver_version"] = 0;
#endif
        return d;
      },
      "How this module was built: compiler, CPU flags, OpenMP, CUDA.");
  m.def(
      "cpu_threads", []() { return kfaar::cpu::threads_for(1, 0); },
      "OpenMP threads a large C++ kernel call would use now (1 while the machine is oversubscribed).");
  m.def(
      "cuda_devices",
      []() {
        py::list names;
#ifdef KFAAR_WITH_CUDA
        const int n = cuda_device_count();
        for (int i = 0; i < n; ++i) names.append(cuda_device_name(i));
#endif
        return names;
      },
      "Names of the CUDA devices this process can use; [] without CUDA, a driver or a device.");
}

}  // namespace kfaar::bind
