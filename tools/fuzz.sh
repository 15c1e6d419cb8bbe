#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz (clang, ASan + UBSan) in build-fuzz and runs each
# one for SECONDS (default 30, what CI runs) on top of its seed corpus and regression inputs.
#   tools/fuzz.sh [SECONDS] [TARGET...]      e.g. tools/fuzz.sh 600 model compile_sim
# Extra libFuzzer flags come from TPUSIM_FUZZ_FLAGS (e.g. "-runs=1000000"). New inputs go to
# build-fuzz/corpus/TARGET, findings (crash-*, leak-*, timeout-*, oom-*) to
# build-fuzz/findings/TARGET; the script exits 1 when any target finds something.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-30}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(config model scalesim assembly program compile_sim)

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
install() {
  echo "tpusim: installing $*"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}
command -v clang++ >/dev/null || install clang
# libFuzzer's runtime is only a recommendation of Debian's clang.
rt="libclang-rt-$(clang++ -dumpversion | cut -d. -f1)-dev"
dpkg-query -W -f='${Status}' "$rt" 2>/dev/null | grep -q "install ok installed" || install "$rt"

cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTPUSIM_FUZZ=ON -DTPUSIM_TESTS=OFF >/dev/null
cmake --build build-fuzz -j2 --target "${targets[@]/#/fuzz_}"

found=0
for t in "${targets[@]}"; do
  corpus=build-fuzz/corpus/$t findings=build-fuzz/findings/$t log=build-fuzz/fuzz_$t.log
  mkdir -p "$corpus" "$findings"
  # compile_sim reads models in both front ends' formats.
  dict=build-fuzz/$t.dict
  case $t in
    compile_sim) cat tests/fuzz/model.dict tests/fuzz/scalesim.dict >"$dict" ;;
    *) cp "tests/fuzz/$t.dict" "$dict" ;;
  esac
  inputs=("$corpus" "tests/fuzz/corpus/$t")
  [ -d "tests/fuzz/regressions/$t" ] && inputs+=("tests/fuzz/regressions/$t")
  start=$(date +%s)
  status=0
  # shellcheck disable=SC2086  # the extra flags are words
  "build-fuzz/tests/fuzz/fuzz_$t" -max_total_time="$seconds" -timeout=60 -rss_limit_mb=2048 \
    -dict="$dict" -artifact_prefix="$findings/" -print_final_stats=1 ${TPUSIM_FUZZ_FLAGS:-} \
    "${inputs[@]}" >"$log" 2>&1 || status=$?
  elapsed=$(( $(date +%s) - start ))
  runs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | grep -o '[0-9]*$' || true)
  last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
  if [ "$status" -eq 0 ]; then
    echo "fuzz $t: ok, ${runs:-?} executions in ${elapsed} s; last status: ${last}"
  else
    echo "fuzz $t: FINDING (exit $status) after ${elapsed} s, input in $findings/; log tail:"
    tail -40 "$log"
    found=1
  fi
done
exit $found
