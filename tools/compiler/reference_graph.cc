#include "tools/compiler/reference_graph.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "sim/host_memory.h"
#include "tools/compiler/reference.h"

namespace tpu {

namespace {

// The requantiser maps the largest |value| of a layer to about this int8 value.
constexpr double kTarget = 100;
constexpr double kDataScale = 1.0 / 64;  // generated int8 inputs and weights
// Multipliers stay below 2^15 so that a * m_a + b * m_b never nears 64 bits.
constexpr std::int64_t kMaxMultiplier = (1 << 15) - 1;

// The largest shift whose multipliers (ratio * 2^shift, rounded) stay at most kMaxMultiplier.
Requant requant_for(double ratio_a, double ratio_b = 0) {
  Requant q;
  const double big = std::max(ratio_a, ratio_b);
  for (int s = 31; s >= 0; --s) {
    if (std::llround(big * std::ldexp(1.0, s)) <= kMaxMultiplier) {
      q.shift = std::uint8_t(s);
      q.multiplier = std::int32_t(std::max<long long>(std::llround(ratio_a * std::ldexp(1.0, s)), 1));
      if (ratio_b > 0) {
        q.multiplier_b = std::int32_t(std::max<long long>(std::llround(ratio_b * std::ldexp(1.0, s)), 1));
      }
      return q;
    }
  }
  q.multiplier = std::int32_t(kMaxMultiplier);
  return q;
}

double gain(const Requant& q) { return double(q.multiplier) / std::ldexp(1.0, q.shift); }

// A quantised graph's GEMM: its own scales give the ratio s_in * s_weight / s_out, its output
// zero point the requantiser's.
Requant given_requant(const Node& n) {
  Requant q = requant_for(double(n.quant.in_scale) * n.quant.weight_scale / n.quant.out_scale);
  q.zero_point = std::int8_t(n.quant.out_zero);
  return q;
}

PoolShape pool_shape(const Node& n) {
  return {n.samples, n.in, n.kernel_h, n.kernel_w, n.stride, n.padding};
}

class Interpreter {
 public:
  Interpreter(const Graph& g, const GraphData& data) : g_(g), int8_(g.dtype == DataType::kInt8) {
    ev_.tensors.resize(g.tensors.size());
    ev_.expected.resize(g.nodes.size());
    ev_.requant.resize(g.nodes.size());
    ev_.bias_words.resize(g.nodes.size());
    scale_.assign(g.tensors.size(), kDataScale);
    for (TensorId id : g.inputs) ev_.tensors[id] = data.inputs[id];
    for (std::size_t i = 0; i < g.nodes.size(); ++i) {
      const Node& n = g.nodes[i];
      // The output, and int32 accumulators for a GEMM.
      const double bytes = double(g.tensors[n.output].elements()) * (is_gemm(n.kind) ? 5 : 4);
      allocating("the reference output of node '" + n.name + "'", bytes,
                 [&] { run(i, data.weights[i], data.biases[i]); });
    }
  }
  Evaluation take() { return std::move(ev_); }

 private:
  const Values& in(const Node& n, std::size_t k) const { return ev_.tensors[n.inputs[k]]; }

  void run(std::size_t i, const Values& w, const std::vector<float>& bias) {
    const Node& n = g_.nodes[i];
    Values y;
    double scale = scale_[n.inputs[0]];
    Requant& q = ev_.requant[i];
    switch (n.kind) {
      case OpKind::kMatmul:
      case OpKind::kTensorMatmul:
      case OpKind::kDense:
      case OpKind::kConv2d: {
        const ConvShape cs{n.samples,  n.in,         n.kernel_h,   n.kernel_w, n.stride,
                           n.padding,  n.out_channels, n.padding_h, n.dilation_h,
                           n.dilation_w, n.groups};
        const bool conv = n.kind == OpKind::kConv2d;
        const bool tensor = n.kind == OpKind::kTensorMatmul;
        const std::uint64_t M = n.gemm_m(), K = n.gemm_k(), N = n.gemm_n();
        const TensorMatmulShape ts{n.samples, std::uint64_t(n.in.h) * n.in.w, K, N / n.heads,
                                   n.heads, n.transpose_b};
        // The real value of one accumulator unit: the operands' scales (b's, for a tensor
        // matmul, else the generated weights') and a tensor matmul's `scale`.
        const double acc_scale = scale * (tensor ? scale_[n.inputs[1]] * n.scale : kDataScale);
        std::vector<std::uint32_t>& words = ev_.bias_words[i];
        if (int8_) {
          std::vector<std::int32_t> acc =
              tensor ? reference_tensor_matmul(in(n, 0).i8, in(n, 1).i8, ts)
              : conv ? reference_conv2d(in(n, 0).i8, w.i8, cs)
                     : reference_matmul(in(n, 0).i8, w.i8, M, K, N);
          // A quantised graph's bias is already in accumulator units.
          const double bias_unit = n.quant.given() ? 1.0 : acc_scale;
          for (float b : bias) {
            const double q = std::clamp(std::round(b / bias_unit), -2147483648.0, 2147483647.0);
            words.push_back(std::uint32_t(std::int32_t(q)));
          }
          for (std::size_t e = 0; !bias.empty() && e < acc.size(); ++e) {
            acc[e] = std::int32_t(std::uint32_t(acc[e]) + words[e % N]);
          }
          if (n.activation > Activation::kRelu) {
            q.scale_a = float(acc_scale);
            std::vector<float> f(acc.size());
            for (std::size_t e = 0; e < acc.size(); ++e) {
              f[e] = reference_activate(float(acc[e]) * q.scale_a, n.activation);
            }
            scale = requantize_fp32(f, q, y);
            break;
          }
          if (n.quant.given()) {
            q = given_requant(n);
            scale = n.quant.out_scale;
          } else if (n.identity_a) {
            q = requant_for(kDataScale);  // exactly 1 / 64: b's values back
            scale = acc_scale / gain(q);
          } else {
            std::uint64_t max_abs = 0;
            for (std::int32_t a : acc) max_abs = std::max<std::uint64_t>(max_abs, std::llabs(a));
            q = requant_for(max_abs == 0 ? 1.0 : kTarget / double(max_abs));
            scale = acc_scale / gain(q);
          }
          y.i8.resize(acc.size());
          for (std::size_t e = 0; e < acc.size(); ++e) {
            y.i8[e] = reference_requantize(acc[e], q.multiplier, q.shift, q.zero_point,
                                           n.activation);
          }
        } else {
          y.f32 = tensor ? reference_tensor_matmul(in(n, 0).f32, in(n, 1).f32, ts)
                  : conv ? reference_conv2d(in(n, 0).f32, w.f32, cs)
                         : reference_matmul(in(n, 0).f32, w.f32, M, K, N);
          // ACTIVATE adds the bias and scales the fp32 accumulator by scale_a (1 but for a
          // tensor matmul's, which has no bias).
          q.scale_a = tensor ? n.scale : 1.0f;
          for (float b : bias) {
            std::uint32_t bits;
            std::memcpy(&bits, &b, 4);
            words.push_back(bits);
          }
          for (std::size_t e = 0; e < y.f32.size(); ++e) {
            const float v = bias.empty() ? y.f32[e] : y.f32[e] + bias[e % N];
            y.f32[e] = reference_activate(v * q.scale_a, n.activation);
          }
        }
        break;
      }
      case OpKind::kMaxPool2d:
        if (int8_) {
          y.i8 = reference_maxpool(in(n, 0).i8, pool_shape(n));
        } else {
          y.f32 = reference_maxpool(in(n, 0).f32, pool_shape(n));
        }
        break;
      case OpKind::kAvgPool2d:
      case OpKind::kGlobalAvgPool2d: {
        const double window = double(n.kernel_h) * n.kernel_w;
        if (int8_) {
          q = requant_for(1.0 / window);
          const std::vector<std::int32_t> sums = reference_window_sum(in(n, 0).i8, pool_shape(n));
          y.i8.resize(sums.size());
          for (std::size_t e = 0; e < sums.size(); ++e) {
            y.i8[e] = reference_requantize(sums[e], q.multiplier, q.shift, 0, Activation::kNone);
          }
          scale = scale / (gain(q) * window);
        } else {
          y.f32 = reference_avgpool(in(n, 0).f32, pool_shape(n));
        }
        break;
      }
      case OpKind::kAdd: {
        const Values& a = in(n, 0);
        const Values& b = in(n, 1);
        if (int8_) {
          const double sa = scale_[n.inputs[0]], sb = scale_[n.inputs[1]];
          double max_abs = 0;
          for (std::size_t e = 0; e < a.i8.size(); ++e) {
            max_abs = std::max(max_abs, std::fabs(a.i8[e] * sa + b.i8[e] * sb));
          }
          const double out_scale = max_abs == 0 ? std::max(sa, sb) : max_abs / kTarget;
          q = requant_for(sa / out_scale, sb / out_scale);
          y.i8.resize(a.i8.size());
          for (std::size_t e = 0; e < a.i8.size(); ++e) {
            y.i8[e] = reference_add(a.i8[e], b.i8[e], q.multiplier, q.multiplier_b, q.shift, 0,
                                    n.activation);
          }
          scale = out_scale;
        } else {
          y.f32.resize(a.f32.size());
          for (std::size_t e = 0; e < a.f32.size(); ++e) {
            y.f32[e] = reference_activate(a.f32[e] + b.f32[e], n.activation);
          }
        }
        break;
      }
      case OpKind::kMul:
      case OpKind::kActivation:
      case OpKind::kSoftmax:
      case OpKind::kLayerNorm:
      case OpKind::kRmsNorm: {
        // fp32 inputs: dequantised (int8) or as stored (bf16).
        std::vector<float> f;
        const auto load = [&](std::size_t k, float s) {
          std::vector<float> v;
          if (int8_) {
            for (std::int8_t e : in(n, k).i8) v.push_back(float(e) * s);
          } else {
            v = in(n, k).f32;
          }
          return v;
        };
        q.scale_a = float(scale_[n.inputs[0]]);
        f = load(0, q.scale_a);
        if (n.kind == OpKind::kMul) {
          q.scale_b = float(scale_[n.inputs[1]]);
          const std::vector<float> b = load(1, q.scale_b);
          for (std::size_t e = 0; e < f.size(); ++e) f[e] = f[e] * b[e];
        } else if (n.kind == OpKind::kSoftmax) {
          f = reference_softmax(f, n.in.c, n.causal, n.mask_offset,
                                std::uint64_t(n.in.h) * n.in.w, n.heads);
        } else if (n.kind == OpKind::kLayerNorm || n.kind == OpKind::kRmsNorm) {
          // gamma then beta, at the generated weights' scale.
          q.scale_b = float(kDataScale);
          std::vector<float> p;
          if (int8_) {
            for (std::int8_t e : w.i8) p.push_back(float(e) * q.scale_b);
          } else {
            // The machine holds the parameters as bf16.
            for (float e : w.f32) p.push_back(reference_round_bf16(e));
          }
          const std::vector<float> gamma(p.begin(), p.begin() + n.in.c);
          const std::vector<float> beta(p.begin() + n.in.c, p.end());
          f = reference_norm(f, n.in.c, gamma, beta, n.epsilon, n.kind == OpKind::kRmsNorm);
        }
        for (float& v : f) v = reference_activate(v, n.activation);
        if (int8_) {
          scale = requantize_fp32(f, q, y);
        } else {
          y.f32 = std::move(f);
        }
        break;
      }
      case OpKind::kConcat: {
        // Channel c of input k lands at channel offset(k) + c of every pixel.
        const std::uint64_t pixels = std::uint64_t(n.samples) * n.out.h * n.out.w;
        std::uint64_t offset = 0;
        if (int8_) y.i8.resize(pixels * n.out.c);
        if (!int8_) y.f32.resize(pixels * n.out.c);
        for (std::size_t k = 0; k < n.inputs.size(); ++k) {
          const std::uint64_t c = g_.tensors[n.inputs[k]].shape.c;
          for (std::uint64_t p = 0; p < pixels; ++p) {
            for (std::uint64_t e = 0; e < c; ++e) {
              if (int8_) {
                y.i8[p * n.out.c + offset + e] = in(n, k).i8[p * c + e];
              } else {
                y.f32[p * n.out.c + offset + e] = in(n, k).f32[p * c + e];
              }
            }
          }
          offset += c;
        }
        break;
      }
      case OpKind::kReshape:
        y = in(n, 0);
        break;
      case OpKind::kSlice: {
        // Values (and the int8 scale) unchanged: pixel (y, x0 + x), channels c0 + c.
        const Values& v = in(n, 0);
        for (std::uint64_t b = 0; b < n.samples; ++b) {
          for (std::uint64_t r = 0; r < n.in.h; ++r) {
            for (std::uint64_t x = n.x0; x < n.x1; ++x) {
              const std::uint64_t at = ((b * n.in.h + r) * n.in.w + x) * n.in.c;
              if (int8_) {
                y.i8.insert(y.i8.end(), v.i8.begin() + at + n.c0, v.i8.begin() + at + n.c1);
              } else {
                y.f32.insert(y.f32.end(), v.f32.begin() + at + n.c0, v.f32.begin() + at + n.c1);
              }
            }
          }
        }
        break;
      }
      case OpKind::kTranspose: {
        // Values (and the int8 scale) unchanged: output (i0, i1, i2) is input (j0, j1, j2) with
        // j[perm[a]] = i[a].
        const std::uint64_t dims[3] = {n.in.h, n.in.w, n.in.c};
        const std::uint64_t per = n.in.elements();
        const Values& v = in(n, 0);
        if (int8_) y.i8.resize(v.i8.size());
        if (!int8_) y.f32.resize(v.f32.size());
        for (std::uint64_t b = 0; b < n.samples; ++b) {
          std::uint64_t o = b * per, i[3];
          for (i[0] = 0; i[0] < dims[n.perm[0]]; ++i[0]) {
            for (i[1] = 0; i[1] < dims[n.perm[1]]; ++i[1]) {
              for (i[2] = 0; i[2] < dims[n.perm[2]]; ++i[2], ++o) {
                std::uint64_t j[3];
                for (int a = 0; a < 3; ++a) j[n.perm[a]] = i[a];
                const std::uint64_t at = b * per + (j[0] * dims[1] + j[1]) * dims[2] + j[2];
                if (int8_) {
                  y.i8[o] = v.i8[at];
                } else {
                  y.f32[o] = v.f32[at];
                }
              }
            }
          }
        }
        break;
      }
      case OpKind::kLstm:
        throw CompileError(g_.source + ": lstm node '" + n.name + "' was not expanded");
    }
    scale_[n.output] = scale;
    ev_.expected[i] = y;
    // The machine rounds each bf16 output; later nodes read the rounded values.
    for (float& v : y.f32) v = reference_round_bf16(v);
    ev_.tensors[n.output] = std::move(y);
  }

  // The fp32 path's requantiser: the output scale maps the largest |f| to about kTarget; sets
  // q.scale_out, fills y.i8 and returns the output scale.
  static double requantize_fp32(const std::vector<float>& f, Requant& q, Values& y) {
    double max_abs = 0;
    for (float v : f) max_abs = std::max(max_abs, std::fabs(double(v)));
    q.scale_out = float(max_abs == 0 ? 1.0 : kTarget / max_abs);
    y.i8.resize(f.size());
    for (std::size_t e = 0; e < f.size(); ++e) {
      y.i8[e] = reference_requantize_fp32(f[e], q.scale_out);
    }
    return 1.0 / double(q.scale_out);
  }

  const Graph& g_;
  const bool int8_;
  Evaluation ev_;
  std::vector<double> scale_;  // per tensor (int8)
};

}  // namespace

Evaluation evaluate(const Graph& graph, const GraphData& data) {
  return Interpreter(graph, data).take();
}

std::vector<Requant> requant_from_shapes(const Graph& graph) {
  std::vector<Requant> q(graph.nodes.size());
  for (std::size_t i = 0; i < graph.nodes.size(); ++i) {
    const Node& n = graph.nodes[i];
    if (n.quant.given()) {
      q[i] = given_requant(n);
    } else if (n.identity_a) {
      q[i] = requant_for(kDataScale);
    } else if (is_gemm(n.kind)) {
      // Full-scale inputs and weights bound |acc| by 64 * 64 * K.
      const double bound = std::min<double>(4096.0 * double(n.gemm_k()),
                                            std::numeric_limits<std::int32_t>::max());
      q[i] = requant_for(kTarget / bound);
    } else if (n.kind == OpKind::kAvgPool2d || n.kind == OpKind::kGlobalAvgPool2d) {
      q[i] = requant_for(1.0 / (double(n.kernel_h) * n.kernel_w));
    } else if (n.kind == OpKind::kAdd) {
      q[i] = requant_for(0.5, 0.5);
    }
    // The fp32 path: data-scale inputs, outputs of about unit size.
    if ((is_eltwise(n.kind) && n.kind != OpKind::kAdd) ||
        (is_gemm(n.kind) && n.activation > Activation::kRelu)) {
      q[i].scale_a = q[i].scale_b = float(kDataScale);
      q[i].scale_out = float(kTarget);
    }
    if (n.kind == OpKind::kTensorMatmul && graph.dtype == DataType::kBf16) q[i].scale_a = n.scale;
  }
  return q;
}

}  // namespace tpu
