// C++ cell sums of warped crops. Each candidate's matrix is inverted as
// cv2.invertAffineTransform does, and only the 4 * n_cells crop pixels its cells cover are
// sampled, with cv2.warpAffine's fixed-point bilinear arithmetic (its coordinates in 1/1024 px
// rounded to 1/32 px, 15-bit weights), so each pixel is the very uint8 the warp writes.
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "threads.h"
#include "kfaar/warp_cells_params.h"

namespace kfaar {
namespace {

constexpr int kAbBits = 10;    // the coordinates' fixed point: 1/1024 px
constexpr int kInterBits = 5;  // rounded to 1/32 px for the weights
constexpr int kInterTab = 1 << kInterBits;
constexpr int kRoundDelta = (1 << kAbBits) / kInterTab / 2;
constexpr int kCoefBits = 15;  // the bilinear weights sum to 1 << 15

// double -> int rounded to nearest (ties to even, as the FPU's default mode), saturated.
inline int64_t round_sat(double v) {
  constexpr double lo = std::numeric_limits<int32_t>::min(), hi = std::numeric_limits<int32_t>::max();
  return static_cast<int64_t>(std::nearbyint(v < lo ? lo : (v > hi ? hi : v)));
}

inline int64_t clamp(int64_t v, int64_t hi) { return v < 0 ? 0 : (v > hi ? hi : v); }

// One candidate: the crop -> photo map's per-column and per-row fixed-point terms, for the
// 2 * res columns and rows of the crop.
struct Terms {
  std::vector<int64_t> col_x, col_y, row_x, row_y;

  explicit Terms(int64_t size) : col_x(size), col_y(size), row_x(size), row_y(size) {}

  void set(const double* m) {
    double d = m[0] * m[4] - m[1] * m[3];  // cv2.invertAffineTransform's arithmetic
    d = d != 0.0 ? 1.0 / d : 0.0;
    const double a11 = m[4] * d, a22 = m[0] * d, a12 = -m[1] * d, a21 = -m[3] * d;
    const double b1 = -a11 * m[2] - a12 * m[5], b2 = -a21 * m[2] - a22 * m[5];
    constexpr double scale = 1 << kAbBits;
    for (size_t i = 0; i < col_x.size(); ++i) {
      const double v = static_cast<double>(i);
      col_x[i] = round_sat(a11 * v * scale);
      col_y[i] = round_sat(a21 * v * scale);
      row_x[i] = round_sat((a12 * v + b1) * scale) + kRoundDelta;
      row_y[i] = round_sat((a22 * v + b2) * scale) + kRoundDelta;
    }
  }
};

// Adds crop pixel (x, y)'s three channels, as cv2.warpAffine(INTER_LINEAR, BORDER_REPLICATE)
// writes them, to sum. kClamp: the taps may fall outside the photo (else they are known inside).
template <bool kClamp>
inline void add_pixel(const WarpCellsParams& p, const Terms& t, int64_t x, int64_t y, int32_t* sum) {
  const int64_t sx = (t.row_x[y] + t.col_x[x]) >> (kAbBits - kInterBits);
  const int64_t sy = (t.row_y[y] + t.col_y[x]) >> (kAbBits - kInterBits);
  const int64_t ix = sx >> kInterBits, iy = sy >> kInterBits;
  const int32_t fx = static_cast<int32_t>(sx & (kInterTab - 1)), fy = static_cast<int32_t>(sy & (kInterTab - 1));
  // the weights (1 - fy, fy) x (1 - fx, fx) in units of 2^-15: exact products, summing to 2^15
  constexpr int32_t unit = (1 << kCoefBits) / (kInterTab * kInterTab);
  const int32_t w00 = (kInterTab - fy) * (kInterTab - fx) * unit, w01 = (kInterTab - fy) * fx * unit;
  const int32_t w10 = fy * (kInterTab - fx) * unit, w11 = fy * fx * unit;
  const int64_t row = p.width * 3;
  int64_t xa = ix * 3, xb = xa + 3;
  const uint8_t *r0 = p.photo + iy * row, *r1 = r0 + row;
  if constexpr (kClamp) {
    xa = clamp(ix, p.width - 1) * 3;
    xb = clamp(ix + 1, p.width - 1) * 3;
    r0 = p.photo + clamp(iy, p.height - 1) * row;
    r1 = p.photo + clamp(iy + 1, p.height - 1) * row;
  }
  for (int ch = 0; ch < 3; ++ch) {
    const int32_t v = w00 * r0[xa + ch] + w01 * r0[xb + ch] + w10 * r1[xa + ch] + w11 * r1[xb + ch];
    sum[ch] += (v + (1 << (kCoefBits - 1))) >> kCoefBits;
  }
}

// Whether every tap of every crop pixel lies inside the photo: the map is affine, so the
// crop's corners bound where its pixels land (to within the 1/1024-px rounding of its terms:
// hence a pixel's margin).
bool inside(const WarpCellsParams& p, const Terms& t) {
  const int64_t last = static_cast<int64_t>(t.col_x.size()) - 1;
  for (int64_t y : {int64_t{0}, last})
    for (int64_t x : {int64_t{0}, last}) {
      const int64_t ix = (t.row_x[y] + t.col_x[x]) >> kAbBits, iy = (t.row_y[y] + t.col_y[x]) >> kAbBits;
      if (ix < 1 || iy < 1 || ix + 2 > p.width - 1 || iy + 2 > p.height - 1) return false;
    }
  return true;
}

template <bool kClamp>
void candidate_sums(const WarpCellsParams& p, const Terms& t, const int64_t* cx, const int64_t* cy, uint16_t* out) {
  for (int64_t i = 0; i < p.n_cells; ++i) {
    const int64_t x = cx[i], y = cy[i];
    int32_t sum[3] = {0, 0, 0};
    add_pixel<kClamp>(p, t, x, y, sum);
    add_pixel<kClamp>(p, t, x + 1, y, sum);
    add_pixel<kClamp>(p, t, x, y + 1, sum);
    add_pixel<kClamp>(p, t, x + 1, y + 1, sum);
    for (int ch = 0; ch < 3; ++ch) out[i * 3 + ch] = static_cast<uint16_t>(sum[ch]);
  }
}

// The cells of the window at (x0, y0): a whole-pixel shift, for which the warp's weights are
// (1, 0, 0, 0) and each crop pixel is a photo pixel (its taps clamped to the photo as there).
void window_sums(const WarpCellsParams& p, int64_t x0, int64_t y0, const int64_t* cx, const int64_t* cy,
                 uint16_t* out) {
  const int64_t w = p.width, h = p.height;
  for (int64_t i = 0; i < p.n_cells; ++i) {
    const int64_t xa = clamp(x0 + cx[i], w - 1) * 3, xb = clamp(x0 + cx[i] + 1, w - 1) * 3;
    const uint8_t* r0 = p.photo + clamp(y0 + cy[i], h - 1) * w * 3;
    const uint8_t* r1 = p.photo + clamp(y0 + cy[i] + 1, h - 1) * w * 3;
    for (int ch = 0; ch < 3; ++ch)
      out[i * 3 + ch] = static_cast<uint16_t>(r0[xa + ch] + r0[xb + ch] + r1[xa + ch] + r1[xb + ch]);
  }
}

}  // namespace

void warp_cells_cpu(const WarpCellsParams& p) {
  const int64_t n = p.n_candidates, cells = p.n_cells;
  std::vector<int64_t> cx(cells), cy(cells);  // each cell's top-left crop pixel
  for (int64_t i = 0; i < cells; ++i) {
    cy[i] = 2 * (p.cells[i] / p.res);
    cx[i] = 2 * (p.cells[i] % p.res);
  }
  // a general candidate costs ~10 us on one core, a window ~1 us: below ~250 candidates one thread
  const int threads = cpu::threads_for(n * cells, 1 << 16);
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    Terms t(2 * p.res);
#pragma omp for schedule(static)
    for (int64_t c = 0; c < n; ++c) {
      const double* m = p.matrices + c * 6;
      uint16_t* out = p.out + c * cells * 3;
      if (m[0] == 1.0 && m[1] == 0.0 && m[3] == 0.0 && m[4] == 1.0 && m[2] == std::floor(m[2]) &&
          m[5] == std::floor(m[5]) && std::fabs(m[2]) < 1e9 && std::fabs(m[5]) < 1e9) {
        // a whole-pixel shift (a window of the photo): the warp copies pixels, so add them
        window_sums(p, static_cast<int64_t>(-m[2]), static_cast<int64_t>(-m[5]), cx.data(), cy.data(), out);
        continue;
      }
      t.set(m);
      if (inside(p, t))
        candidate_sums<false>(p, t, cx.data(), cy.data(), out);
      else
        candidate_sums<true>(p, t, cx.data(), cy.data(), out);
    }
  }
}

}  // namespace kfaar
