// The GRU recurrence for K stacked members on the CPU: forward keeps the gates, backward
// runs the recursion for the hidden-state gradient only and leaves the weight gradient
// to one batched product over all steps (as cuDNN does).
//
// Layout (all contiguous): gi [K, T, B, 3H] = x @ W_ih^T + b_ih, gates in order r, z, n
// (nn.GRU's order); w_hh [K, 3H, H]; b_hh [K, 3H]; the initial state is zero.
//
//   r = sigmoid(gi_r + gh_r)      gh = h_prev @ W_hh^T + b_hh
//   z = sigmoid(gi_z + gh_z)
//   n = tanh(gi_n + r * gh_n)
//   h = n + z * (h_prev - n)      (= (1 - z) * n + z * h_prev)
//
// Rows of a batch never interact, so the work is cut into (member, block of rows)
// pieces that run on separate threads, each through all its time steps with no
// synchronisation between steps. Per step and piece: one BLAS product
// [rows, H] x [H, 3H] and one fused gate loop that the compiler vectorizes.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <limits>
#include <cmath>
#include <vector>

extern "C" {
// BLAS (column-major), as exported by PyTorch's own BLAS (MKL or OpenBLAS).
void sgemm_(const char* ta, const char* tb, const int* m, const int* n, const int* k,
            const float* alpha, const float* a, const int* lda, const float* b,
            const int* ldb, const float* beta, float* c, const int* ldc);
void dgemm_(const char* ta, const char* tb, const int* m, const int* n, const int* k,
            const double* alpha, const double* a, const int* lda, const double* b,
            const int* ldb, const double* beta, double* c, const int* ldc);
}

namespace {

// Row-major C[rows, n] = A[rows, k] @ op(W) + beta * C, op(W) = W^T (trans_w) or W.
// W is row-major [n, k] when trans_w, [k, n] otherwise.
template <typename T>
void gemm_rows(bool trans_w, int rows, int n, int k, const T* a, int lda, const T* w,
               int ldw, T beta, T* c, int ldc) {
  // Column-major view: C^T [n, rows] = op'(W) [n, k] x A^T [k, rows].
  const char ta = trans_w ? 'T' : 'N', tb = 'N';
  const T one = 1;
  if constexpr (std::is_same_v<T, float>) {
    sgemm_(&ta, &tb, &n, &rows, &k, &one, w, &ldw, a, &lda, &beta, c, &ldc);
  } else {
    dgemm_(&ta, &tb, &n, &rows, &k, &one, w, &ldw, a, &lda, &beta, c, &ldc);
  }
}

// The arguments are clamped so exp never overflows: under -ffast-math an infinite
// exp gives NaN (not the 0 or 1 IEEE arithmetic would), which failed every trial whose
// gates saturated (large learning rates). Beyond the clamp both functions equal their
// limits to double precision: sigmoid(40) = 1 - 4e-18, tanh(20) = 1 - 8e-18.
// The clamp would also turn an infinite or NaN argument (diverged weights) into a finite
// one, so those are detected apart (nonfinite) and make that member's output NaN for
// that row, at every step (nn.GRU passes a NaN on; it saturates an infinite argument, which only diverged
// weights produce): the trainer then fails the trial instead of training on garbage.
template <typename T>
inline T sigmoid(T x) {
  x = std::min(std::max(x, T(-40)), T(40));
  return T(1) / (T(1) + std::exp(-x));
}

template <typename T>
inline T tanh_(T x) {
  x = std::min(std::max(x, T(-20)), T(20));
  return T(2) / (T(1) + std::exp(T(-2) * x)) - T(1);
}

// Infinite or NaN, read from the bits: -ffast-math lets the compiler assume floats are
// finite, so std::isfinite may be folded to true; integer tests on the bits are not.
inline int nonfinite(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  return (bits & 0x7f800000u) == 0x7f800000u;
}

inline int nonfinite(double x) {
  uint64_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  return (bits & 0x7ff0000000000000ull) == 0x7ff0000000000000ull;
}

struct Shape {
  int64_t K, T, B, H;
};

// Pieces: (member, first row, row count); enough of them to keep every thread busy.
std::vector<std::array<int64_t, 3>> pieces(const Shape& s) {
  const int64_t threads = at::get_num_threads();
  int64_t per_member = std::max<int64_t>(1, (threads + s.K - 1) / s.K);
  per_member = std::min<int64_t>(per_member, std::max<int64_t>(1, s.B / 8));
  std::vector<std::array<int64_t, 3>> out;
  const int64_t chunk = (s.B + per_member - 1) / per_member;
  for (int64_t k = 0; k < s.K; ++k)
    for (int64_t b0 = 0; b0 < s.B; b0 += chunk)
      out.push_back({k, b0, std::min(chunk, s.B - b0)});
  return out;
}

// Run fn(member, first row, row count) for every piece, the pieces spread over threads.
template <typename F>
void for_each_piece(const Shape& s, F fn) {
  const auto work = pieces(s);
  at::parallel_for(0, (int64_t)work.size(), 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) fn(work[i][0], work[i][1], work[i][2]);
  });
}

// Sets bad[b] (b < rows) when a gate argument of row b0 + b was infinite or NaN.
template <typename T>
void forward_piece(const Shape& s, int64_t k, int64_t b0, int64_t rows, const T* gi,
                   const T* w_hh, const T* b_hh, T* out, T* saved, T* gh, uint8_t* bad_rows) {
  const int64_t H = s.H, B = s.B, T_ = s.T;
  const T* w = w_hh + k * 3 * H * H;  // [3H, H]
  const T* bias = b_hh + k * 3 * H;
  for (int64_t t = 0; t < T_; ++t) {
    const int64_t row0 = (k * T_ + t) * B + b0;  // index of (k, t, b0) in [K, T, B]
    const T* h_prev = t > 0 ? out + (row0 - B) * H : nullptr;
    if (t > 0)  // gh = h_prev @ W_hh^T: [rows, H] x [H, 3H]
      gemm_rows<T>(true, rows, 3 * H, H, h_prev, H, w, H, T(0), gh, 3 * H);
    for (int64_t b = 0; b < rows; ++b) {
      const T* gi_row = gi + (row0 + b) * 3 * H;
      const T* gh_row = gh + b * 3 * H;
      const T* hp = t > 0 ? h_prev + b * H : nullptr;
      T* ho = out + (row0 + b) * H;
      T* sv = saved + (row0 + b) * 4 * H;  // r, z, n, gh_n
      const bool first = t == 0;
      int bad = 0;
#pragma omp simd reduction(| : bad)
      for (int64_t j = 0; j < H; ++j) {
        T hr = first ? T(0) : gh_row[j], hz = first ? T(0) : gh_row[H + j];
        T hn = (first ? T(0) : gh_row[2 * H + j]) + bias[2 * H + j];
        T ar = gi_row[j] + hr + bias[j], az = gi_row[H + j] + hz + bias[H + j];
        T r = sigmoid(ar);
        T z = sigmoid(az);
        T an = gi_row[2 * H + j] + r * hn;
        bad |= nonfinite(ar) | nonfinite(az) | nonfinite(an);
        T n = tanh_(an);
        T prev = first ? T(0) : hp[j];
        ho[j] = n + z * (prev - n);
        sv[j] = r;
        sv[H + j] = z;
        sv[2 * H + j] = n;
        sv[3 * H + j] = hn;
      }
      bad_rows[b] |= static_cast<uint8_t>(bad != 0);
    }
  }
}

template <typename T>
void backward_piece(const Shape& s, int64_t k, int64_t b0, int64_t rows, const T* grad_out,
                    const T* out, const T* saved, const T* w_hh, T* dgi, T* dgh, T* dh) {
  const int64_t H = s.H, B = s.B, T_ = s.T;
  const T* w = w_hh + k * 3 * H * H;  // [3H, H]
  // dh holds the gradient reaching h_t through h_{t+1} (zero after the last step)
  std::fill(dh, dh + rows * H, T(0));
  for (int64_t t = T_ - 1; t >= 0; --t) {
    const int64_t row0 = (k * T_ + t) * B + b0;
    const bool first = t == 0;
    for (int64_t b = 0; b < rows; ++b) {
      const T* go = grad_out + (row0 + b) * H;
      const T* sv = saved + (row0 + b) * 4 * H;
      const T* hp = first ? nullptr : out + (row0 - B + b) * H;
      T* gi_row = dgi + (row0 + b) * 3 * H;
      T* gh_row = dgh + (row0 + b) * 3 * H;
      T* d = dh + b * H;
#pragma omp simd
      for (int64_t j = 0; j < H; ++j) {
        T g = go[j] + d[j];
        T r = sv[j], z = sv[H + j], n = sv[2 * H + j], ghn = sv[3 * H + j];
        T prev = first ? T(0) : hp[j];
        T dpn = g * (T(1) - z) * (T(1) - n * n);
        T dpz = g * (prev - n) * z * (T(1) - z);
        T dpr = dpn * ghn * r * (T(1) - r);
        gi_row[j] = dpr;
        gi_row[H + j] = dpz;
        gi_row[2 * H + j] = dpn;
        gh_row[j] = dpr;
        gh_row[H + j] = dpz;
        gh_row[2 * H + j] = dpn * r;
        d[j] = g * z;  // the direct path h_{t-1} -> h_t
      }
    }
    // dh_{t-1} += dgh_t @ W_hh: [rows, 3H] x [3H, H]
    if (!first)
      gemm_rows<T>(false, rows, H, 3 * H, dgh + row0 * 3 * H, 3 * H, w, H, T(1), dh, H);
  }
}

}  // namespace

// gi [K, T, B, 3H], w_hh [K, 3H, H], b_hh [K, 3H] -> (out [K, T, B, H], saved [K, T, B, 4H])
std::vector<at::Tensor> gru_forward(at::Tensor gi, at::Tensor w_hh, at::Tensor b_hh) {
  TORCH_CHECK(gi.dim() == 4 && gi.is_contiguous(), "gi must be contiguous [K, T, B, 3H]");
  w_hh = w_hh.contiguous();
  b_hh = b_hh.contiguous();
  const Shape s{gi.size(0), gi.size(1), gi.size(2), gi.size(3) / 3};
  auto out = at::empty({s.K, s.T, s.B, s.H}, gi.options());
  auto saved = at::empty({s.K, s.T, s.B, 4 * s.H}, gi.options());
  // per member and row: a bad row fails alone, so one row's input never changes another
  // row's output (a batch predicts what each row predicts alone)
  auto diverged = at::zeros({s.K, s.B}, gi.options().dtype(at::kByte));
  uint8_t* flags = diverged.data_ptr<uint8_t>();  // pieces write disjoint rows
  AT_DISPATCH_FLOATING_TYPES(gi.scalar_type(), "gru_forward", [&] {
    for_each_piece(s, [&](int64_t k, int64_t b0, int64_t rows) {
      std::vector<scalar_t> gh(rows * 3 * s.H);
      forward_piece<scalar_t>(s, k, b0, rows, gi.data_ptr<scalar_t>(),
                              w_hh.data_ptr<scalar_t>(), b_hh.data_ptr<scalar_t>(),
                              out.data_ptr<scalar_t>(), saved.data_ptr<scalar_t>(), gh.data(),
                              flags + k * s.B + b0);
    });
  });
  if (diverged.any().item<bool>())
    out.masked_fill_(diverged.to(at::kBool).view({s.K, 1, s.B, 1}),
                     std::numeric_limits<double>::quiet_NaN());
  return {out, saved};
}

// grad_out [K, T, B, H] -> (d_gi [K, T, B, 3H], d_w_hh [K, 3H, H], d_b_hh [K, 3H])
std::vector<at::Tensor> gru_backward(at::Tensor grad_out, at::Tensor out, at::Tensor saved,
                                     at::Tensor w_hh) {
  grad_out = grad_out.contiguous();
  w_hh = w_hh.contiguous();
  const Shape s{out.size(0), out.size(1), out.size(2), out.size(3)};
  auto dgi = at::empty({s.K, s.T, s.B, 3 * s.H}, out.options());
  auto dgh = at::empty({s.K, s.T, s.B, 3 * s.H}, out.options());
  AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "gru_backward", [&] {
    for_each_piece(s, [&](int64_t k, int64_t b0, int64_t rows) {
      std::vector<scalar_t> dh(rows * s.H);
      backward_piece<scalar_t>(s, k, b0, rows, grad_out.data_ptr<scalar_t>(),
                               out.data_ptr<scalar_t>(), saved.data_ptr<scalar_t>(),
                               w_hh.data_ptr<scalar_t>(), dgi.data_ptr<scalar_t>(),
                               dgh.data_ptr<scalar_t>(), dh.data());
    });
  });
  // Weight gradients in one product over all steps: h_prev of step t is out[t-1] (zero
  // at t = 0, so step 0 contributes only to the bias).
  const int64_t T = s.T, B = s.B, H = s.H, K = s.K;
  auto dgh_flat = dgh.narrow(1, 1, T - 1).reshape({K, (T - 1) * B, 3 * H});
  auto prev_flat = out.narrow(1, 0, T - 1).reshape({K, (T - 1) * B, H});
  auto dw = at::bmm(dgh_flat.transpose(1, 2), prev_flat);  // [K, 3H, H]
  auto db = dgh.sum({1, 2});  // [K, 3H]
  return {dgi, dw, db};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &gru_forward, "GRU recurrence forward (CPU, K members)");
  m.def("backward", &gru_backward, "GRU recurrence backward (CPU, K members)");
}
