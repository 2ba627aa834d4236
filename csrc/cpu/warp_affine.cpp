// C++ affine warp, OpenCV 4.x's INTER_LINEAR arithmetic (warp_fixed.h): the crops kfaar
// aligns, recovers and searches are then the same bytes whatever OpenCV is installed (5.0's
// warpAffine rounds otherwise) and with none.
#include <cstdint>

#include "threads.h"
#include "warp_fixed.h"
#include "kfaar/warp_affine_params.h"

namespace kfaar {
namespace {

using warp::clamp;

// Output row y. A pixel whose four taps lie inside src reads them directly; the others are
// clamped to src's edge (replicate) or read 0 where they fall outside it (constant).
template <int kChannels>
void warp_row(const WarpAffineParams& p, const warp::Terms& t, int64_t y) {
  const int64_t cn = kChannels > 0 ? kChannels : p.channels;
  const int64_t w = p.width, h = p.height, row = w * cn;
  uint8_t* out = p.out + y * p.out_width * cn;
  for (int64_t x = 0; x < p.out_width; ++x, out += cn) {
    const warp::Tap k = warp::tap(t, x, y);
    if (k.ix >= 0 && k.iy >= 0 && k.ix + 1 < w && k.iy + 1 < h) {
      const uint8_t* r0 = p.src + k.iy * row + k.ix * cn;
      const uint8_t* r1 = r0 + row;
      for (int64_t c = 0; c < cn; ++c) out[c] = static_cast<uint8_t>(warp::blend(k, r0[c], r0[c + cn], r1[c], r1[c + cn]));
      continue;
    }
    if (p.replicate) {
      const uint8_t* r0 = p.src + clamp(k.iy, h - 1) * row;
      const uint8_t* r1 = p.src + clamp(k.iy + 1, h - 1) * row;
      const int64_t xa = clamp(k.ix, w - 1) * cn, xb = clamp(k.ix + 1, w - 1) * cn;
      for (int64_t c = 0; c < cn; ++c)
        out[c] = static_cast<uint8_t>(warp::blend(k, r0[xa + c], r0[xb + c], r1[xa + c], r1[xb + c]));
      continue;
    }
    const bool x0 = k.ix >= 0 && k.ix < w, x1 = k.ix + 1 >= 0 && k.ix + 1 < w;
    const bool y0 = k.iy >= 0 && k.iy < h, y1 = k.iy + 1 >= 0 && k.iy + 1 < h;
    const uint8_t* r0 = y0 ? p.src + k.iy * row : nullptr;
    const uint8_t* r1 = y1 ? p.src + (k.iy + 1) * row : nullptr;
    for (int64_t c = 0; c < cn; ++c) {
      const int32_t v00 = y0 && x0 ? r0[k.ix * cn + c] : 0, v01 = y0 && x1 ? r0[(k.ix + 1) * cn + c] : 0;
      const int32_t v10 = y1 && x0 ? r1[k.ix * cn + c] : 0, v11 = y1 && x1 ? r1[(k.ix + 1) * cn + c] : 0;
      out[c] = static_cast<uint8_t>(warp::blend(k, v00, v01, v10, v11));
    }
  }
}

template <int kChannels>
void warp_rows(const WarpAffineParams& p, const warp::Terms& t) {
  // ~10 ns a pixel: below ~64 K output pixels (a 256-px crop) one thread
  const int threads = cpu::threads_for(p.out_height * p.out_width, 1 << 16);
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
  for (int64_t y = 0; y < p.out_height; ++y) warp_row<kChannels>(p, t, y);
}

}  // namespace

void warp_affine_cpu(const WarpAffineParams& p) {
  warp::Terms t(p.out_width, p.out_height);
  t.set(p.matrix);
  if (p.channels == 3)
    warp_rows<3>(p, t);
  else if (p.channels == 1)
    warp_rows<1>(p, t);
  else
    warp_rows<0>(p, t);
}

}  // namespace kfaar
