// Cell sums of warped crops: the code carrier's pilot read, for many candidate alignments of
// one photo at once (recovery's re-alignment search).
//
// Candidate c is the crop cv2.warpAffine(photo, matrices[c], (2 * res, 2 * res), INTER_LINEAR,
// BORDER_REPLICATE) would give: crop pixel (x, y) is the photo bilinearly sampled at
// inverse(matrices[c]) applied to (x, y), its taps clamped to the photo (replicated border),
// rounded to the nearest uint8. Cell k (row-major index into the res x res grid) is the 2 x 2
// block of crop pixels at rows 2 * (k / res) + {0, 1}, columns 2 * (k % res) + {0, 1};
//   out[c, i, ch] = the sum of that block's four pixels of channel ch, for k = cells[i].
// Only those pixels are sampled: no crop is materialised.
#pragma once

#include <cstdint>

namespace kfaar {

struct WarpCellsParams {
  const uint8_t* photo = nullptr;    // (height, width, 3) RGB, row-major
  int64_t height = 0;                // >= 1
  int64_t width = 0;                 // >= 1
  const double* matrices = nullptr;  // (n_candidates, 2, 3): photo -> crop, as cv2.warpAffine takes them
  int64_t n_candidates = 0;          // >= 1
  const int32_t* cells = nullptr;    // (n_cells,), each in [0, res * res)
  int64_t n_cells = 0;               // >= 1
  int64_t res = 0;                   // >= 1: the crop is 2 * res pixels square
  uint16_t* out = nullptr;           // (n_candidates, n_cells, 3)
};

void warp_cells_cpu(const WarpCellsParams& p);

}  // namespace kfaar
