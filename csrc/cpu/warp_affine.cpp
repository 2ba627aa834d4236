// C++ affine warp with OpenCV 4.x's arithmetic (warp_fixed.h): the crops kfaar aligns,
// recovers and searches, and the faces it pastes back, are then the same bytes whatever
// OpenCV is installed (5.0's warpAffine rounds otherwise) and with none.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#if defined(__SSE4_1__)
#include <smmintrin.h>
#endif

#include "threads.h"
#include "warp_fixed.h"
#include "kfaar/warp_affine_params.h"

namespace kfaar {
namespace warp {

Tables::Tables() {
  constexpr int T = kInterTab;
  float cubic1d[T][4], linear1d[T][2];
  const float scale = 1.f / T, A = -0.75f;  // initInterTab1D, interpolateCubic / interpolateLinear
  for (int i = 0; i < T; ++i) {
    const float x = i * scale;
    float* c = cubic1d[i];
    c[0] = ((A * (x + 1) - 5 * A) * (x + 1) + 8 * A) * (x + 1) - 4 * A;
    c[1] = ((A + 2) * x - (A + 3)) * x * x + 1;
    c[2] = ((A + 2) * (1 - x) - (A + 3)) * (1 - x) * (1 - x) + 1;
    c[3] = 1.f - c[0] - c[1] - c[2];
    linear1d[i][0] = 1.f - x;
    linear1d[i][1] = x;
  }
  for (int i = 0; i < T; ++i)
    for (int j = 0; j < T; ++j) {
      int16_t* it = cubic[i * T + j];
      int isum = 0;
      for (int k1 = 0; k1 < 4; ++k1)
        for (int k2 = 0; k2 < 4; ++k2) {
          const float v = cubic1d[i][k1] * cubic1d[j][k2];
          const float r = std::nearbyint(v * (1 << kCoefBits));  // saturate_cast<short>(float)
          it[k1 * 4 + k2] = static_cast<int16_t>(r < -32768.f ? -32768.f : (r > 32767.f ? 32767.f : r));
          isum += it[k1 * 4 + k2];
        }
      if (isum != (1 << kCoefBits)) {  // OpenCV's correction among the central taps
        const int diff = isum - (1 << kCoefBits);
        int mk1 = 2, mk2 = 2, Mk1 = 2, Mk2 = 2;
        for (int k1 = 2; k1 < 4; ++k1)
          for (int k2 = 2; k2 < 4; ++k2) {
            if (it[k1 * 4 + k2] < it[mk1 * 4 + mk2])
              mk1 = k1, mk2 = k2;
            else if (it[k1 * 4 + k2] > it[Mk1 * 4 + Mk2])
              Mk1 = k1, Mk2 = k2;
          }
        if (diff < 0)
          it[Mk1 * 4 + Mk2] = static_cast<int16_t>(it[Mk1 * 4 + Mk2] - diff);
        else
          it[mk1 * 4 + mk2] = static_cast<int16_t>(it[mk1 * 4 + mk2] - diff);
      }
      for (int k1 = 0; k1 < 2; ++k1)
        for (int k2 = 0; k2 < 2; ++k2) linear[i * T + j][k1 * 2 + k2] = linear1d[i][k1] * linear1d[j][k2];
    }
}

const Tables& tables() {
  static const Tables t;
  return t;
}

}  // namespace warp

namespace {

using warp::clamp;

// Where tap coordinate v of an axis of n pixels reads: clamped (replicate), or -1 outside (constant).
inline int64_t edge(int64_t v, int64_t n, bool replicate) {
  if (v >= 0 && v < n) return v;
  return replicate ? clamp(v, n - 1) : -1;
}

// Channel c of src's pixel (x, y), rows of `row` values and pixels of `cn`; 0 where edge() put
// the tap outside (-1).
template <class T>
inline T value_at(const T* src, int64_t row, int64_t cn, int64_t y, int64_t x, int64_t c) {
  return y < 0 || x < 0 ? T(0) : src[y * row + x * cn + c];
}

// A bicubic sum of 15-bit weights, rounded back to the pixel scale and saturated to [0, 255]
// (the cubic overshoots at edges).
inline uint8_t cubic_u8(int32_t sum) {
  const int32_t v = (sum + (1 << (warp::kCoefBits - 1))) >> warp::kCoefBits;
  return static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

// uint8, bilinear. A pixel whose four taps lie inside src reads them directly; the others are
// clamped to src's edge (replicate) or read 0 where they fall outside it (constant).
template <int kChannels>
void linear_u8_row(const WarpAffineParams& p, const warp::Terms& t, int64_t y) {
  const int64_t cn = kChannels > 0 ? kChannels : p.channels;
  const int64_t w = p.width, h = p.height, row = w * cn;
  const uint8_t* src = static_cast<const uint8_t*>(p.src);
  uint8_t* out = static_cast<uint8_t*>(p.out) + y * p.out_width * cn;
  for (int64_t x = 0; x < p.out_width; ++x, out += cn) {
    const warp::Tap k = warp::tap(t, x, y);
    if (k.ix >= 0 && k.iy >= 0 && k.ix + 1 < w && k.iy + 1 < h) {
      const uint8_t* r0 = src + k.iy * row + k.ix * cn;
      const uint8_t* r1 = r0 + row;
#if defined(__SSE4_1__)
      // RGB: the four taps' three channels at once, as four int32 lanes (the fourth lane reads
      // the next byte, unused: not past the photo's last pixel). The same integers as below.
      if (kChannels == 3 && !(k.iy + 2 == h && k.ix + 2 == w)) {
        auto taps = [](const uint8_t* q) {
          int32_t v;
          std::memcpy(&v, q, 4);
          return _mm_cvtepu8_epi32(_mm_cvtsi32_si128(v));
        };
        __m128i sum = _mm_add_epi32(_mm_mullo_epi32(taps(r0), _mm_set1_epi32(k.w00)),
                                    _mm_mullo_epi32(taps(r0 + 3), _mm_set1_epi32(k.w01)));
        sum = _mm_add_epi32(sum, _mm_add_epi32(_mm_mullo_epi32(taps(r1), _mm_set1_epi32(k.w10)),
                                               _mm_mullo_epi32(taps(r1 + 3), _mm_set1_epi32(k.w11))));
        sum = _mm_srai_epi32(_mm_add_epi32(sum, _mm_set1_epi32(1 << (warp::kCoefBits - 1))), warp::kCoefBits);
        const int32_t packed = _mm_cvtsi128_si32(_mm_packus_epi16(_mm_packs_epi32(sum, sum), sum));
        std::memcpy(out, &packed, 3);
        continue;
      }
#endif
      for (int64_t c = 0; c < cn; ++c)
        out[c] = static_cast<uint8_t>(warp::blend(k, r0[c], r0[c + cn], r1[c], r1[c + cn]));
      continue;
    }
    const int64_t x0 = edge(k.ix, w, p.replicate), x1 = edge(k.ix + 1, w, p.replicate);
    const int64_t y0 = edge(k.iy, h, p.replicate), y1 = edge(k.iy + 1, h, p.replicate);
    for (int64_t c = 0; c < cn; ++c)
      out[c] = static_cast<uint8_t>(warp::blend(k, value_at(src, row, cn, y0, x0, c), value_at(src, row, cn, y0, x1, c),
                                                value_at(src, row, cn, y1, x0, c), value_at(src, row, cn, y1, x1, c)));
  }
}

// uint8, bicubic: the 4 x 4 taps from (ix - 1, iy - 1), OpenCV's integer weights (cubic_u8).
void cubic_u8_row(const WarpAffineParams& p, const warp::Terms& t, int64_t y) {
  const int64_t cn = p.channels, w = p.width, h = p.height, row = w * cn;
  const uint8_t* src = static_cast<const uint8_t*>(p.src);
  uint8_t* out = static_cast<uint8_t*>(p.out) + y * p.out_width * cn;
  const auto& tab = warp::tables().cubic;
  for (int64_t x = 0; x < p.out_width; ++x, out += cn) {
    const warp::Source at = warp::source(t, x, y);
    const int16_t* wt = tab[at.index()];
    const int64_t ix = at.ix - 1, iy = at.iy - 1;
    if (ix >= 0 && iy >= 0 && ix + 3 < w && iy + 3 < h) {  // every tap inside: no edge to look at
      const uint8_t* r = src + iy * row + ix * cn;
      for (int64_t c = 0; c < cn; ++c) {
        int32_t sum = 0;
        for (int i = 0; i < 4; ++i) {
          const uint8_t* q = r + i * row + c;
          sum += wt[i * 4] * q[0] + wt[i * 4 + 1] * q[cn] + wt[i * 4 + 2] * q[2 * cn] + wt[i * 4 + 3] * q[3 * cn];
        }
        out[c] = cubic_u8(sum);
      }
      continue;
    }
    int64_t xs[4], ys[4];
    for (int i = 0; i < 4; ++i) {
      xs[i] = edge(ix + i, w, p.replicate);
      ys[i] = edge(iy + i, h, p.replicate);
    }
    for (int64_t c = 0; c < cn; ++c) {
      int32_t sum = 0;
      for (int i = 0; i < 4; ++i) {
        if (ys[i] < 0) continue;
        const uint8_t* r = src + ys[i] * row + c;
        for (int j = 0; j < 4; ++j)
          if (xs[j] >= 0) sum += wt[i * 4 + j] * r[xs[j] * cn];
      }
      out[c] = cubic_u8(sum);
    }
  }
}

// float32, bilinear: OpenCV's float weights, the four products summed in its scalar order.
void linear_f32_row(const WarpAffineParams& p, const warp::Terms& t, int64_t y) {
  const int64_t cn = p.channels, w = p.width, h = p.height, row = w * cn;
  const float* src = static_cast<const float*>(p.src);
  float* out = static_cast<float*>(p.out) + y * p.out_width * cn;
  const auto& tab = warp::tables().linear;
  for (int64_t x = 0; x < p.out_width; ++x, out += cn) {
    const warp::Source at = warp::source(t, x, y);
    const float* wt = tab[at.index()];
    const int64_t ix = at.ix, iy = at.iy;
    if (ix >= 0 && iy >= 0 && ix + 1 < w && iy + 1 < h) {
      const float* r0 = src + iy * row + ix * cn;
      const float* r1 = r0 + row;
      for (int64_t c = 0; c < cn; ++c) out[c] = r0[c] * wt[0] + r0[c + cn] * wt[1] + r1[c] * wt[2] + r1[c + cn] * wt[3];
      continue;
    }
    const int64_t x0 = edge(ix, w, p.replicate), x1 = edge(ix + 1, w, p.replicate);
    const int64_t y0 = edge(iy, h, p.replicate), y1 = edge(iy + 1, h, p.replicate);
    for (int64_t c = 0; c < cn; ++c)
      out[c] = value_at(src, row, cn, y0, x0, c) * wt[0] + value_at(src, row, cn, y0, x1, c) * wt[1] +
               value_at(src, row, cn, y1, x0, c) * wt[2] + value_at(src, row, cn, y1, x1, c) * wt[3];
  }
}

template <class Row>
void rows(const WarpAffineParams& p, Row&& row) {
  warp::Terms t(p.out_width, p.out_height);
  t.set(p.matrix, p.inverse);
  // ~10 ns a pixel: below ~64 K output pixels (a 256-px crop) one thread
  const int threads = cpu::threads_for(p.out_height * p.out_width, 1 << 16);
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
  for (int64_t y = 0; y < p.out_height; ++y) row(p, t, y);
}

}  // namespace

void warp_affine_cpu(const WarpAffineParams& p) {
  if (p.is_float)
    rows(p, linear_f32_row);
  else if (p.cubic)
    rows(p, cubic_u8_row);
  else if (p.channels == 3)
    rows(p, linear_u8_row<3>);
  else if (p.channels == 1)
    rows(p, linear_u8_row<1>);
  else
    rows(p, linear_u8_row<0>);
}

}  // namespace kfaar
