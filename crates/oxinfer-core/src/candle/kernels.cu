// CUDA kernels of the embedder (built to PTX by build.rs with the `cuda` feature; see
// cuda_ops.rs). candle's broadcasting add and strided copy compute each element's source index
// with 64-bit divisions over every dim: on an H100 they ran ~9x below memory bandwidth and were
// ~75% of a float16 batch-256 pass (bias adds ~50%, the attention's head copies ~24%). These
// do the same moves with one 32-bit division or two per element.
#include <cuda_fp16.h>
#include <cuda_bf16.h>

#define GRID_STRIDE(i, n) for (unsigned int i = blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += blockDim.x * gridDim.x)

// out[r, c] = x[r, c] + bias[c]: x contiguous [rows, n].
template <typename T>
__device__ void bias_add(const T *x, const T *bias, T *out, unsigned int numel, unsigned int n) {
    GRID_STRIDE(i, numel) { out[i] = x[i] + bias[i % n]; }
}

// scores[b, h, i, j] + mask[b, j]: scores contiguous [b, heads, s, s], mask [b, s].
template <typename T>
__device__ void mask_add(const T *scores, const T *mask, T *out, unsigned int numel, unsigned int s, unsigned int per_row) {
    GRID_STRIDE(i, numel) { out[i] = scores[i] + mask[(i / per_row) * s + i % s]; }
}

// qkv [b, s, 3 * heads * d] -> out [3, b, heads, s, d] (q, k, v, each heads-major).
template <typename T>
__device__ void split_heads(const T *qkv, T *out, unsigned int numel, unsigned int b, unsigned int s, unsigned int heads, unsigned int d) {
    const unsigned int h = heads * d;
    GRID_STRIDE(i, numel) {
        const unsigned int col = i % (3 * h), row = i / (3 * h); // row = batch * s + position
        const unsigned int which = col / h, head = (col % h) / d, e = col % d;
        const unsigned int batch = row / s, pos = row % s;
        out[(((which * b + batch) * heads + head) * s + pos) * d + e] = qkv[i];
    }
}

// ctx [b, heads, s, d] -> out [b, s, heads * d].
template <typename T>
__device__ void merge_heads(const T *ctx, T *out, unsigned int numel, unsigned int s, unsigned int heads, unsigned int d) {
    const unsigned int h = heads * d;
    GRID_STRIDE(i, numel) {
        const unsigned int col = i % h, row = i / h;
        const unsigned int batch = row / s, pos = row % s, head = col / d, e = col % d;
        out[i] = ctx[((batch * heads + head) * s + pos) * d + e];
    }
}

// The same moves two elements at a time (callers check that pairs never straddle a row or a
// head, and that the buffers are aligned for them): half the index math, 4-byte (8-byte for
// f32) loads and stores instead of 2-byte ones.
__device__ __forceinline__ __half2 add2(__half2 a, __half2 b) { return __hadd2(a, b); }
__device__ __forceinline__ __nv_bfloat162 add2(__nv_bfloat162 a, __nv_bfloat162 b) { return __hadd2(a, b); }
__device__ __forceinline__ float2 add2(float2 a, float2 b) { return make_float2(a.x + b.x, a.y + b.y); }

template <typename V>
__device__ void bias_add_pairs(const V *x, const V *bias, V *out, unsigned int pairs, unsigned int n2) {
    GRID_STRIDE(i, pairs) { out[i] = add2(x[i], bias[i % n2]); }
}

#define PAIR_KERNELS(V, SUFFIX) \
    extern "C" __global__ void bias_add2_##SUFFIX(const V *x, const V *bias, V *out, unsigned int pairs, unsigned int n2) { bias_add_pairs(x, bias, out, pairs, n2); } \
    extern "C" __global__ void split_heads2_##SUFFIX(const V *qkv, V *out, unsigned int pairs, unsigned int b, unsigned int s, unsigned int heads, unsigned int d2) { split_heads(qkv, out, pairs, b, s, heads, d2); } \
    extern "C" __global__ void merge_heads2_##SUFFIX(const V *ctx, V *out, unsigned int pairs, unsigned int s, unsigned int heads, unsigned int d2) { merge_heads(ctx, out, pairs, s, heads, d2); }

#define KERNELS(T, SUFFIX) \
    extern "C" __global__ void bias_add_##SUFFIX(const T *x, const T *bias, T *out, unsigned int numel, unsigned int n) { bias_add(x, bias, out, numel, n); } \
    extern "C" __global__ void mask_add_##SUFFIX(const T *scores, const T *mask, T *out, unsigned int numel, unsigned int s, unsigned int per_row) { mask_add(scores, mask, out, numel, s, per_row); } \
    extern "C" __global__ void split_heads_##SUFFIX(const T *qkv, T *out, unsigned int numel, unsigned int b, unsigned int s, unsigned int heads, unsigned int d) { split_heads(qkv, out, numel, b, s, heads, d); } \
    extern "C" __global__ void merge_heads_##SUFFIX(const T *ctx, T *out, unsigned int numel, unsigned int s, unsigned int heads, unsigned int d) { merge_heads(ctx, out, numel, s, heads, d); }

KERNELS(float, f32)
KERNELS(__half, f16)
KERNELS(__nv_bfloat16, bf16)

PAIR_KERNELS(float2, f32)
PAIR_KERNELS(__half2, f16)
PAIR_KERNELS(__nv_bfloat162, bf16)
