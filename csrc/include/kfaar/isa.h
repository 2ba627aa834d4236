// Which x86 instruction-set extensions the kernels were compiled for, and which this CPU has.
//
// The kernels are built for x86-64-v3 (AVX2, FMA, BMI2...: KFAAR_CPU_FLAGS). On a CPU without
// those (Atom-class and older x86 machines, some virtual machines) their first instruction
// would kill the process with SIGILL; callers check `kernels_isa() & ~cpu_isa()` first and
// take another path (the Python ops: the numpy reference; the C SDK: a status code).
#pragma once

#include <cstdint>
#include <string>

namespace kfaar {

enum IsaBit : uint32_t {
  kIsaSse3 = 1u << 0,
  kIsaSsse3 = 1u << 1,
  kIsaSse41 = 1u << 2,
  kIsaSse42 = 1u << 3,
  kIsaPopcnt = 1u << 4,
  kIsaAvx = 1u << 5,
  kIsaAvx2 = 1u << 6,
  kIsaFma = 1u << 7,
  kIsaBmi1 = 1u << 8,
  kIsaBmi2 = 1u << 9,
  kIsaF16c = 1u << 10,
  kIsaMovbe = 1u << 11,
  kIsaLzcnt = 1u << 12,
  kIsaAvx512f = 1u << 13,
  kIsaAvx512bw = 1u << 14,
  kIsaAvx512dq = 1u << 15,
  kIsaAvx512vl = 1u << 16,
  kIsaAvx512cd = 1u << 17,
};

// The extensions the kernels library was compiled to use (its compiler's predefined macros).
// Defined in that library, so it reports that library's flags, whatever the caller's are.
uint32_t kernels_isa();

// The extensions this CPU and its OS provide (CPUID, and XGETBV for the AVX registers' state).
// Every bit on a non-x86 build. Call only from code compiled without the kernels' flags.
uint32_t cpu_isa();

// The names of the bits set in `bits`, comma-separated ("" for none).
std::string isa_names(uint32_t bits);

// kernels_isa() & ~cpu_isa(), computed once: the extensions this CPU lacks (0: it runs them).
// Inline, so that it sits in its caller (the bindings, the SDK: baseline code) and links the
// kernels library's kernels_isa() from there.
inline uint32_t missing_isa() {
  static const uint32_t missing = kernels_isa() & ~cpu_isa();
  return missing;
}

}  // namespace kfaar
