// C++ cell sums of warped crops. Each candidate's matrix is inverted as
// cv2.invertAffineTransform does, and only the 4 * n_cells crop pixels its cells cover are
// sampled, with cv2.warpAffine's fixed-point bilinear arithmetic (warp_fixed.h), so each pixel
// is the very uint8 the warp writes.
#include <cmath>
#include <cstdint>
#include <vector>

#include "threads.h"
#include "warp_fixed.h"
#include "kfaar/warp_cells_params.h"

namespace kfaar {
namespace {

using warp::clamp;
using warp::kAbBits;
using warp::Terms;

// Adds crop pixel (x, y)'s three channels, as cv2.warpAffine(INTER_LINEAR, BORDER_REPLICATE)
// writes them, to sum. kClamp: the taps may fall outside the photo (else they are known inside).
template <bool kClamp>
inline void add_pixel(const WarpCellsParams& p, const Terms& t, int64_t x, int64_t y, int32_t* sum) {
  const warp::Tap w = warp::tap(t, x, y);
  const int64_t row = p.width * 3;
  int64_t xa = w.ix * 3, xb = xa + 3;
  const uint8_t *r0 = p.photo + w.iy * row, *r1 = r0 + row;
  if constexpr (kClamp) {
    xa = clamp(w.ix, p.width - 1) * 3;
    xb = clamp(w.ix + 1, p.width - 1) * 3;
    r0 = p.photo + clamp(w.iy, p.height - 1) * row;
    r1 = p.photo + clamp(w.iy + 1, p.height - 1) * row;
  }
  for (int ch = 0; ch < 3; ++ch) sum[ch] += warp::blend(w, r0[xa + ch], r0[xb + ch], r1[xa + ch], r1[xb + ch]);
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
    Terms t(2 * p.res, 2 * p.res);
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
