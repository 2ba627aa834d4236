// OpenCV 4.x's warpAffine arithmetic (INTER_LINEAR), shared by the warp and the cell sums of
// warped crops: the photo -> output matrix inverted as cv2.invertAffineTransform does, the
// output -> photo map in 1/1024 px fixed point per output column and row, rounded to 1/32 px
// for the bilinear weights, the weights 15-bit integers summing to exactly 1 << 15. Every
// output pixel is then the very uint8 cv2.warpAffine(INTER_LINEAR) writes (4.11-4.14; 5.0
// rounds otherwise). Compiled without floating-point contraction (CMakeLists.txt): an FMA in
// the row terms could move a coordinate by 1/1024 px.
#pragma once

#include <cstdint>
#include <limits>
#include <vector>
#include <cmath>

namespace kfaar::warp {

constexpr int kAbBits = 10;    // the coordinates' fixed point: 1/1024 px
constexpr int kInterBits = 5;  // rounded to 1/32 px for the weights
constexpr int kInterTab = 1 << kInterBits;
constexpr int kRoundDelta = (1 << kAbBits) / kInterTab / 2;
constexpr int kCoefBits = 15;  // the bilinear weights sum to 1 << 15

// double -> int rounded to nearest (ties to even, as the FPU's default mode), saturated to int32.
inline int64_t round_sat(double v) {
  constexpr double lo = std::numeric_limits<int32_t>::min(), hi = std::numeric_limits<int32_t>::max();
  return static_cast<int64_t>(std::nearbyint(v < lo ? lo : (v > hi ? hi : v)));
}

inline int64_t clamp(int64_t v, int64_t hi) { return v < 0 ? 0 : (v > hi ? hi : v); }

// The output -> photo map's per-column and per-row fixed-point terms of one (2, 3) photo ->
// output matrix, for `cols` output columns and `rows` output rows.
struct Terms {
  std::vector<int64_t> col_x, col_y, row_x, row_y;

  Terms(int64_t cols, int64_t rows) : col_x(cols), col_y(cols), row_x(rows), row_y(rows) {}

  // m: photo -> output (inverted here), or output -> photo when `inverse` (WARP_INVERSE_MAP).
  void set(const double* m, bool inverse = false) {
    double a11 = m[0], a12 = m[1], b1 = m[2], a21 = m[3], a22 = m[4], b2 = m[5];
    if (!inverse) {
      double d = m[0] * m[4] - m[1] * m[3];  // cv2.invertAffineTransform's arithmetic
      d = d != 0.0 ? 1.0 / d : 0.0;
      a11 = m[4] * d, a22 = m[0] * d, a12 = -m[1] * d, a21 = -m[3] * d;
      b1 = -a11 * m[2] - a12 * m[5], b2 = -a21 * m[2] - a22 * m[5];
    }
    constexpr double scale = 1 << kAbBits;
    for (size_t i = 0; i < col_x.size(); ++i) {
      const double v = static_cast<double>(i);
      col_x[i] = round_sat(a11 * v * scale);
      col_y[i] = round_sat(a21 * v * scale);
    }
    for (size_t i = 0; i < row_x.size(); ++i) {
      const double v = static_cast<double>(i);
      row_x[i] = round_sat((a12 * v + b1) * scale) + kRoundDelta;
      row_y[i] = round_sat((a22 * v + b2) * scale) + kRoundDelta;
    }
  }
};

// Output pixel (x, y)'s source: its top-left tap (ix, iy) and its fractions (fx, fy) in 1/32 px,
// which index OpenCV's weight tables as (fy << 5) | fx (Tables, below).
struct Source {
  int64_t ix, iy;
  int32_t fx, fy;

  int index() const { return (fy << kInterBits) | fx; }
};

inline Source source(const Terms& t, int64_t x, int64_t y) {
  const int64_t sx = (t.row_x[y] + t.col_x[x]) >> (kAbBits - kInterBits);
  const int64_t sy = (t.row_y[y] + t.col_y[x]) >> (kAbBits - kInterBits);
  return {sx >> kInterBits, sy >> kInterBits, static_cast<int32_t>(sx & (kInterTab - 1)),
          static_cast<int32_t>(sy & (kInterTab - 1))};
}

// Output pixel (x, y)'s top-left tap and its four bilinear weights (1 - fy, fy) x (1 - fx, fx)
// in units of 2^-15, exact products summing to 2^15.
struct Tap {
  int64_t ix, iy;
  int32_t w00, w01, w10, w11;
};

inline Tap tap(const Terms& t, int64_t x, int64_t y) {
  const Source s = source(t, x, y);
  constexpr int32_t unit = (1 << kCoefBits) / (kInterTab * kInterTab);
  return {s.ix, s.iy, (kInterTab - s.fy) * (kInterTab - s.fx) * unit, (kInterTab - s.fy) * s.fx * unit,
          s.fy * (kInterTab - s.fx) * unit, s.fy * s.fx * unit};
}

// OpenCV's 2-D weight tables, indexed by (fy << 5) | fx: the bicubic one in 15-bit integers
// (initInterTab2D: float products of interpolateCubic's 1-D weights, rounded, the largest or
// smallest of the central four moved so each set sums to exactly 2^15), the bilinear one in
// float (products of (1 - x, x)).
struct Tables {
  int16_t cubic[kInterTab * kInterTab][16];
  float linear[kInterTab * kInterTab][4];
  Tables();
};

const Tables& tables();

// The weighted sum of four taps' values, rounded back to the pixel scale.
inline int32_t blend(const Tap& w, int32_t v00, int32_t v01, int32_t v10, int32_t v11) {
  return (w.w00 * v00 + w.w01 * v01 + w.w10 * v10 + w.w11 * v11 + (1 << (kCoefBits - 1))) >> kCoefBits;
}

}  // namespace kfaar::warp
