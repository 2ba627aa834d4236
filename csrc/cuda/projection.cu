// CUDA keyed projection (see projection_params.h). One block per row: the row sits in two
// buffers (shared memory up to dim 4096, global scratch above) and each round is a sign flip,
// log2(dim) butterfly stages and a permuting copy into the other buffer.
#include <cmath>
#include <vector>

#include "common.cuh"
#include "kfaar/projection_params.h"

namespace kfaar {
namespace {

constexpr int64_t kSharedMaxDim = 4096;  // two rows of floats in 32 KiB

__device__ void wht_block(float* x, int64_t d) {
  for (int64_t h = 1; h < d; h *= 2) {
    for (int64_t t = threadIdx.x; t < d / 2; t += blockDim.x) {
      const int64_t i = (t / h) * 2 * h + t % h;
      const float a = x[i], b = x[i + h];
      x[i] = a + b;
      x[i + h] = a - b;
    }
    __syncthreads();
  }
}

// perms holds the forward permutations, or their inverses when `inverse`.
__global__ void rotate_kernel(const float* __restrict__ in, float* __restrict__ out, const float* __restrict__ signs,
                              const int32_t* __restrict__ perms, int64_t d, int64_t rounds, bool inverse,
                              float* __restrict__ scratch) {
  extern __shared__ float smem[];
  const int64_t row = blockIdx.x;
  float* a = scratch ? scratch + row * 2 * d : smem;
  float* b = a + d;
  const float c = rsqrtf(static_cast<float>(d));
  for (int64_t i = threadIdx.x; i < d; i += blockDim.x) a[i] = in[row * d + i];
  __syncthreads();
  for (int64_t step = 0; step < rounds; ++step) {
    const int64_t r = inverse ? rounds - 1 - step : step;
    const float* s = signs + r * d;
    const int32_t* p = perms + r * d;
    if (!inverse) {  // b = P · H · S · a
      for (int64_t i = threadIdx.x; i < d; i += blockDim.x) a[i] *= s[i];
      __syncthreads();
      wht_block(a, d);
      for (int64_t i = threadIdx.x; i < d; i += blockDim.x) b[i] = a[p[i]] * c;
    } else {  // b = S · H · Pᵀ · a
      for (int64_t i = threadIdx.x; i < d; i += blockDim.x) b[i] = a[p[i]];
      __syncthreads();
      wht_block(b, d);
      for (int64_t i = threadIdx.x; i < d; i += blockDim.x) b[i] *= s[i] * c;
    }
    __syncthreads();
    float* t = a;
    a = b;
    b = t;
  }
  for (int64_t i = threadIdx.x; i < d; i += blockDim.x) out[row * d + i] = a[i];
}

struct Centre {  // out = in - mean, row by row
  const float* in;
  const float* mean;
  float* out;
  int64_t d;
};

__global__ void centre_kernel(Centre c, int64_t n) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) c.out[i] = c.in[i] - c.mean[i % c.d];
}

struct StoreRow {
  float* out;
  int64_t d;
  __device__ void operator()(int64_t i, int64_t j, float v) const { out[i * d + j] = v; }
};

struct StoreRowPlusMean {
  float* out;
  const float* mean;
  int64_t d;
  __device__ void operator()(int64_t i, int64_t j, float v) const { out[i * d + j] = v + mean[j]; }
};

void rotate(const ProjectionParams& p, const float* in, float* out, const float* signs, const int32_t* perms) {
  const int64_t d = p.dim;
  const bool shared = d <= kSharedMaxDim;
  cuda::DeviceBuffer<float> scratch(shared ? 0 : p.batch * 2 * d);
  const int threads = static_cast<int>(std::min<int64_t>(256, std::max<int64_t>(32, d / 2)));
  const size_t smem = shared ? sizeof(float) * 2 * d : 0;
  rotate_kernel<<<static_cast<unsigned>(p.batch), threads, smem>>>(in, out, signs, perms, d, p.rounds, p.inverse,
                                                                     scratch.get());
  cuda::check_launch("rotate_kernel");
}

}  // namespace

void projection_cuda(const ProjectionParams& p) {
  const int64_t n = p.batch, d = p.dim;
  std::vector<int32_t> perms(p.perms, p.perms + p.rounds * d);
  if (p.inverse)
    for (int64_t r = 0; r < p.rounds; ++r)
      for (int64_t i = 0; i < d; ++i) perms[r * d + p.perms[r * d + i]] = static_cast<int32_t>(i);
  cuda::DeviceBuffer<float> in(p.in, n * d), out(n * d), signs(p.signs, p.rounds * d);
  cuda::DeviceBuffer<int32_t> dperms(perms.data(), p.rounds * d);
  if (!p.mean) {
    rotate(p, in.get(), out.get(), signs.get(), dperms.get());
  } else {
    cuda::DeviceBuffer<float> mean(p.mean, d), pre(p.pre, d * d), post(p.post, d * d), work(n * d);
    const int64_t total = n * d;
    centre_kernel<<<static_cast<unsigned>((total + 255) / 256), 256>>>(Centre{in.get(), mean.get(), work.get(), d},
                                                                       total);
    cuda::check_launch("centre_kernel");
    cuda::gemm_nt(work.get(), pre.get(), n, d, d, StoreRow{in.get(), d});
    rotate(p, in.get(), work.get(), signs.get(), dperms.get());
    cuda::gemm_nt(work.get(), post.get(), n, d, d, StoreRowPlusMean{out.get(), mean.get(), d});
  }
  out.copy_to_host(p.out);
}

}  // namespace kfaar
