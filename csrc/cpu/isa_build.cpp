// Compiled with the kernels' flags: the macros below are what those flags enable.
#include "kfaar/isa.h"

namespace kfaar {

uint32_t kernels_isa() {
  uint32_t bits = 0;
#ifdef __SSE3__
  bits |= kIsaSse3;
#endif
#ifdef __SSSE3__
  bits |= kIsaSsse3;
#endif
#ifdef __SSE4_1__
  bits |= kIsaSse41;
#endif
#ifdef __SSE4_2__
  bits |= kIsaSse42;
#endif
#ifdef __POPCNT__
  bits |= kIsaPopcnt;
#endif
#ifdef __AVX__
  bits |= kIsaAvx;
#endif
#ifdef __AVX2__
  bits |= kIsaAvx2;
#endif
#ifdef __FMA__
  bits |= kIsaFma;
#endif
#ifdef __BMI__
  bits |= kIsaBmi1;
#endif
#ifdef __BMI2__
  bits |= kIsaBmi2;
#endif
#ifdef __F16C__
  bits |= kIsaF16c;
#endif
#ifdef __MOVBE__
  bits |= kIsaMovbe;
#endif
#ifdef __LZCNT__
  bits |= kIsaLzcnt;
#endif
#ifdef __AVX512F__
  bits |= kIsaAvx512f;
#endif
#ifdef __AVX512BW__
  bits |= kIsaAvx512bw;
#endif
#ifdef __AVX512DQ__
  bits |= kIsaAvx512dq;
#endif
#ifdef __AVX512VL__
  bits |= kIsaAvx512vl;
#endif
#ifdef __AVX512CD__
  bits |= kIsaAvx512cd;
#endif
  return bits;
}

}  // namespace kfaar
