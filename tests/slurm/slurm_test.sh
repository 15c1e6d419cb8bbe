#!/usr/bin/env bash
# A real one-node Slurm cluster on this machine runs `tpusim sweep --slurm --submit`; the merged
# result must equal a local `tpusim sweep` of the same file.
#   tests/slurm/slurm_test.sh TPUSIM_BINARY
# Without Slurm installed (Debian's slurm-wlm and munge; .ci/run installs them) it skips
# (exit 77), or fails when TPUSIM_REQUIRE_SLURM=1.
#
# The cluster, everything in one temporary directory and found by SLURM_CONF (tried in a Debian
# 12 container, Slurm 22.05, as root):
# - munged on its own socket and key, and AuthInfo=socket=... pointing Slurm at it: the
#   system's munged (if any) is left alone. munged refuses a socket directory that others
#   cannot search, hence chmod 755 on the mktemp directory.
# - slurmctld and slurmd daemonise themselves, with pid and log files in the directory, as root
#   (slurmd starts each job as its owner), on free ports above 20000 (a system Slurm keeps
#   6817/6818); the node is this host (`hostname -s`, NodeAddr 127.0.0.1, CPUs from nproc).
# - No cgroups: ProctrackType=proctrack/linuxproc, TaskPlugin=task/none,
#   JobAcctGatherType=jobacct_gather/none; no accounting daemon. With proctrack/cgroup and
#   task/cgroup slurmd starts, but each job step fails ("cgroup namespace 'freezer' not
#   mounted") and the job is still reported COMPLETED, without having run.
# - SelectType=select/cons_tres with CR_CPU, so array tasks of one CPU share the node.
set -euo pipefail

tpusim=${1:?usage: slurm_test.sh TPUSIM_BINARY}
source_dir=$(cd "$(dirname "$0")/../.." && pwd)
say() { echo "slurm_test: $*"; }
unavailable() {  # skip, or fail when Slurm is required
  if [ "${TPUSIM_REQUIRE_SLURM:-}" = 1 ]; then say "FAILED: $*"; exit 1; fi
  say "skipped: $* (TPUSIM_REQUIRE_SLURM=1 makes this a failure)"
  exit 77
}

programs=(munged slurmctld slurmd sbatch sinfo squeue scontrol scancel)
missing_programs() {
  local p
  for p in "${programs[@]}"; do command -v "$p" >/dev/null || { echo "$p"; return; }; done
}
if [ -n "$(missing_programs)" ]; then
  unavailable "Slurm is not installed ($(missing_programs) missing; apt-get install slurm-wlm munge)"
fi
# The daemons run as root; a user with sudo runs the whole test so.
if [ "$(id -u)" -ne 0 ]; then
  sudo -n true 2>/dev/null || unavailable "the Slurm daemons need root or sudo"
  exec sudo -n -E "$0" "$@"
fi

start=$(date +%s)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tpusim_slurm.XXXXXX")
chmod 755 "$tmp"
export SLURM_CONF=$tmp/slurm.conf

stop_pid_file() {  # TERM, then KILL after 10 s
  local file=$1 pid i
  [ -s "$file" ] || return 0
  pid=$(cat "$file")
  kill "$pid" 2>/dev/null || return 0
  for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}
cleanup() {
  local status=$? i
  trap '' INT TERM  # a second signal must not cut the cleanup short
  if [ -s "$tmp/slurmctld.pid" ]; then
    # Jobs first, so that no slurmstepd outlives its slurmd.
    scancel --quiet --full $(squeue -h -o %A 2>/dev/null) 2>/dev/null || true
    for i in $(seq 50); do [ -z "$(squeue -h 2>/dev/null)" ] && break; sleep 0.2; done
  fi
  stop_pid_file "$tmp/slurmd.pid"
  stop_pid_file "$tmp/slurmctld.pid"
  stop_pid_file "$tmp/munged.pid"
  if [ "$status" -ne 0 ] && [ "$status" -ne 77 ]; then
    for log in "$tmp"/log/*.log "$tmp"/out*/logs/*.log; do
      [ -f "$log" ] && { echo "--- $log"; tail -n 20 "$log"; }
    done
  fi
  rm -rf "$tmp"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Two free ports: nothing answers a connection to them.
free_port() {
  local port=$1
  while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
  echo "$port"
}
base=$((20000 + RANDOM % 20000))
ctld_port=$(free_port "$base")
slurmd_port=$(free_port $((ctld_port + 1)))
node=$(hostname -s)

mkdir -p "$tmp/state" "$tmp/spool" "$tmp/log"
head -c 1024 /dev/urandom >"$tmp/munge.key"
chmod 600 "$tmp/munge.key"
munged --socket="$tmp/munge.socket" --key-file="$tmp/munge.key" --pid-file="$tmp/munged.pid" \
  --log-file="$tmp/log/munged.log" --seed-file="$tmp/munged.seed"

cat >"$SLURM_CONF" <<CONF
ClusterName=tpusimtest
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$tmp/munge.socket
StateSaveLocation=$tmp/state
SlurmdSpoolDir=$tmp/spool
SlurmctldPidFile=$tmp/slurmctld.pid
SlurmdPidFile=$tmp/slurmd.pid
SlurmctldLogFile=$tmp/log/slurmctld.log
SlurmdLogFile=$tmp/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
ReturnToService=2
MinJobAge=300
NodeName=$node NodeAddr=127.0.0.1 CPUs=$(nproc) State=UNKNOWN
PartitionName=test Nodes=$node Default=YES MaxTime=INFINITE State=UP
CONF
slurmctld
slurmd -N "$node"

for i in $(seq 150); do
  [ "$(sinfo -h -n "$node" -o %T 2>/dev/null)" = idle ] && break
  [ "$i" -eq 150 ] && { say "FAILED: the node did not become idle in 30 s"; sinfo || true; exit 1; }
  sleep 0.2
done
say "cluster up in $(($(date +%s) - start)) s (ports $ctld_port, $slurmd_port)"

# 2 axes x 2 values x 1 model = 4 items in 3 shards; the output path has a space and a quote.
cat >"$tmp/sweep.json" <<JSON
{"base": "$source_dir/configs/default.json", "models": ["$source_dir/models/mlp.json"],
 "axes": {"array.rows": [32, 64], "hbm.preset": ["ideal", "hbm2"]}}
JSON
out="$tmp/out dir's"
"$tpusim" sweep "$tmp/sweep.json" --out "$out" --slurm --shards 3 --jobs 1 --submit \
  | tee "$tmp/submitted.txt"
merge_id=$(sed -n 's/.* merge job \([0-9]*\) .*/\1/p' "$tmp/submitted.txt")
[ -n "$merge_id" ] || { say "FAILED: no merge job id in the output above"; exit 1; }

"$tpusim" sweep "$tmp/sweep.json" --out "$tmp/local" --jobs 2 >"$tmp/local.log" 2>&1 ||
  { cat "$tmp/local.log"; say "FAILED: the local sweep"; exit 1; }

for i in $(seq 600); do
  state=$(scontrol show job "$merge_id" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p')
  case "$state" in
    COMPLETED) break ;;
    PENDING|CONFIGURING|RUNNING|COMPLETING) ;;
    *) say "FAILED: merge job $merge_id ended as '$state'"; squeue || true; exit 1 ;;
  esac
  if [ "$i" -eq 600 ]; then
    say "FAILED: merge job $merge_id not done in 60 s"; squeue || true; exit 1
  fi
  sleep 0.1
done

if ! cmp "$tmp/local/summary.csv" "$out/summary.csv"; then
  say "FAILED: summary.csv differs from the local sweep's"
  diff "$tmp/local/summary.csv" "$out/summary.csv" || true
  exit 1
fi
if ! cmp <(sort "$tmp/local/results.jsonl") <(sort "$out/results.jsonl"); then
  say "FAILED: results.jsonl lines differ from the local sweep's"
  exit 1
fi
lines=$(wc -l <"$out/results.jsonl")
[ "$lines" -eq 4 ] || { say "FAILED: $lines result lines, expected 4"; exit 1; }
say "passed: 4 items in 3 shards merged equal the local sweep ($(($(date +%s) - start)) s)"
