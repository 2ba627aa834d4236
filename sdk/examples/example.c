/* kfaar C SDK example: runs the four kernels on small fixed inputs and prints every array as
 *   <name> <count> <values...>
 * so a test can recompute them with the Python reference. Build against an installed kfaar:
 *   cc example.c -I"$INC" -L"$LIB" -Wl,-rpath,"$LIB" -lkfaar_sdk -lm -o example
 * where python -c "import kfaar.ops as o; print(o.sdk_paths())" gives INC and LIB.
 *
 * The projection parameters here come from a toy generator, NOT from a key: real ones are
 * derived from the user's key as described in kfaar.h (in Python:
 * ProjectionParams.from_key(key).signs / .perms). */
#include <kfaar/kfaar.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

enum { DIM = 16, ROUNDS = 4, BATCH = 3, IN = 8, HID = 16, STYLES = 3, SDIM = 4, MBATCH = 2, PROBES = 2, TEMPLATES = 3 };

static uint32_t rng = 2463534242u; /* xorshift32: reproducible demo values only */
static uint32_t next_u32(void) {
  rng ^= rng << 13;
  rng ^= rng >> 17;
  rng ^= rng << 5;
  return rng;
}
static float next_float(void) { return (float)(next_u32() % 2001u) / 1000.0f - 1.0f; } /* [-1, 1], 3 decimals */
static void fill(float* a, int n, float scale) {
  for (int i = 0; i < n; ++i) a[i] = next_float() * scale;
}
static void print_floats(const char* name, const float* a, int n) {
  printf("%s %d", name, n);
  for (int i = 0; i < n; ++i) printf(" %.9g", a[i]);
  printf("\n");
}
static int check(int status, const char* what) {
  if (status != KFAAR_OK) {
    fprintf(stderr, "%s failed: %s\n", what, kfaar_status_string(status));
    exit(1);
  }
  return status;
}

int main(void) {
  if (!kfaar_cpu_supported()) { /* a CPU without the instructions the library was built for */
    printf("cpu_unsupported %d %s\n", kfaar_projection_forward(NULL, NULL, NULL, 0),
           kfaar_status_string(KFAAR_ERROR_UNSUPPORTED_CPU));
    return 3;
  }
  /* keyed projection and its inverse */
  float signs[ROUNDS * DIM], z[BATCH * DIM], zp[BATCH * DIM], back[BATCH * DIM];
  int32_t perms[ROUNDS * DIM];
  for (int r = 0; r < ROUNDS; ++r) {
    for (int i = 0; i < DIM; ++i) {
      signs[r * DIM + i] = (next_u32() & 1u) ? -1.0f : 1.0f;
      perms[r * DIM + i] = i;
    }
    for (int i = DIM - 1; i > 0; --i) { /* Fisher-Yates (modulo bias is fine for a demo) */
      int j = (int)(next_u32() % (uint32_t)(i + 1));
      int32_t t = perms[r * DIM + i];
      perms[r * DIM + i] = perms[r * DIM + j];
      perms[r * DIM + j] = t;
    }
  }
  fill(z, BATCH * DIM, 1.0f);
  kfaar_projection proj = {DIM, ROUNDS, signs, perms, NULL, NULL, NULL};
  check(kfaar_projection_forward(&proj, z, zp, BATCH), "kfaar_projection_forward");
  check(kfaar_projection_inverse(&proj, zp, back, BATCH), "kfaar_projection_inverse");
  print_floats("signs", signs, ROUNDS * DIM);
  printf("perms %d", ROUNDS * DIM);
  for (int i = 0; i < ROUNDS * DIM; ++i) printf(" %d", perms[i]);
  printf("\n");
  print_floats("z", z, BATCH * DIM);
  print_floats("projected", zp, BATCH * DIM);
  print_floats("recovered", back, BATCH * DIM);

  /* fused mapping: IN -> HID -> HID, then STYLES styles of SDIM, mixed toward a second code */
  float w0[HID * IN], b0[HID], w1[HID * HID], b1[HID], sw[STYLES * SDIM * HID], sb[STYLES * SDIM];
  float x[MBATCH * IN], mix[MBATCH * STYLES * SDIM], alpha[STYLES] = {1.0f, 0.5f, 0.0f}, wplus[MBATCH * STYLES * SDIM];
  fill(w0, HID * IN, 0.35f);
  fill(b0, HID, 0.1f);
  fill(w1, HID * HID, 0.25f);
  fill(b1, HID, 0.1f);
  fill(sw, STYLES * SDIM * HID, 0.25f);
  fill(sb, STYLES * SDIM, 0.1f);
  fill(x, MBATCH * IN, 1.0f);
  fill(mix, MBATCH * STYLES * SDIM, 1.0f);
  const int64_t dims[3] = {IN, HID, HID};
  const float* weights[2] = {w0, w1};
  const float* biases[2] = {b0, b1};
  kfaar_mapping map = {2, dims, weights, biases, STYLES, SDIM, sw, sb, 0.2f, sqrtf(2.0f)};
  check(kfaar_mapping_run(&map, x, MBATCH, mix, alpha, wplus), "kfaar_mapping_run");
  print_floats("w0", w0, HID * IN);
  print_floats("b0", b0, HID);
  print_floats("w1", w1, HID * HID);
  print_floats("b1", b1, HID);
  print_floats("style_weight", sw, STYLES * SDIM * HID);
  print_floats("style_bias", sb, STYLES * SDIM);
  print_floats("x", x, MBATCH * IN);
  print_floats("mix", mix, MBATCH * STYLES * SDIM);
  print_floats("alpha", alpha, STYLES);
  print_floats("wplus", wplus, MBATCH * STYLES * SDIM);

  /* template scoring */
  float probes[PROBES * DIM], templates[TEMPLATES * DIM], scores[PROBES * TEMPLATES];
  fill(probes, PROBES * DIM, 1.0f);
  fill(templates, TEMPLATES * DIM, 1.0f);
  check(kfaar_score(probes, PROBES, templates, TEMPLATES, DIM, scores), "kfaar_score");
  print_floats("probes", probes, PROBES * DIM);
  print_floats("templates", templates, TEMPLATES * DIM);
  print_floats("scores", scores, PROBES * TEMPLATES);

  /* cell sums of warped crops: a 9 x 11 photo, three candidate alignments (a turn, a scale, a
   * whole-pixel shift), 3 of the 16 cells of a 8 x 8 crop */
  enum { PH = 9, PW = 11, CANDIDATES = 3, RES = 4, CELLS = 3 };
  uint8_t photo[PH * PW * 3];
  for (int i = 0; i < PH * PW * 3; ++i) photo[i] = (uint8_t)(next_u32() % 256u);
  const double matrices[CANDIDATES * 6] = {0.9, 0.2, -0.5, -0.2, 0.9, 1.25,  /* photo -> crop */
                                           0.75, 0.0, 0.3, 0.0, 0.75, -0.6,
                                           1.0, 0.0, -2.0, 0.0, 1.0, 1.0};
  const int32_t cells[CELLS] = {0, 5, 15};
  uint16_t sums[CANDIDATES * CELLS * 3];
  check(kfaar_warp_cell_sums(photo, PH, PW, matrices, CANDIDATES, cells, CELLS, RES, sums), "kfaar_warp_cell_sums");
  printf("photo %d", PH * PW * 3);
  for (int i = 0; i < PH * PW * 3; ++i) printf(" %d", photo[i]);
  printf("\nmatrices %d", CANDIDATES * 6);
  for (int i = 0; i < CANDIDATES * 6; ++i) printf(" %.17g", matrices[i]);
  printf("\ncells %d", CELLS);
  for (int i = 0; i < CELLS; ++i) printf(" %d", cells[i]);
  printf("\ncell_sums %d", CANDIDATES * CELLS * 3);
  for (int i = 0; i < CANDIDATES * CELLS * 3; ++i) printf(" %d", sums[i]);
  printf("\n");

  /* the affine warp: the same photo onto a 6 x 5 output, turned and scaled, black outside */
  enum { WW = 6, WH = 5 };
  const double warp[6] = {0.8, 0.35, -1.5, -0.35, 0.8, 2.25};
  uint8_t warped[WH * WW * 3];
  check(kfaar_warp_affine(photo, PH, PW, 3, warp, WW, WH, 0, warped), "kfaar_warp_affine");
  /* ... bicubic through the inverse map, edge replicated (how a face is pasted back), and a
   * float mask the same way, bilinear */
  uint8_t pasted[WH * WW * 3];
  float mask[PH * PW], mask_warped[WH * WW];
  for (int i = 0; i < PH * PW; ++i) mask[i] = (float)(next_u32() % 1000u) / 999.0f;
  check(kfaar_warp_affine(photo, PH, PW, 3, warp, WW, WH, KFAAR_WARP_CUBIC | KFAAR_WARP_INVERSE | KFAAR_WARP_REPLICATE,
                          pasted), "kfaar_warp_affine (cubic)");
  check(kfaar_warp_affine_f32(mask, PH, PW, 1, warp, WW, WH, KFAAR_WARP_INVERSE, mask_warped), "kfaar_warp_affine_f32");
  printf("warp_matrix 6");
  for (int i = 0; i < 6; ++i) printf(" %.17g", warp[i]);
  printf("\nwarped %d", WH * WW * 3);
  for (int i = 0; i < WH * WW * 3; ++i) printf(" %d", warped[i]);
  printf("\npasted %d", WH * WW * 3);
  for (int i = 0; i < WH * WW * 3; ++i) printf(" %d", pasted[i]);
  printf("\n");
  print_floats("mask", mask, PH * PW);
  print_floats("mask_warped", mask_warped, WH * WW);

  /* a bad call is a status code, never a crash */
  const int bad = kfaar_projection_forward(&proj, z, zp, 0);
  printf("bad_batch_status %d %s\n", bad, kfaar_status_string(bad));
  return 0;
}
