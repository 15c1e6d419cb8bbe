#!/usr/bin/env bash
# Issue 6's "never behind the classic schedule" rule (and the GEMM bound) on layers nobody
# published: tools/validate/folds_check.py over every set tools/validate/README.md lists, at
# 32 x 32, 128 x 128 and 256 x 256 with ideal memory, and on 40 seeds of random convs and 30 of
# random GEMMs (14,907 layer runs, about 3 minutes on 2 idle cores). The runs
# tools/validate/known_behind.txt lists may stay behind up to the ratio it gives, no further.
# It runs only with TPUSIM_RUN_LONG=1 (`TPUSIM_RUN_LONG=1 ctest --test-dir build -L long`);
# else it skips (77).
set -uo pipefail
[ "${TPUSIM_RUN_LONG:-0}" = 1 ] || { echo "skipped: set TPUSIM_RUN_LONG=1 to run"; exit 77; }
tpusim=$1
root=$(cd "$(dirname "$0")/../.." && pwd)
check="python3 $root/tools/validate/folds_check.py --tpusim $tpusim --known $root/tools/validate/known_behind.txt"
failed=0
run() {
  echo "== folds_check $*"
  $check "$@" || failed=1
}
run "$root/tools/validate/published_net_convs.csv"
run "$root/tools/validate/random_wide_convs.csv"
run "$root/tools/validate/published_net_gemms.csv"
run "$root"/models/scalesim/scalesim_{resnet50,alexnet,transformer,gpt2}.csv
run --seeds $(seq 1 40) --count 60
run --gemm-seeds $(seq 1 30) --count 60
exit $failed
