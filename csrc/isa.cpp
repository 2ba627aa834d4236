// Compiled without the kernels' flags (it runs before we know the CPU can run them).
#include "kfaar/isa.h"

#if defined(__x86_64__) || defined(__i386__) || defined(_M_X64)
#define KFAAR_X86 1
#if defined(_MSC_VER)
#include <immintrin.h>
#include <intrin.h>
#else
#include <cpuid.h>
#endif
#endif

namespace kfaar {

namespace {

#ifdef KFAAR_X86
void cpuid(uint32_t leaf, uint32_t sub, uint32_t r[4]) {
#if defined(_MSC_VER)
  int out[4];
  __cpuidex(out, static_cast<int>(leaf), static_cast<int>(sub));
  for (int i = 0; i < 4; ++i) r[i] = static_cast<uint32_t>(out[i]);
#else
  __cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]);
#endif
}

uint64_t xcr0() {
#if defined(_MSC_VER)
  return _xgetbv(0);
#else
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<uint64_t>(hi) << 32) | lo;
#endif
}
#endif

}  // namespace

uint32_t cpu_isa() {
#ifndef KFAAR_X86
  return ~0u;
#else
  uint32_t r[4];  // eax, ebx, ecx, edx
  cpuid(0, 0, r);
  const uint32_t max_leaf = r[0];
  cpuid(0x80000000u, 0, r);
  const uint32_t max_ext = r[0];
  uint32_t bits = 0;
  if (max_leaf < 1) return bits;
  cpuid(1, 0, r);
  const uint32_t c1 = r[2];
  auto has = [](uint32_t reg, int bit) { return (reg >> bit) & 1u; };
  if (has(c1, 0)) bits |= kIsaSse3;
  if (has(c1, 9)) bits |= kIsaSsse3;
  if (has(c1, 19)) bits |= kIsaSse41;
  if (has(c1, 20)) bits |= kIsaSse42;
  if (has(c1, 22)) bits |= kIsaMovbe;
  if (has(c1, 23)) bits |= kIsaPopcnt;
  // AVX needs the OS to save the YMM registers: OSXSAVE set and XCR0 bits 1-2 (SSE, AVX state)
  const bool ymm = has(c1, 27) && (xcr0() & 0x6) == 0x6;
  const bool zmm = ymm && (xcr0() & 0xE0) == 0xE0;  // opmask, ZMM0-15 upper halves, ZMM16-31
  if (ymm && has(c1, 28)) bits |= kIsaAvx;
  if (ymm && has(c1, 12)) bits |= kIsaFma;
  if (ymm && has(c1, 29)) bits |= kIsaF16c;
  if (max_leaf >= 7) {
    cpuid(7, 0, r);
    const uint32_t b7 = r[1];
    if (has(b7, 3)) bits |= kIsaBmi1;
    if (has(b7, 8)) bits |= kIsaBmi2;
    if (ymm && has(b7, 5)) bits |= kIsaAvx2;
    if (zmm && has(b7, 16)) bits |= kIsaAvx512f;
    if (zmm && has(b7, 17)) bits |= kIsaAvx512dq;
    if (zmm && has(b7, 28)) bits |= kIsaAvx512cd;
    if (zmm && has(b7, 30)) bits |= kIsaAvx512bw;
    if (zmm && has(b7, 31)) bits |= kIsaAvx512vl;
  }
  if (max_ext >= 0x80000001u) {
    cpuid(0x80000001u, 0, r);
    if (has(r[2], 5)) bits |= kIsaLzcnt;
  }
  return bits;
#endif
}

std::string isa_names(uint32_t bits) {
  static const char* const kNames[] = {"SSE3", "SSSE3", "SSE4.1", "SSE4.2", "POPCNT", "AVX", "AVX2", "FMA", "BMI1",
                                       "BMI2", "F16C", "MOVBE", "LZCNT", "AVX512F", "AVX512BW", "AVX512DQ",
                                       "AVX512VL", "AVX512CD"};
  std::string out;
  for (int i = 0; i < static_cast<int>(sizeof(kNames) / sizeof(kNames[0])); ++i) {
    if (!((bits >> i) & 1u)) continue;
    if (!out.empty()) out += ", ";
    out += kNames[i];
  }
  return out;
}

}  // namespace kfaar
