// Helpers shared by the CUDA twins: error checks, an owning device buffer, and the tiled
// NT product Y = epilogue(X · Wᵀ) that the mapping, scoring and whitening all reduce to.
// The twins take host arrays (numpy in, numpy out): each call copies in, runs, copies out.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>

namespace kfaar::cuda {

inline void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) throw std::runtime_error(std::string("CUDA error in ") + what + ": " + cudaGetErrorString(err));
}

// Device memory owned for the length of one call.
template <class T>
class DeviceBuffer {
 public:
  explicit DeviceBuffer(int64_t count) : count_(count) {
    if (count_ > 0) check(cudaMalloc(&ptr_, sizeof(T) * count_), "cudaMalloc");
  }
  DeviceBuffer(const T* host, int64_t count) : DeviceBuffer(count) {
    if (count_ > 0) check(cudaMemcpy(ptr_, host, sizeof(T) * count_, cudaMemcpyHostToDevice), "cudaMemcpy to device");
  }
  ~DeviceBuffer() {
    if (ptr_) cudaFree(ptr_);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  T* get() const { return ptr_; }
  void copy_to_host(T* host) const {
    check(cudaMemcpy(host, ptr_, sizeof(T) * count_, cudaMemcpyDeviceToHost), "cudaMemcpy to host");
  }

 private:
  T* ptr_ = nullptr;
  int64_t count_ = 0;
};

// Copy of an optional host array (nullptr stays nullptr).
template <class T>
inline DeviceBuffer<T> upload(const T* host, int64_t count) {
  return host ? DeviceBuffer<T>(host, count) : DeviceBuffer<T>(0);
}

inline void check_launch(const char* what) {
  check(cudaGetLastError(), what);
  check(cudaDeviceSynchronize(), what);
}

constexpr int kTile = 16;

// Y[m, n] = epi(m, n, Σ_k X[m, k] · W[n, k]); one 16×16 output tile per block, k in 16-wide
// slabs through shared memory (padded against bank conflicts).
template <class Epilogue>
__global__ void gemm_nt_kernel(const float* __restrict__ x, const float* __restrict__ w, int64_t m, int64_t n,
                               int64_t k, Epilogue epi) {
  __shared__ float xs[kTile][kTile + 1];
  __shared__ float ws[kTile][kTile + 1];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t row = static_cast<int64_t>(blockIdx.y) * kTile + ty;  // of X / Y
  const int64_t col = static_cast<int64_t>(blockIdx.x) * kTile + tx;  // of W / Y
  const int64_t wrow = static_cast<int64_t>(blockIdx.x) * kTile + ty;
  float acc = 0.0f;
  for (int64_t k0 = 0; k0 < k; k0 += kTile) {
    xs[ty][tx] = (row < m && k0 + tx < k) ? x[row * k + k0 + tx] : 0.0f;
    ws[ty][tx] = (wrow < n && k0 + tx < k) ? w[wrow * k + k0 + tx] : 0.0f;
    __syncthreads();
#pragma unroll
    for (int i = 0; i < kTile; ++i) acc = fmaf(xs[ty][i], ws[tx][i], acc);
    __syncthreads();
  }
  if (row < m && col < n) epi(row, col, acc);
}

template <class Epilogue>
void gemm_nt(const float* x, const float* w, int64_t m, int64_t n, int64_t k, Epilogue epi) {
  const int64_t row_tiles = (m + kTile - 1) / kTile;
  if (row_tiles > 65535) throw std::runtime_error("gemm_nt: at most 1048560 rows per call on CUDA, got " + std::to_string(m));
  dim3 block(kTile, kTile);
  dim3 grid(static_cast<unsigned>((n + kTile - 1) / kTile), static_cast<unsigned>(row_tiles));
  gemm_nt_kernel<<<grid, block>>>(x, w, m, n, k, epi);
  check_launch("gemm_nt_kernel");
}

}  // namespace kfaar::cuda
