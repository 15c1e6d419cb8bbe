#include "tools/compiler/transpose.h"

#include <map>
#include <set>
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

class Expander {
 public:
  explicit Expander(Graph& g) : g_(g) {
    for (const Tensor& t : g.tensors) names_.insert(t.name);
  }

  void run() {
    std::vector<Node> old = std::move(g_.nodes);
    g_.nodes.clear();
    bool any = false;
    for (std::size_t i = 0; i < old.size(); ++i) {
      if (old[i].kind == OpKind::kTranspose && old[i].perm[2] != 2) {
        expand(old[i], i);
        any = true;
      } else {
        const TensorId out = old[i].output;
        push(std::move(old[i]), out);
      }
    }
    if (any) infer_shapes(g_);
  }

 private:
  TensorId push(Node n, TensorId out) {
    n.output = out;
    g_.tensors[out].producer = std::int64_t(g_.nodes.size());
    g_.nodes.push_back(std::move(n));
    return out;
  }

  std::string fresh(const std::string& name) {
    if (!names_.insert(name).second) {
      throw CompileError(g_.source + ": node " + std::to_string(index_) + " '" + name_ +
                         "' (transpose): its step '" + name +
                         "' clashes with a tensor of that name");
    }
    return name;
  }

  // Appends `n` producing a new tensor named after it; it becomes the current tensor.
  void add(Node n, Shape3 shape) {
    Tensor t;
    t.name = fresh(n.name);
    g_.tensors.push_back(t);
    cur_ = push(std::move(n), TensorId(g_.tensors.size() - 1));
    cur_shape_ = shape;
  }

  // The C x C identity, one graph input per channel count.
  TensorId identity(std::uint32_t c, std::uint32_t samples) {
    auto it = identities_.find(c);
    if (it != identities_.end()) return it->second;
    Tensor t;
    t.name = fresh(name_ + "/identity");
    t.samples = samples;
    t.shape = {1, c, c};
    t.values.assign(std::uint64_t(c) * c, 0.0f);
    for (std::uint64_t k = 0; k < c; ++k) t.values[k * c + k] = 1.0f;
    g_.tensors.push_back(t);
    const TensorId id = TensorId(g_.tensors.size() - 1);
    g_.inputs.push_back(id);
    identities_[c] = id;
    return id;
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

  void expand(const Node& t, std::size_t index) {
    index_ = index;
    name_ = t.name;
    cur_ = t.inputs[0];
    cur_shape_ = logical_ = t.in;
    const std::size_t first = g_.nodes.size();
    const std::uint32_t* perm = t.perm;
    // [2, 0, 1] = M; [0, 2, 1] = M, S; [2, 1, 0] = S, M; [1, 2, 0] = S, M, S.
    if (!keeps_order(t.in, perm)) {
      if (perm[2] == 0) swap(name_ + "/s0");
      to_channels_first(t.samples);
      if (perm[1] == 2) swap(name_ + "/s1");
    }
    // Nothing moved (only axes of size 1): a plain view.
    if (g_.nodes.size() == first || cur_shape_ != t.out) view(t.out, name_ + "/view");
    // The last node produces the transpose's own tensor and takes its name.
    Node& last = g_.nodes.back();
    names_.erase(g_.tensors.back().name);
    g_.tensors.pop_back();
    last.name = name_;
    last.output = t.output;
    g_.tensors[t.output].producer = std::int64_t(g_.nodes.size() - 1);
  }

  Graph& g_;
  std::set<std::string> names_;
  std::map<std::uint32_t, TensorId> identities_;
  std::size_t index_ = 0;
  std::string name_;
  TensorId cur_ = 0;
  Shape3 cur_shape_, logical_;
};

}  // namespace

void expand_transposes(Graph& graph) { Expander(graph).run(); }

}  // namespace tpu
