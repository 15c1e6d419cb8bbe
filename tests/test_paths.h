// Where this build's source tree and tpusim binary are. Only test_main.cc compiles the absolute
// paths in, so every other test object is the same in every checkout and ccache shares it
// between worktrees.
#pragma once

#include <string>

namespace tpu::test_paths {
const std::string& source_dir();
const std::string& binary();
}  // namespace tpu::test_paths
