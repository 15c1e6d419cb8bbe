#!/usr/bin/env bash
# Re-exports models/onnx/ with tools/onnx/export_models.py into a temporary directory and runs
# the fresh exports: the structure-only ResNet-50, MobileNetV2 and BERT-base encoder compile,
# the tiny CNN, the LSTM classifier, the attention head and the transformer encoder with their
# (new random) weights pass --check in bf16 and int8, tools/onnx/quantize_models.py's QDQ and
# QOperator graphs pass --check, and the unsupported encoder variants fail with one line naming
# the node.
# Skipped (exit 77) without Debian's python3-torch, python3-torchvision and python3-onnx, unless
# TPUSIM_REQUIRE_PYTHON is set (CI).
# Usage: export_test.sh <tpusim binary>
set -euo pipefail
tpusim="$1"
root="$(cd "$(dirname "$0")/../.." && pwd)"
if ! /usr/bin/python3 -c "import torch, torchvision, onnx" 2>/dev/null; then
  # CI installs them and sets TPUSIM_REQUIRE_PYTHON, so there a skip cannot pass unseen.
  if [ -n "${TPUSIM_REQUIRE_PYTHON:-}" ]; then
    echo "/usr/bin/python3 lacks torch, torchvision or onnx (TPUSIM_REQUIRE_PYTHON is set)"
    exit 1
  fi
  echo "skipped: /usr/bin/python3 lacks torch, torchvision or onnx"
  exit 77
fi
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
/usr/bin/python3 "$root/tools/onnx/export_models.py" "$out"
for m in resnet50 mobilenet_v2 bert_base_encoder; do
  "$tpusim" compile --model "$out/$m.onnx" -o "$out/$m.s" >/dev/null
done
for m in tiny_cnn lstm_classifier attention_head transformer_encoder; do
  "$tpusim" run -q --check --model "$out/$m.onnx"
  "$tpusim" run -q --check --dtype int8 --model "$out/$m.onnx"
done
/usr/bin/python3 "$root/tools/onnx/quantize_models.py" "$out"
for m in qdq_cnn qop_cnn; do
  "$tpusim" run -q --check --model "$out/$m.onnx"
done
# The unsupported encoder variants fail with one line naming the node.
for m in encoder_mask:Add_2 encoder_training:Dropout encoder_batch2:Transpose; do
  if msg="$("$tpusim" compile --model "$out/unsupported/${m%%:*}.onnx" -o "$out/x.s" 2>&1)"; then
    echo "${m%%:*}: imported, expected an error"; exit 1
  fi
  if [[ "$msg" != *"/self_attn/${m##*:}' ("* || "$msg" == *$'\n'* ]]; then
    echo "${m%%:*}: unexpected error: $msg"; exit 1
  fi
done
