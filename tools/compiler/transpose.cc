#include "tools/compiler/transpose.h"

#include <map>
#include <string>

namespace tpu {

bool keeps_order(const Shape3& shape, const std::uint32_t perm[3]) {
  const std::uint32_t dims[3] = {shape.h, shape.w, shape.c};
  std::int64_t last = -1;
  for (int a = 0; a < 3; ++a) {
    if (dims[perm[a]] == 1) continue;
    if (std::int64_t(perm[a]) < last) return false;
    last = perm[a];
  }
  return true;
}

namespace {

// One transpose's steps. `cur_` is the tensor the next step reads, `cur_shape_` its shape and
// `logical_` the (A, B, X) order of its elements that the steps have reached.
class Expansion {
 public:
  Expansion(const Node& t, GraphRewrite& rewrite, std::map<std::uint32_t, TensorId>& identities)
      : t_(t), rewrite_(rewrite), identities_(identities), name_(t.name), cur_(t.inputs[0]),
        cur_shape_(t.in), logical_(t.in) {}

  // [2, 0, 1] = M; [0, 2, 1] = M, S; [2, 1, 0] = S, M; [1, 2, 0] = S, M, S.
  void run() {
    const std::uint32_t* perm = t_.perm;
    if (!keeps_order(t_.in, perm)) {
      if (perm[2] == 0) swap(name_ + "/s0");
      to_channels_first(t_.samples);
      if (perm[1] == 2) swap(name_ + "/s1");
    }
    // Nothing moved (only axes of size 1): a plain view. The last step takes the transpose's
    // name and tensor (rewrite_nodes).
    if (cur_ == t_.inputs[0] || cur_shape_ != t_.out) view(t_.out, name_ + "/view");
  }

 private:
  // Appends `n`; its tensor, of `shape`, becomes the current one.
  void add(Node n, Shape3 shape) {
    cur_ = rewrite_.add(std::move(n));
    cur_shape_ = shape;
  }

  // The C x C identity, one graph input per channel count.
  TensorId identity(std::uint32_t c, std::uint32_t samples) {
    auto it = identities_.find(c);
    if (it != identities_.end()) return it->second;
    Tensor t;
    t.name = name_ + "/identity";
    t.samples = samples;
    t.shape = {1, c, c};
    t.values.assign(std::uint64_t(c) * c, 0.0f);
    for (std::uint64_t k = 0; k < c; ++k) t.values[k * c + k] = 1.0f;
    return identities_[c] = rewrite_.add_input(std::move(t));
  }

  // The current tensor viewed as `shape` (the same elements in the same order).
  void ensure(Shape3 shape, const std::string& name) {
    if (cur_shape_ != shape) view(shape, name);
  }
  void view(Shape3 shape, const std::string& name) {
    Node r;
    r.name = name;
    r.kind = OpKind::kReshape;
    r.inputs = {cur_};
    r.target = shape;
    add(std::move(r), shape);
  }

  // S: the logical (A, B, X) -> (B, A, X); only the order matters when A or B is 1.
  void swap(const std::string& name) {
    const Shape3 from = logical_;
    logical_ = {from.w, from.h, from.c};
    if (from.h == 1 || from.w == 1) return;
    ensure(from, name + "/view");
    Node s;
    s.name = name;
    s.kind = OpKind::kTranspose;
    s.inputs = {cur_};
    s.perm[0] = 1;
    s.perm[1] = 0;
    s.perm[2] = 2;
    add(std::move(s), logical_);
  }

  // M: the logical (H, W, C) -> (C, H, W): C pixels of the H * W input pixels as channels.
  void to_channels_first(std::uint32_t samples) {
    const Shape3 from = logical_;
    logical_ = {from.c, from.h, from.w};
    if (cur_shape_.c != from.c) ensure(from, name_ + "/rows");
    Node m;
    m.name = name_ + "/mxu";
    m.kind = OpKind::kTensorMatmul;
    m.inputs = {identity(from.c, samples), cur_};
    m.transpose_b = true;
    m.identity_a = true;
    add(std::move(m), {1, from.c, from.h * from.w});
  }

  const Node& t_;
  GraphRewrite& rewrite_;
  std::map<std::uint32_t, TensorId>& identities_;
  const std::string& name_;
  TensorId cur_;
  Shape3 cur_shape_, logical_;
};

}  // namespace

void expand_transposes(Graph& graph) {
  std::map<std::uint32_t, TensorId> identities;
  rewrite_nodes(
      graph, [](const Node& n) { return n.kind == OpKind::kTranspose && n.perm[2] != 2; },
      [&identities](const Node& t, GraphRewrite& rewrite) {
        Expansion(t, rewrite, identities).run();
      });
}

}  // namespace tpu
