#!/usr/bin/python3
"""Exports a small CNN from PyTorch as a float ONNX graph and quantises it statically with the
python onnx API into the two quantised forms tpusim imports (models/README.md, "Quantised ONNX
graphs"), under models/onnx/:

- qdq_cnn.onnx: QDQ format, QuantizeLinear/DequantizeLinear pairs around every Conv and Gemm;
  int8 weights and int32 biases behind DequantizeLinear.
- qop_cnn.onnx: QOperator format, QLinearConv and QLinearMatMul on int8 data.

Run with Debian's interpreter (python3-torch, python3-onnx, python3-numpy):
  /usr/bin/python3 tools/onnx/quantize_models.py [output directory]

The CNN (random weights, seed 0), on 1 x 3 x 16 x 16: conv 3->8 3x3 pad 1 + relu, max pool 2,
conv 8->16 3x3 + relu, flatten (16 x 6 x 6), linear 576->10 (without bias in qop_cnn: the
QOperator format's QLinearMatMul has none).

Quantisation (static, as ONNX Runtime's quantize_static with per-tensor scales):
- weights: symmetric int8, scale max|w| / 127, zero point 0; biases int32 at scale
  s_input x s_weight, rounded to nearest;
- activations: calibrated on 16 random N(0, 1) inputs, by each tensor's min and max over them:
  the graph input symmetric int8 (scale max|x| / 127, zero point 0); a relu's output uint8 over
  [0, max] (scale max / 255, zero point 0: in QOperator form the saturation at the zero point is
  the relu); the logits asymmetric int8 over [min, max] (scale (max - min) / 255, zero point
  -128 - round(min / scale)); a max pool and a flatten keep their input's parameters.
The float graph is evaluated for calibration by a small numpy interpreter of its operators.
"""
import os
import sys

import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper, TensorProto


class SmallCnn(torch.nn.Module):
    def __init__(self, head_bias):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(8, 16, 3)
        self.head = torch.nn.Linear(16 * 6 * 6, 10, bias=head_bias)

    def forward(self, x):
        x = torch.nn.functional.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = torch.relu(self.conv2(x))
        return self.head(torch.flatten(x, 1))


def float_export(head_bias, path):
    torch.manual_seed(0)
    model = SmallCnn(head_bias).eval()
    torch.onnx.export(model, torch.randn(1, 3, 16, 16), path, input_names=["image"],
                      output_names=["logits"])
    return onnx.load(path)


def attrs(node):
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def conv(x, w, b, a):
    p = a.get("pads", [0, 0, 0, 0])
    x = np.pad(x, ((0, 0), (0, 0), (p[0], p[2]), (p[1], p[3])))
    n, c, h, wd = x.shape
    m, _, kh, kw = w.shape
    oh, ow = h - kh + 1, wd - kw + 1
    y = np.zeros((n, m, oh, ow))
    for ky in range(kh):
        for kx in range(kw):
            y += np.einsum("nchw,mc->nmhw", x[:, :, ky:ky + oh, kx:kx + ow], w[:, :, ky, kx])
    return y + (0 if b is None else b.reshape(1, -1, 1, 1))


def evaluate(model, image):
    """Every tensor of the float graph for one input (Conv, Relu, MaxPool, Flatten, Gemm,
    MatMul: what SmallCnn exports)."""
    t = {i.name: numpy_helper.to_array(i).astype(np.float64) for i in model.graph.initializer}
    t["image"] = image
    for n in model.graph.node:
        a = attrs(n)
        x = [t[i] if i else None for i in n.input]
        if n.op_type == "Conv":
            y = conv(x[0], x[1], x[2] if len(x) > 2 else None, a)
        elif n.op_type == "Relu":
            y = np.maximum(x[0], 0)
        elif n.op_type == "MaxPool":
            k = a["kernel_shape"][0]
            s = x[0].shape
            y = x[0].reshape(s[0], s[1], s[2] // k, k, s[3] // k, k).max(axis=(3, 5))
        elif n.op_type == "Flatten":
            y = x[0].reshape(x[0].shape[0], -1)
        elif n.op_type == "Gemm":
            b = x[1].T if a.get("transB", 0) else x[1]
            y = x[0] @ b + (x[2] if len(x) > 2 else 0)
        elif n.op_type == "MatMul":
            y = x[0] @ x[1]
        else:
            raise SystemExit(f"calibration: unexpected operator {n.op_type}")
        t[n.output[0]] = y
    return t


def calibrate(model):
    rng = np.random.default_rng(0)
    lo, hi = {}, {}
    for _ in range(16):
        for k, v in evaluate(model, rng.standard_normal((1, 3, 16, 16))).items():
            lo[k] = min(lo.get(k, np.inf), v.min())
            hi[k] = max(hi.get(k, -np.inf), v.max())
    return lo, hi


def activation_params(model, lo, hi):
    """(scale, zero point, onnx type) of every activation tensor (the rules in the docstring)."""
    producer = {o: n for n in model.graph.node for o in n.output}
    params = {}
    for name in ["image"] + [n.output[0] for n in model.graph.node]:
        op = producer[name].op_type if name in producer else "input"
        if op == "input":
            params[name] = (max(abs(lo[name]), hi[name]) / 127, 0, TensorProto.INT8)
        elif op == "Relu":
            params[name] = (hi[name] / 255, 0, TensorProto.UINT8)
        elif op in ("MaxPool", "Flatten"):
            params[name] = params[producer[name].input[0]]
        elif op in ("Gemm", "MatMul") and name == model.graph.output[0].name:
            s = (hi[name] - lo[name]) / 255
            params[name] = (s, int(np.clip(-128 - round(lo[name] / s), -128, 127)),
                            TensorProto.INT8)
    return params


def weights(model):
    return {i.name: numpy_helper.to_array(i).astype(np.float64) for i in model.graph.initializer}


def quantise_weights(w):
    s = np.abs(w).max() / 127
    return np.clip(np.round(w / s), -127, 127).astype(np.int8), s


def scalar(name, value, onnx_type):
    if onnx_type == TensorProto.FLOAT:
        return numpy_helper.from_array(np.array(value, dtype=np.float32), name)
    dtype = np.uint8 if onnx_type == TensorProto.UINT8 else np.int8
    return numpy_helper.from_array(np.array(value, dtype=dtype), name)


def save(graph, opset, path):
    model = helper.make_model(graph, producer_name="tpusim quantize_models.py",
                              opset_imports=[helper.make_opsetid("", opset)])
    onnx.checker.check_model(model)
    onnx.save(model, path)
    print(f"{path}: {os.path.getsize(path)} bytes")


def to_qdq(model, params, path):
    """QuantizeLinear + DequantizeLinear after the input, every relu and the logits; the
    weights and biases as int8 and int32 constants behind DequantizeLinear."""
    w = weights(model)
    nodes, inits = [], []
    renamed = {}  # float tensor -> the DequantizeLinear output its readers take

    def qdq(name):
        s, z, t = params[name]
        inits.extend([scalar(name + "/scale", s, TensorProto.FLOAT), scalar(name + "/zero", z, t)])
        nodes.append(helper.make_node("QuantizeLinear", [name, name + "/scale", name + "/zero"],
                                      [name + "/q"], name=name + "/Quantize"))
        nodes.append(helper.make_node("DequantizeLinear",
                                      [name + "/q", name + "/scale", name + "/zero"],
                                      [name + "/dq"], name=name + "/Dequantize"))
        renamed[name] = name + "/dq"

    qdq("image")
    for n in model.graph.node:
        ins = [renamed.get(i, i) for i in n.input]
        if n.op_type in ("Conv", "Gemm", "MatMul"):
            sx = params[n.input[0]][0]
            q, sw = quantise_weights(w[n.input[1]])
            inits.extend([numpy_helper.from_array(q, n.input[1] + "/int8"),
                          scalar(n.input[1] + "/scale", sw, TensorProto.FLOAT),
                          scalar(n.input[1] + "/zero", 0, TensorProto.INT8)])
            nodes.append(helper.make_node(
                "DequantizeLinear", [n.input[1] + "/int8", n.input[1] + "/scale",
                                     n.input[1] + "/zero"], [n.input[1] + "/dq"],
                name=n.input[1] + "/Dequantize"))
            ins[1] = n.input[1] + "/dq"
            if len(n.input) > 2:
                b = np.round(w[n.input[2]] / (sx * sw)).astype(np.int32)
                inits.extend([numpy_helper.from_array(b, n.input[2] + "/int32"),
                              scalar(n.input[2] + "/scale", sx * sw, TensorProto.FLOAT)])
                nodes.append(helper.make_node(
                    "DequantizeLinear", [n.input[2] + "/int32", n.input[2] + "/scale"],
                    [n.input[2] + "/dq"], name=n.input[2] + "/Dequantize"))
                ins[2] = n.input[2] + "/dq"
        nodes.append(helper.make_node(n.op_type, ins, list(n.output), name=n.name))
        nodes[-1].attribute.extend(n.attribute)
        if n.output[0] in params and n.op_type != "Flatten":
            qdq(n.output[0])
    out = model.graph.output[0]
    graph = helper.make_graph(
        nodes, "qdq_cnn", list(model.graph.input),
        [helper.make_tensor_value_info(renamed[out.name], TensorProto.FLOAT, [1, 10])], inits)
    save(graph, 14, path)


def to_qoperator(model, params, path):
    """QLinearConv (its relu in the uint8 output's saturation) and QLinearMatMul on int8 data,
    MaxPool and Flatten on int8 data, QuantizeLinear in and DequantizeLinear out."""
    w = weights(model)
    nodes, inits = [], []
    q_of = {}  # float tensor -> its int8 tensor and parameters

    def constants(name, s, z, t):
        inits.extend([scalar(name + "/scale", s, TensorProto.FLOAT), scalar(name + "/zero", z, t)])
        return [name + "/scale", name + "/zero"]

    s, z, t = params["image"]
    nodes.append(helper.make_node("QuantizeLinear", ["image"] + constants("image", s, z, t),
                                  ["image/q"], name="image/Quantize"))
    q_of["image"] = ("image/q", params["image"])
    graph_nodes = list(model.graph.node)
    for i, n in enumerate(graph_nodes):
        if n.op_type == "Relu":
            continue  # part of its QLinearConv
        x, (sx, zx, tx) = q_of[n.input[0]]
        if n.op_type in ("Conv", "Gemm", "MatMul"):
            relu = i + 1 < len(graph_nodes) and graph_nodes[i + 1].op_type == "Relu"
            y = graph_nodes[i + 1].output[0] if relu else n.output[0]
            wf = w[n.input[1]]
            if n.op_type == "Gemm" and attrs(n).get("transB", 0):
                wf = wf.T
            q, sw = quantise_weights(wf)
            inits.append(numpy_helper.from_array(q, n.input[1] + "/int8"))
            ins = [x] + constants(n.name + "/x", sx, zx, tx) + [n.input[1] + "/int8"]
            ins += constants(n.name + "/w", sw, 0, TensorProto.INT8)
            sy, zy, ty = params[y]
            ins += constants(n.name + "/y", sy, zy, ty)
            op = "QLinearConv" if n.op_type == "Conv" else "QLinearMatMul"
            if op == "QLinearConv" and len(n.input) > 2:
                b = np.round(w[n.input[2]] / (sx * sw)).astype(np.int32)
                inits.append(numpy_helper.from_array(b, n.input[2] + "/int32"))
                ins.append(n.input[2] + "/int32")
            elif len(n.input) > 2:
                raise SystemExit("QLinearMatMul takes no bias: export the head without one")
            node = helper.make_node(op, ins, [y + "/q"], name=n.name)
            if op == "QLinearConv":
                node.attribute.extend(n.attribute)
            nodes.append(node)
            q_of[y] = (y + "/q", params[y])
        else:  # MaxPool, Flatten: on the int8 values
            node = helper.make_node(n.op_type, [x], [n.output[0] + "/q"], name=n.name)
            node.attribute.extend(n.attribute)
            nodes.append(node)
            q_of[n.output[0]] = (n.output[0] + "/q", (sx, zx, tx))
    out = model.graph.output[0].name
    y, (sy, zy, ty) = q_of[out]
    nodes.append(helper.make_node("DequantizeLinear", [y] + constants("logits", sy, zy, ty),
                                  ["logits"], name="logits/Dequantize"))
    graph = helper.make_graph(
        nodes, "qop_cnn", list(model.graph.input),
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])], inits)
    save(graph, 14, path)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "models", "onnx")
    os.makedirs(out, exist_ok=True)
    tmp = os.path.join(out, "float_cnn.onnx.tmp")
    for name, head_bias, convert in (("qdq_cnn", True, to_qdq),
                                     ("qop_cnn", False, to_qoperator)):
        model = float_export(head_bias, tmp)
        lo, hi = calibrate(model)
        convert(model, activation_params(model, lo, hi), os.path.join(out, name + ".onnx"))
    os.remove(tmp)


if __name__ == "__main__":
    main()
