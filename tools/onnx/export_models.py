#!/usr/bin/python3
"""Exports the ONNX models under models/onnx/ with PyTorch's exporter (its default opset).

Run with Debian's interpreter after `apt-get install python3-torch python3-torchvision
python3-onnx`:  /usr/bin/python3 tools/onnx/export_models.py [output directory]

- resnet50.onnx, mobilenet_v2.onnx: torchvision's models (random weights, eval mode, batch 1,
  224x224), structure only (export_params=False: the weights are graph inputs with shapes and
  no values; tpusim generates them) to keep the files small.
- tiny_cnn.onnx: a small CNN with its weights (a few KB) for functional `--check` runs: conv +
  batch norm + relu, max pool, a depthwise conv + relu6, a residual add, a flatten of a 4x4 map
  and a linear layer.
- lstm_classifier.onnx: an nn.LSTM (8 features -> 16 units, batch first) over 6 steps, its last
  step's output into a linear layer of 4, with its weights (a few KB).
- attention_head.onnx: one self-attention head over 8 tokens of 16 features with its weights:
  a linear q, k, v projection split in three, softmax(q k^T) v, an output projection and a
  slice of its channels.
"""
import os
import sys

import torch
import torchvision


class TinyCnn(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(8)
        self.pool = torch.nn.MaxPool2d(2)
        self.dw = torch.nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.pw = torch.nn.Conv2d(8, 8, 1)
        self.head = torch.nn.Linear(8 * 4 * 4, 10)

    def forward(self, x):
        x = self.pool(torch.relu(self.bn1(self.conv1(x))))
        y = self.pw(torch.nn.functional.relu6(self.dw(x)))
        x = torch.relu(x + y)
        x = torch.nn.functional.max_pool2d(x, 2)
        return self.head(torch.flatten(x, 1))


class LstmClassifier(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = torch.nn.LSTM(8, 16, batch_first=True)
        self.head = torch.nn.Linear(16, 4)

    def forward(self, x):
        y, _ = self.lstm(x)
        return self.head(y[:, -1, :])


class AttentionHead(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.qkv = torch.nn.Linear(16, 48)
        self.out = torch.nn.Linear(16, 16)

    def forward(self, x):
        q, k, v = torch.split(self.qkv(x), 16, dim=-1)
        p = torch.softmax(q @ k.transpose(1, 2), dim=-1)
        return self.out(p @ v)[:, :, 4:12]


def export(model, shape, path, params):
    model.eval()
    torch.onnx.export(model, torch.randn(*shape), path, export_params=params,
                      input_names=["image"], output_names=["logits"])
    print(f"{path}: {os.path.getsize(path)} bytes")


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "models", "onnx")
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    export(torchvision.models.resnet50(), (1, 3, 224, 224), os.path.join(out, "resnet50.onnx"),
           False)
    export(torchvision.models.mobilenet_v2(), (1, 3, 224, 224),
           os.path.join(out, "mobilenet_v2.onnx"), False)
    tiny = TinyCnn()
    with torch.no_grad():  # non-trivial batch-norm statistics, so the fold is exercised
        tiny.bn1.running_mean.uniform_(-0.5, 0.5)
        tiny.bn1.running_var.uniform_(0.5, 2.0)
        tiny.bn1.weight.uniform_(0.5, 1.5)
    export(tiny, (1, 3, 16, 16), os.path.join(out, "tiny_cnn.onnx"), True)
    export(LstmClassifier(), (1, 6, 8), os.path.join(out, "lstm_classifier.onnx"), True)
    export(AttentionHead(), (1, 8, 16), os.path.join(out, "attention_head.onnx"), True)


if __name__ == "__main__":
    main()
