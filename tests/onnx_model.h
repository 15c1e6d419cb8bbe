#pragma once
// ONNX models built in tests with the protobuf classes (tests/onnx_frontend_test.cc,
// tests/onnx_quantized_test.cc).
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <cstdint>
#include <string>
#include <vector>

#include "tools/compiler/frontend.h"
#include "tools/compiler/onnx_frontend.h"

namespace tpu::test_onnx {

// A model under construction: float activations, opset 14 (PyTorch 1.13's default).
struct Model {
  onnx::ModelProto m;
  Model() {
    m.set_ir_version(7);
    m.add_opset_import()->set_version(14);
  }
  onnx::GraphProto& g() { return *m.mutable_graph(); }
  void input(const std::string& name, std::vector<std::int64_t> dims) {
    auto* vi = g().add_input();
    vi->set_name(name);
    auto* tt = vi->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(onnx::TensorProto::FLOAT);
    for (auto d : dims) tt->mutable_shape()->add_dim()->set_dim_value(d);
  }
  void output(const std::string& name) { g().add_output()->set_name(name); }
  void init(const std::string& name, std::vector<std::int64_t> dims, std::vector<float> v) {
    auto* t = g().add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    for (auto d : dims) t->add_dims(d);
    for (float x : v) t->add_float_data(x);
  }
  void init64(const std::string& name, std::vector<std::int64_t> v) {
    auto* t = g().add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::INT64);
    t->add_dims(std::int64_t(v.size()));
    for (auto x : v) t->add_int64_data(x);
  }
  onnx::NodeProto& node(const std::string& op, std::vector<std::string> in, const std::string& out) {
    auto* n = g().add_node();
    n->set_op_type(op);
    n->set_name(out);
    for (auto& i : in) n->add_input(i);
    n->add_output(out);
    return *n;
  }
  static void ints(onnx::NodeProto& n, const std::string& key, std::vector<std::int64_t> v) {
    auto* a = n.add_attribute();
    a->set_name(key);
    a->set_type(onnx::AttributeProto::INTS);
    for (auto x : v) a->add_ints(x);
  }
  static void integer(onnx::NodeProto& n, const std::string& key, std::int64_t v) {
    auto* a = n.add_attribute();
    a->set_name(key);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(v);
  }
  std::string source = "t.onnx";  // the file name errors name
  Graph parse() const { return parse_onnx(m.SerializeAsString(), source); }
};

void expect_error(const Model& model, const std::vector<std::string>& fragments) {
  try {
    model.parse();
    ADD_FAILURE() << "no CompileError";
  } catch (const CompileError& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    for (const auto& f : fragments) EXPECT_NE(msg.find(f), std::string::npos) << msg << " / " << f;
  }
}

}  // namespace tpu::test_onnx
