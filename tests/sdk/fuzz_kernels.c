/* Random sizes and values through every SDK kernel, for ASan/UBSan: every call must return a
 * status, never touch memory outside its arrays. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include "kfaar/kfaar.h"

static uint64_t s = 88172645463325252ull;
static uint32_t rnd(void) { s ^= s << 13; s ^= s >> 7; s ^= s << 17; return (uint32_t)s; }
static float rf(void) { return (float)(rnd() % 20001) / 10000.0f - 1.0f; }
static double rd(double a) { return ((double)(rnd() % 2000001) / 1000000.0 - 1.0) * a; }

int main(void) {
  int statuses[8] = {0};
  for (int it = 0; it < 3000; ++it) {
    /* projection */
    int64_t dim = (int64_t)1 << (1 + rnd() % 10), rounds = 1 + rnd() % 5, batch = 1 + rnd() % 40;
    float* signs = malloc(sizeof(float) * rounds * dim);
    int32_t* perms = malloc(sizeof(int32_t) * rounds * dim);
    float* z = malloc(sizeof(float) * batch * dim);
    float* zo = malloc(sizeof(float) * batch * dim);
    for (int64_t r = 0; r < rounds; ++r) {
      for (int64_t i = 0; i < dim; ++i) { signs[r * dim + i] = (rnd() & 1) ? 1.f : -1.f; perms[r * dim + i] = (int32_t)i; }
      for (int64_t i = dim - 1; i > 0; --i) { int64_t j = rnd() % (i + 1); int32_t t = perms[r * dim + i]; perms[r * dim + i] = perms[r * dim + j]; perms[r * dim + j] = t; }
    }
    if (rnd() % 10 == 0) perms[rnd() % (rounds * dim)] = (int32_t)(rnd() % (2 * dim)) - (int32_t)(dim / 2);
    for (int64_t i = 0; i < batch * dim; ++i) z[i] = rf();
    if (rnd() % 20 == 0) z[rnd() % (batch * dim)] = NAN;
    kfaar_projection p = {dim, rounds, signs, perms, NULL, NULL, NULL};
    statuses[kfaar_projection_forward(&p, z, zo, batch)]++;
    statuses[kfaar_projection_inverse(&p, z, zo, batch)]++;
    /* scoring */
    int64_t np_ = 1 + rnd() % 30, nt = 1 + rnd() % 300, d = 1 + rnd() % 200;
    float* pr = malloc(sizeof(float) * np_ * d), *tm = malloc(sizeof(float) * nt * d), *so = malloc(sizeof(float) * np_ * nt);
    for (int64_t i = 0; i < np_ * d; ++i) pr[i] = rf();
    for (int64_t i = 0; i < nt * d; ++i) tm[i] = (rnd() % 50 == 0) ? 0.f : rf();
    statuses[kfaar_score(pr, np_, tm, nt, d, so)]++;
    /* mapping */
    int64_t layers = rnd() % 5, dims[6], ns = 1 + rnd() % 6, sd = 1 + rnd() % 40, mb = 1 + rnd() % 20;
    for (int l = 0; l <= layers; ++l) dims[l] = 1 + rnd() % 70;
    float* ws[5]; float* bs[5];
    for (int l = 0; l < layers; ++l) {
      ws[l] = malloc(sizeof(float) * dims[l + 1] * dims[l]); bs[l] = malloc(sizeof(float) * dims[l + 1]);
      for (int64_t i = 0; i < dims[l + 1] * dims[l]; ++i) ws[l][i] = rf() * 0.3f;
      for (int64_t i = 0; i < dims[l + 1]; ++i) bs[l][i] = rf();
    }
    float* sw = malloc(sizeof(float) * ns * sd * dims[layers]), *sb = malloc(sizeof(float) * ns * sd);
    for (int64_t i = 0; i < ns * sd * dims[layers]; ++i) sw[i] = rf();
    for (int64_t i = 0; i < ns * sd; ++i) sb[i] = rf();
    float* x = malloc(sizeof(float) * mb * dims[0]), *mix = malloc(sizeof(float) * mb * ns * sd);
    float* alpha = malloc(sizeof(float) * ns), *wo = malloc(sizeof(float) * mb * ns * sd);
    for (int64_t i = 0; i < mb * dims[0]; ++i) x[i] = rf();
    for (int64_t i = 0; i < mb * ns * sd; ++i) mix[i] = rf();
    for (int64_t i = 0; i < ns; ++i) alpha[i] = (rf() + 1.f) / 2.f;
    kfaar_mapping m = {layers, dims, (const float* const*)ws, (const float* const*)bs, ns, sd, sw, sb, 0.2f, 1.41421356f};
    statuses[kfaar_mapping_run(&m, x, mb, (rnd() & 1) ? mix : NULL, alpha, wo)]++;
    /* warp cell sums */
    int64_t h = 1 + rnd() % 90, w = 1 + rnd() % 90, res = 1 + rnd() % 40, nc = 1 + rnd() % 12, ncell = 1 + rnd() % 60;
    uint8_t* photo = malloc((size_t)(h * w * 3));
    for (int64_t i = 0; i < h * w * 3; ++i) photo[i] = (uint8_t)rnd();
    double* mat = malloc(sizeof(double) * nc * 6);
    for (int64_t c = 0; c < nc; ++c) {
      double sc = 0.2 + (rnd() % 3000) / 1000.0, th = rd(3.2), big = (rnd() % 10 == 0) ? 1e6 : 100.0;
      mat[c * 6 + 0] = sc * cos(th); mat[c * 6 + 1] = -sc * sin(th); mat[c * 6 + 2] = rd(big);
      mat[c * 6 + 3] = sc * sin(th); mat[c * 6 + 4] = sc * cos(th); mat[c * 6 + 5] = rd(big);
      if (rnd() % 40 == 0) mat[c * 6 + rnd() % 6] = (rnd() & 1) ? 1e300 : 0.0;
    }
    int32_t* cells = malloc(sizeof(int32_t) * ncell);
    for (int64_t i = 0; i < ncell; ++i) cells[i] = (int32_t)(rnd() % (res * res + (rnd() % 30 == 0 ? 3 : 0)));
    uint16_t* cs = malloc(sizeof(uint16_t) * nc * ncell * 3);
    statuses[kfaar_warp_cell_sums(photo, h, w, mat, nc, cells, ncell, res, cs)]++;
    /* affine warp of the same photo (its first 1-3 channels' worth of bytes read as 1-4 channels) */
    int64_t cn = 1 + rnd() % 4, wh = 1 + rnd() % 70, ww = 1 + rnd() % 70, hh = (h * 3) / cn;
    if (hh < 1) { cn = 3; hh = h; }
    uint8_t* warped = malloc((size_t)(wh * ww * cn));
    int flags = (int)(rnd() % 4 == 0 ? rnd() % 16 : rnd() % 8);  /* 8 and up: a bad flag */
    statuses[kfaar_warp_affine(photo, hh, w, cn, mat, ww, wh, flags, warped)]++;
    free(warped);
    float* fsrc = malloc(sizeof(float) * (size_t)(h * w * 3)), *fout = malloc(sizeof(float) * (size_t)(wh * ww * cn));
    for (int64_t i = 0; i < h * w * 3; ++i) fsrc[i] = rf();
    statuses[kfaar_warp_affine_f32(fsrc, hh, w, cn, mat, ww, wh, flags, fout)]++;
    free(fsrc); free(fout);
    free(signs); free(perms); free(z); free(zo); free(pr); free(tm); free(so);
    for (int l = 0; l < layers; ++l) { free(ws[l]); free(bs[l]); }
    free(sw); free(sb); free(x); free(mix); free(alpha); free(wo); free(photo); free(mat); free(cells); free(cs);
  }
  for (int i = 0; i < 8; ++i) printf("status %d: %d\n", i, statuses[i]);
  return 0;
}
