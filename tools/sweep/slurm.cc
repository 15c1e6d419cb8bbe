#include "tools/sweep/slurm.h"

#include <filesystem>
#include <optional>
#include <stdexcept>

#include "tools/run/child.h"
#include "tools/run/output_file.h"

namespace tpu {
namespace {

namespace fs = std::filesystem;

[[noreturn]] void fail(const std::string& what) { throw std::runtime_error(what); }

// One word of an #SBATCH line. sbatch splits those lines at blanks and drops the quotes around
// a "..." or '...' word (both tried with Slurm 22.05), with no escape character: a value
// holding both quote characters, or a newline, cannot be written.
std::string sbatch_word(const std::string& word, const std::string& what) {
  if (word.find('\n') == std::string::npos) {
    if (word.find('"') == std::string::npos) return '"' + word + '"';
    if (word.find('\'') == std::string::npos) return '\'' + word + '\'';
  }
  fail(what + " '" + word + "' cannot be written in an #SBATCH line: it holds both quote " +
       "characters or a newline");
}

// A job's --output: Slurm expands %-patterns in it, %% being a plain %.
std::string output_option(const std::string& dir, const std::string& name) {
  std::string escaped;
  for (char c : dir) escaped += c == '%' ? std::string("%%") : std::string(1, c);
  return "--output=" + escaped + "/" + name;
}

std::string header(const std::string& job_name, const std::vector<std::string>& lines,
                   const SlurmSweepOptions& options) {
  std::string text = "#!/bin/bash\n#SBATCH --job-name=" + job_name + "\n";
  for (const std::string& l : lines) text += "#SBATCH " + l + "\n";
  for (const std::string& o : options.sbatch_options)
    text += "#SBATCH " + sbatch_word(o, "--sbatch-option") + "\n";
  return text;
}

// `sbatch --parsable ARGS SCRIPT` and the job id it prints ("id" or "id;cluster").
std::string sbatch(const std::vector<std::string>& args, const std::string& script) {
  std::vector<std::string> argv = {"sbatch", "--parsable"};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.push_back(script);
  const std::optional<ProgramOutcome> finished = run_program(argv);
  if (!finished)
    fail("--submit needs sbatch, which is not on PATH (is Slurm installed here? without "
         "--submit the scripts are written and the commands to submit them printed)");
  const ProgramOutcome& f = *finished;
  if (f.status != 0) {
    const std::string why = last_line(f.err);
    fail("sbatch " + script + " failed (" +
         (f.status < 0 ? std::string("killed") : "exit status " + std::to_string(f.status)) +
         ")" + (why.empty() ? "" : ": " + why));
  }
  const std::string line = last_line(f.out);
  const std::string id = line.substr(0, line.find(';'));
  if (id.empty() || id.find_first_not_of("0123456789") != std::string::npos)
    fail("sbatch " + script + " printed no job id (it printed '" + line + "')");
  return id;
}

}  // namespace

std::string shell_quote(const std::string& word) {
  std::string quoted = "'";
  for (char c : word) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

SlurmScripts write_slurm_scripts(const SlurmSweepOptions& options) {
  if (options.shards < 1) fail("a Slurm sweep needs at least 1 array task");
  const fs::path out(options.out_dir);
  const std::string logs = (out / "logs").string();
  std::error_code ec;
  fs::create_directories(logs, ec);
  if (!fs::is_directory(logs))
    fail(logs + ": cannot create the log directory (" + ec.message() + ")");
  const std::string n = std::to_string(options.shards);
  const std::string last = std::to_string(options.shards - 1);
  const std::string tpusim = shell_quote(options.tpusim);
  const std::string out_q = shell_quote(options.out_dir);

  SlurmScripts scripts{(out / "sweep.sbatch").string(), (out / "merge.sbatch").string()};
  const std::string array =
      header("tpusim-sweep",
             {"--array=0-" + last, "--cpus-per-task=" + std::to_string(options.jobs),
              sbatch_word(output_option(logs, "shard-%a.log"), "the output directory")},
             options) +
      "# Task i runs shard i/" + n + " into shard-i; the shards resume, so resubmitting this\n"
      "# script redoes only the items not yet recorded.\n" +
      tpusim + " sweep " + shell_quote(options.sweep_file) + " --out " + out_q +
      "/shard-\"$SLURM_ARRAY_TASK_ID\" --shard \"$SLURM_ARRAY_TASK_ID\"/" + n + " --jobs " +
      std::to_string(options.jobs) + " --resume\n" +
      "status=$?\n"
      "# 3: the shard is complete but recorded some items as failed; the merge joins it too.\n"
      "if [ \"$status\" -eq 3 ]; then exit 0; fi\n"
      "exit \"$status\"\n";
  // kill-on-invalid-dep: when a shard fails, the merge is cancelled instead of waiting forever.
  const std::string merge =
      header("tpusim-merge",
             {"--kill-on-invalid-dep=yes",
              sbatch_word(output_option(logs, "merge.log"), "the output directory")},
             options) +
      "exec " + tpusim + " merge " + out_q + "/shard-{0.." + last + "} --out " + out_q + "\n";
  write_output_file(scripts.array, array);
  write_output_file(scripts.merge, merge);
  return scripts;
}

SlurmJobs submit_slurm_scripts(const SlurmScripts& scripts) {
  SlurmJobs jobs;
  jobs.array_id = sbatch({}, scripts.array);
  try {
    jobs.merge_id = sbatch({"--dependency=afterok:" + jobs.array_id}, scripts.merge);
  } catch (const std::exception& e) {
    fail(std::string(e.what()) + "; the array job " + jobs.array_id +
         " was submitted (scancel " + jobs.array_id + " cancels it)");
  }
  return jobs;
}

}  // namespace tpu
