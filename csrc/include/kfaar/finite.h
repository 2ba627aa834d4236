// Whether n float32 or float64 values are all finite, for the argument checks of the Python
// bindings and the C SDK. NaN and inf have an all-ones exponent; an integer test the compiler
// vectorises.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

namespace kfaar {

template <class T>
bool all_finite(const T* p, int64_t n) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "all_finite: float or double");
  using Bits = std::conditional_t<sizeof(T) == 8, uint64_t, uint32_t>;
  constexpr Bits exponent = sizeof(T) == 8 ? static_cast<Bits>(0x7ff0000000000000ull) : static_cast<Bits>(0x7f800000u);
  Bits bad = 0;
  for (int64_t i = 0; i < n; ++i) {
    Bits bits;
    std::memcpy(&bits, p + i, sizeof(T));
    bad |= static_cast<Bits>((bits & exponent) == exponent);
  }
  return !bad;
}

}  // namespace kfaar
