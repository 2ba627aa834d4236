// An affine warp of an image: cv2.warpAffine(src, matrix, (out_width, out_height), flags,
// BORDER_REPLICATE or BORDER_CONSTANT with 0) as OpenCV 4.x computes it: output pixel (x, y)
// is src sampled at inverse(matrix) applied to (x, y) (at matrix applied to it when `inverse`,
// cv2.WARP_INVERSE_MAP), the coordinates in 1/32-px steps, with OpenCV's weight tables
// (csrc/cpu/warp_fixed.h). uint8 images: bilinear or bicubic, 15-bit integer weights, rounded
// to the nearest uint8, bit for bit. float32 images: bilinear with float weights, the sum in
// OpenCV's scalar order (its vectorised interior may round the last bit otherwise). Outside
// src the taps are src's nearest edge pixel (replicate) or 0 (constant).
#pragma once

#include <cstdint>

namespace kfaar {

struct WarpAffineParams {
  const void* src = nullptr;       // (height, width, channels), row-major: uint8, or float32 when is_float
  int64_t height = 0;              // >= 1
  int64_t width = 0;               // >= 1
  int64_t channels = 0;            // 1 to 4
  bool is_float = false;           // src and out are float32 (bilinear only), else uint8
  const double* matrix = nullptr;  // (2, 3): src -> output, as cv2.warpAffine takes it (output -> src when inverse)
  bool inverse = false;            // matrix maps output -> src (cv2.WARP_INVERSE_MAP)
  bool cubic = false;              // bicubic (uint8 only), else bilinear
  int64_t out_height = 0;          // >= 1
  int64_t out_width = 0;           // >= 1
  bool replicate = true;           // the border: replicated, else constant 0
  void* out = nullptr;             // (out_height, out_width, channels), src's type
};

void warp_affine_cpu(const WarpAffineParams& p);

}  // namespace kfaar
