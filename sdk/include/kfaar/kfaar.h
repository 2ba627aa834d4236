/* kfaar C SDK: the keyed projection, fused latent mapping and template scoring kernels on
 * host float arrays, the affine warps kfaar aligns, recovers and pastes back faces with, and
 * the cell sums of warped crops that recovery's re-alignment search scores, for apps and
 * identity SDKs that link the core without Python.
 *
 * Conventions
 * - Arrays are dense, row-major float32 (int32 for permutations and cell indices; the cell
 *   sums take a uint8 photo and float64 matrices and write uint16, the warps read and write
 *   uint8, or float32 for kfaar_warp_affine_f32); every size is explicit.
 * - Every function returns a kfaar_status; KFAAR_OK is 0. No C++ exception crosses this ABI;
 *   kfaar_status_string() names a status. Outputs are written only when KFAAR_OK is returned.
 * - Functions are thread-safe: they keep no state between calls (threads inside a call come
 *   from OpenMP).
 *
 * Projection parameters are derived from the user's key, and this library does no key
 * handling. kfaar (Python) derives them as follows:
 *   subkey = HKDF-SHA256(key, salt = none, info = "kfaar/v1/projection", 32 bytes)
 *   stream = ChaCha20 keystream of subkey (RFC 7539 block function, 32-bit block counter 0,
 *            96-bit nonce 0), read front to back; for each round r = 0..rounds-1:
 *     signs: ceil(dim/8) bytes; bit i of byte i/8 (least significant bit first) set -> -1.0f
 *     perms: p = 0..dim-1; for i = dim-1 down to 1: draw little-endian uint32 words w until
 *            w < 2^32 - (2^32 mod (i+1)), then swap p[i] and p[w mod (i+1)]
 * kfaar.ops.ProjectionParams.from_key(key).signs / .perms gives the arrays; a native port must
 * reproduce tests/vectors/projection_v1.json bit for bit.
 */
#ifndef KFAAR_KFAAR_H
#define KFAAR_KFAAR_H

#include <stdint.h>

#if defined(_WIN32)
#define KFAAR_API __declspec(dllexport)
#else
#define KFAAR_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define KFAAR_SDK_ABI_VERSION 4 /* 2: kfaar_warp_cell_sums added; 3: KFAAR_ERROR_UNSUPPORTED_CPU and
                                    kfaar_cpu_supported, where a CPU without the kernels' instructions
                                    had crashed the process (SIGILL); 4: kfaar_warp_affine and
                                    kfaar_warp_affine_f32 added */

typedef enum kfaar_status {
  KFAAR_OK = 0,
  KFAAR_ERROR_NULL_POINTER = 1,  /* a required pointer was NULL */
  KFAAR_ERROR_INVALID_SIZE = 2,  /* a size was < 1, or dim not a power of two, or sizes disagree */
  KFAAR_ERROR_INVALID_PARAMS = 3,  /* signs not +-1, perms not a permutation, too many layers, a cell off the grid */
  KFAAR_ERROR_NOT_FINITE = 4,    /* an input held NaN or inf */
  KFAAR_ERROR_OUT_OF_MEMORY = 5,
  KFAAR_ERROR_INTERNAL = 6,
  KFAAR_ERROR_UNSUPPORTED_CPU = 7 /* this CPU lacks instructions the kernels were built for (e.g. AVX2) */
} kfaar_status;

/* A static, human-readable description of `status` (never NULL). */
KFAAR_API const char* kfaar_status_string(int status);

/* KFAAR_SDK_ABI_VERSION of the linked library. */
KFAAR_API int kfaar_abi_version(void);

/* 1 when this CPU runs the kernels as built, 0 when it lacks instructions they use (the library
 * is built for x86-64-v3: AVX2, FMA, BMI2...); every kernel function then returns
 * KFAAR_ERROR_UNSUPPORTED_CPU instead of running. Rebuild with -DKFAAR_CPU_FLAGS=-O3 for such a CPU. */
KFAAR_API int kfaar_cpu_supported(void);

/* Keyed projection: z' = mean + color . Q . whiten . (z - mean), Q = prod_r P_r H S_r.
 * Without whitening (mean == NULL) z' = Q z; whiten and color are then ignored. */
typedef struct kfaar_projection {
  int64_t dim;           /* power of two, 2..65536 (kfaar uses 128) */
  int64_t rounds;        /* >= 1 (kfaar uses 4) */
  const float* signs;    /* (rounds, dim), each +1.0f or -1.0f */
  const int32_t* perms;  /* (rounds, dim), each row a permutation: after round r, y[i] = x[perms[r][i]] */
  const float* mean;     /* (dim,) or NULL */
  const float* whiten;   /* (dim, dim) C^{-1/2}, with mean */
  const float* color;    /* (dim, dim) C^{1/2} = whiten^{-1}, with mean */
} kfaar_projection;

/* in, out: (batch, dim); out may equal in. */
KFAAR_API int kfaar_projection_forward(const kfaar_projection* params, const float* in, float* out, int64_t batch);
/* The exact inverse of kfaar_projection_forward. */
KFAAR_API int kfaar_projection_inverse(const kfaar_projection* params, const float* in, float* out, int64_t batch);

#define KFAAR_MAX_MAPPING_LAYERS 16

/* Fused latent mapping: h = gain * leaky_relu(W_l h + b_l, slope) per layer, then one affine per
 * style producing W+; out[s] = alpha[s] * mix[s] + (1 - alpha[s]) * w[s] when mix is given. */
typedef struct kfaar_mapping {
  int64_t layers;               /* 0..KFAAR_MAX_MAPPING_LAYERS */
  const int64_t* dims;          /* (layers + 1,): dims[0] input width, dims[l+1] width after layer l */
  const float* const* weights;  /* layers pointers, layer l: (dims[l+1], dims[l]) */
  const float* const* biases;   /* layers pointers, layer l: (dims[l+1],) */
  int64_t n_styles;             /* >= 1 */
  int64_t style_dim;            /* >= 1 */
  const float* style_weight;    /* (n_styles, style_dim, dims[layers]) */
  const float* style_bias;      /* (n_styles, style_dim) */
  float slope;                  /* leaky ReLU slope, e.g. 0.2f */
  float gain;                   /* e.g. sqrtf(2) */
} kfaar_mapping;

/* in: (batch, dims[0]); mix: (batch, n_styles, style_dim) or NULL; alpha: (n_styles,) with mix;
 * out: (batch, n_styles, style_dim). */
KFAAR_API int kfaar_mapping_run(const kfaar_mapping* params, const float* in, int64_t batch, const float* mix,
                                const float* alpha, float* out);

/* Cosine similarity: probes (n_probes, dim), templates (n_templates, dim) -> out (n_probes, n_templates). */
KFAAR_API int kfaar_score(const float* probes, int64_t n_probes, const float* templates, int64_t n_templates,
                          int64_t dim, float* out);

/* Cell sums of warped crops, for many candidate alignments of one photo: candidate c is the
 * crop of 2*res x 2*res pixels that cv2.warpAffine(photo, matrices[c], INTER_LINEAR,
 * BORDER_REPLICATE) gives (the same fixed-point arithmetic, so the same uint8 pixels), and
 *   out[c][i][ch] = the sum of the 2 x 2 crop pixels of cell cells[i] in channel ch,
 * cell k being rows 2*(k / res) + {0, 1}, columns 2*(k % res) + {0, 1}.
 * photo: (height, width, 3) uint8 RGB; matrices: (n_candidates, 2, 3) photo -> crop; cells:
 * (n_cells,), each in [0, res * res) (else KFAAR_ERROR_INVALID_PARAMS); 1 <= res <= 16384;
 * out: (n_candidates, n_cells, 3). Only the cells' pixels are sampled. */
KFAAR_API int kfaar_warp_cell_sums(const uint8_t* photo, int64_t height, int64_t width, const double* matrices,
                                   int64_t n_candidates, const int32_t* cells, int64_t n_cells, int64_t res,
                                   uint16_t* out);

/* Affine warps, as kfaar aligns a face to its crop (bilinear, black outside), cuts recovery's
 * crops and search canvases (bilinear, edge replicated) and pastes a virtual face back (its
 * crop bicubic and its float mask bilinear, both through the inverse map): out is src warped
 * by the (2, 3) `matrix` onto out_width x out_height, what cv2.warpAffine(src, matrix,
 * (out_width, out_height), flags, border) gives under OpenCV 4.x (its fixed-point coordinates,
 * 1/1024 px rounded to 1/32 px, and its weight tables), whatever OpenCV a caller has.
 * flags: KFAAR_WARP_REPLICATE (the edge pixels continue; else 0 outside src), KFAAR_WARP_CUBIC
 * (bicubic, uint8 only; else bilinear), KFAAR_WARP_INVERSE (matrix maps out -> src, OpenCV's
 * WARP_INVERSE_MAP; else src -> out); other bits: KFAAR_ERROR_INVALID_PARAMS.
 * src: (height, width, channels), 1 <= channels <= 4; out: (out_height, out_width, channels);
 * sides at most 2^20 (else KFAAR_ERROR_INVALID_SIZE). uint8: OpenCV 4's bytes exactly; float32:
 * the four products summed in OpenCV's scalar order (its vectorised interior may differ in the
 * last bit). ABI version 4 on. */
#define KFAAR_WARP_REPLICATE 1
#define KFAAR_WARP_CUBIC 2
#define KFAAR_WARP_INVERSE 4
KFAAR_API int kfaar_warp_affine(const uint8_t* src, int64_t height, int64_t width, int64_t channels,
                                const double* matrix, int64_t out_width, int64_t out_height, int flags,
                                uint8_t* out);
KFAAR_API int kfaar_warp_affine_f32(const float* src, int64_t height, int64_t width, int64_t channels,
                                    const double* matrix, int64_t out_width, int64_t out_height, int flags,
                                    float* out);

#ifdef __cplusplus
}
#endif

#endif /* KFAAR_KFAAR_H */
