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
- transformer_encoder.onnx: torch.nn.TransformerEncoder of 2 nn.TransformerEncoderLayer
  (d_model 32, 4 heads, feed-forward 64, ReLU, post-norm, batch first) over 16 tokens, batch 1,
  with its weights (random, every layer its own, biases and norms non-trivial).
- bert_base_encoder.onnx: the same layer at BERT-base's sizes (12 layers, d_model 768, 12 heads,
  feed-forward 3072, GELU) over 128 tokens, structure only, as models/bert_base.json.
- unsupported/: small encoder layers the importer rejects with a one-line error naming the
  node: an additive attention mask (encoder_mask.onnx), dropout exported in training mode
  (encoder_training.onnx) and batch 2 (encoder_batch2.onnx).
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


class MaskedEncoderLayer(torch.nn.Module):
    def __init__(self, layer, tokens):
        super().__init__()
        self.layer = layer
        self.register_buffer("mask", torch.nn.Transformer.generate_square_subsequent_mask(tokens))

    def forward(self, x):
        return self.layer(x, src_mask=self.mask)


def encoder(d_model, heads, ff, layers, activation="relu"):
    layer = torch.nn.TransformerEncoderLayer(d_model, heads, dim_feedforward=ff,
                                             activation=activation, batch_first=True)
    # Nested tensors are a fast path for padded batches that the exporter does not take.
    return torch.nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)


def randomise(model):
    # TransformerEncoder deep-copies one layer: give every layer its own weights, and the
    # biases and norms values other than 0 and 1 (else the exporter shares equal initializers).
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.uniform_(0.5, 1.5)
            else:
                p.uniform_(-0.3, 0.3) if p.dim() > 1 else p.uniform_(-0.2, 0.2)


def export(model, shape, path, params, training=False):
    model.train(training)
    mode = torch.onnx.TrainingMode.TRAINING if training else torch.onnx.TrainingMode.EVAL
    torch.onnx.export(model, torch.randn(*shape), path, export_params=params, training=mode,
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
    small = encoder(32, 4, 64, 2)
    randomise(small)
    export(small, (1, 16, 32), os.path.join(out, "transformer_encoder.onnx"), True)
    export(encoder(768, 12, 3072, 12, "gelu"), (1, 128, 768),
           os.path.join(out, "bert_base_encoder.onnx"), False)
    bad = os.path.join(out, "unsupported")
    os.makedirs(bad, exist_ok=True)
    layer = encoder(16, 2, 32, 1).layers[0]
    export(MaskedEncoderLayer(layer, 8), (1, 8, 16), os.path.join(bad, "encoder_mask.onnx"), True)
    export(layer, (1, 8, 16), os.path.join(bad, "encoder_training.onnx"), True, training=True)
    export(layer, (2, 8, 16), os.path.join(bad, "encoder_batch2.onnx"), True)


if __name__ == "__main__":
    main()
