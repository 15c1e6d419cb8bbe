#pragma once
// A sweep on a Slurm cluster: an sbatch job array whose task i runs shard i/N of the sweep
// (`tpusim sweep --shard i/N --resume` into DIR/shard-i), and a merge job that joins the shards
// into DIR once every task has succeeded. Because the shards resume, resubmitting the array
// after a failure or a preemption redoes only the items not yet recorded.
// Usage and layout: configs/README.md, "Sweeps on Slurm".
#include <string>
#include <vector>

namespace tpu {

struct SlurmSweepOptions {
  std::string tpusim;      // absolute path of the binary every job runs
  std::string sweep_file;  // absolute
  std::string out_dir;     // absolute
  unsigned shards = 1;     // array tasks
  unsigned jobs = 1;       // simulations at once per task, which is also its --cpus-per-task
  std::vector<std::string> sbatch_options;  // given to both jobs, e.g. --partition=long
};

struct SlurmScripts {
  std::string array, merge;  // the two sbatch scripts, in out_dir
};

// Writes out_dir/sweep.sbatch and out_dir/merge.sbatch (each atomically) and creates
// out_dir/logs, where the jobs write their output. One-line errors for a value that no
// #SBATCH line can quote (one holding both quote characters, or a newline).
SlurmScripts write_slurm_scripts(const SlurmSweepOptions& options);

struct SlurmJobs {
  std::string array_id, merge_id;
};

// Submits the array with `sbatch --parsable` and the merge with
// `--dependency=afterok:<array id>`. Throws a one-line error when sbatch is not on PATH or
// fails (with the last line it printed to stderr).
SlurmJobs submit_slurm_scripts(const SlurmScripts& scripts);

// `word` quoted for a POSIX shell, for commands printed for the user and for the scripts.
std::string shell_quote(const std::string& word);

}  // namespace tpu
