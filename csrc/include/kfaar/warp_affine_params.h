// An affine warp of a uint8 image: cv2.warpAffine(src, matrix, (out_width, out_height),
// INTER_LINEAR, BORDER_REPLICATE or BORDER_CONSTANT with 0) as OpenCV 4.x computes it, bit for
// bit: output pixel (x, y) is src bilinearly sampled at inverse(matrix) applied to (x, y), in
// 1/32-px steps with 15-bit weights, rounded to the nearest uint8 (csrc/cpu/warp_fixed.h).
// Outside src the taps are src's nearest edge pixel (replicate) or 0 (constant).
#pragma once

#include <cstdint>

namespace kfaar {

struct WarpAffineParams {
  const uint8_t* src = nullptr;    // (height, width, channels), row-major
  int64_t height = 0;              // >= 1
  int64_t width = 0;               // >= 1
  int64_t channels = 0;            // 1 to 4
  const double* matrix = nullptr;  // (2, 3): src -> output, as cv2.warpAffine takes it
  int64_t out_height = 0;          // >= 1
  int64_t out_width = 0;           // >= 1
  bool replicate = true;           // the border: replicated, else constant 0
  uint8_t* out = nullptr;          // (out_height, out_width, channels)
};

void warp_affine_cpu(const WarpAffineParams& p);

}  // namespace kfaar
