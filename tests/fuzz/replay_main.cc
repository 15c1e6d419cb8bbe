// Replays fuzz inputs without libFuzzer: every file under the directories (or the files) given
// goes through the target's LLVMFuzzerTestOneInput once. A finding crashes or aborts the
// process, which fails the test; so does an argument that names nothing, or no input at all.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

int main(int argc, char* argv[]) {
  namespace fs = std::filesystem;
  std::vector<fs::path> files;
  for (int i = 1; i < argc; ++i) {
    const fs::path arg = argv[i];
    if (fs::is_regular_file(arg)) {
      files.push_back(arg);
    } else if (fs::is_directory(arg)) {
      for (const fs::directory_entry& e : fs::recursive_directory_iterator(arg)) {
        if (e.is_regular_file()) files.push_back(e.path());
      }
    } else {
      std::cerr << "replay: error: " << arg.string() << ": no such file or directory\n";
      return 1;
    }
  }
  if (files.empty()) {
    std::cerr << "replay: error: no inputs (usage: " << argv[0] << " DIR_OR_FILE...)\n";
    return 1;
  }
  std::sort(files.begin(), files.end());
  for (const fs::path& f : files) {
    std::ifstream in(f, std::ios::binary);
    if (!in) {
      std::cerr << "replay: error: " << f.string() << ": cannot open\n";
      return 1;
    }
    const std::string bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    // Named before it runs, so the output of a crash says which input it was.
    std::cout << f.string() << std::endl;
    LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
  }
  std::cout << files.size() << " inputs replayed, no finding\n";
  return 0;
}
