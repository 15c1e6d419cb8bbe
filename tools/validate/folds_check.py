#!/usr/bin/env python3
"""Checks issue 6's "never behind the classic schedule" rule on conv layers nobody published.

For each array size n, runs SCALE-Sim topology CSVs (given, or random conv layers drawn from a
seed) on a config scaled to n x n with ideal memory, and compares every layer's compute cycles
with SCALE-Sim's un-overlapped schedule: ceil(K/R) x ceil(N/C) x (2R + C + M - 2), where
K = Fh x Fw x C_in and M = output pixels (tests/schedule_test.cc checks the published
topologies the same way). Prints the layers behind it and exits 1 if there are any.

  python3 tools/validate/folds_check.py --seeds 1 2 --count 60
  python3 tools/validate/folds_check.py models/scalesim/scalesim_alexnet.csv --sizes 128
"""
import argparse
import json
import math
import os
import random
import subprocess
import sys
import tempfile

HEADER = "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\n"


def random_layers(seed, count):
    rng = random.Random(seed)
    layers = []
    for i in range(count):
        h = rng.choice([9, 17, 33, 56, 60, 112])
        k = rng.choice([1, 2, 3, 5, 7])
        c = rng.choice([1, 2, 3, 4, 6, 8, 16, 24, 40, 64, 100, 130, 256])
        n = rng.choice([8, 16, 33, 64, 96, 130, 257, 512])
        s = rng.choice([1, 1, 2, 3, 4])
        layers.append((f"s{seed}_{i}", h, h, min(k, h), min(k, h), c, n, s))
    return layers


def read_csv(path):
    layers = []
    with open(path) as f:
        next(f)
        for line in f:
            fields = [x.strip() for x in line.split(",") if x.strip()]
            if len(fields) >= 8:
                layers.append((fields[0], *map(int, fields[1:8])))
    return layers


def folds(layer, n):
    _, h, w, fh, fw, c, nf, s = layer
    m = ((h - fh) // s + 1) * ((w - fw) // s + 1)
    return m, math.ceil(fh * fw * c / n) * math.ceil(nf / n) * (3 * n + m - 2)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("csv", nargs="*", help="SCALE-Sim topology CSVs (conv form)")
    ap.add_argument("--seeds", type=int, nargs="*", default=[], help="random layer sets")
    ap.add_argument("--count", type=int, default=60, help="layers per seed")
    ap.add_argument("--sizes", type=int, nargs="+", default=[32, 128, 256])
    ap.add_argument("--tpusim", default="build/tpusim")
    ap.add_argument("--config", default=None, help="config JSON (default: the built-in one)")
    args = ap.parse_args()
    sets = [(p, read_csv(p)) for p in args.csv]
    sets += [(f"seed {s}", random_layers(s, args.count)) for s in args.seeds]
    if not sets:
        ap.error("give topology CSVs or --seeds")
    behind = checked = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, layers in sets:
            model = os.path.join(tmp, "layers.csv")
            with open(model, "w") as f:
                f.write(HEADER + "".join(", ".join(map(str, l)) + ",\n" for l in layers))
            for n in args.sizes:
                report = os.path.join(tmp, "report.json")
                cmd = [args.tpusim, "run", "--timing-only", "--model", model, "--json", report,
                       "--set", f"array.rows={n}", "--set", f"array.cols={n}",
                       "--set", f"vector.lanes={n}", "--set", "hbm.preset=ideal"]
                if args.config:
                    cmd += ["--config", args.config]
                run = subprocess.run(cmd, capture_output=True, text=True)
                if run.returncode != 0:
                    sys.exit(f"{name} on {n}x{n}: tpusim failed: {run.stderr.strip()}")
                with open(report) as f:
                    rows = json.load(f)["layers"]
                for layer, row in zip(layers, rows):
                    m, bound = folds(layer, n)
                    checked += 1
                    if row["compute_cycles"] > bound:
                        behind += 1
                        print(f"{name} {n}x{n} {layer[0]}: {layer[1]}x{layer[2]}x{layer[5]}, "
                              f"{layer[3]}x{layer[4]} stride {layer[7]} -> {layer[6]} (M {m}): "
                              f"{row['compute_cycles']} > {bound} "
                              f"({row['compute_cycles'] / bound:.3f}x)")
    print(f"{behind} of {checked} layer runs behind the classic schedule")
    sys.exit(1 if behind else 0)


if __name__ == "__main__":
    main()
