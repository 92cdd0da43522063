// Replays fuzz corpora through a libFuzzer target's entry point, built with the normal compiler
// (no libFuzzer): every regular file in each directory argument (or each file argument) is fed
// once to LLVMFuzzerTestOneInput, in name order. A target reports a bad input by crashing or
// aborting, which fails the test; so does an argument with no input at all (exit 2: an empty or
// missing corpus must not pass silently). Linked with one tests/fuzz/fuzz_<target>.cpp each.
//
// usage: fuzz_replay_<target> CORPUS_DIR_OR_FILE...
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <system_error>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {

namespace fs = std::filesystem;

std::vector<fs::path> inputs_of(const fs::path& arg) {
  std::vector<fs::path> out;
  std::error_code ec;
  if (fs::is_regular_file(arg, ec)) return {arg};
  for (const auto& e : fs::directory_iterator(arg, ec))
    if (e.is_regular_file()) out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR_OR_FILE...\n", argv[0]);
    return 2;
  }
  int replayed = 0;
  for (int i = 1; i < argc; ++i) {
    const auto inputs = inputs_of(argv[i]);
    if (inputs.empty()) {
      std::fprintf(stderr, "%s: no input in %s\n", argv[0], argv[i]);
      return 2;
    }
    for (const fs::path& p : inputs) {
      std::ifstream in(p, std::ios::binary);
      const std::vector<char> bytes((std::istreambuf_iterator<char>(in)),
                                    std::istreambuf_iterator<char>());
      std::printf("%s (%zu bytes)\n", p.c_str(), bytes.size());
      std::fflush(stdout);
      LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
      ++replayed;
    }
  }
  // fuzz_segment_open works in a directory of its own, /dev/shm/mpt-fuzz-<pid>: leave nothing.
  std::error_code ec;
  fs::remove_all("/dev/shm/mpt-fuzz-" + std::to_string(getpid()), ec);
  std::printf("%d inputs replayed, none crashed\n", replayed);
  return 0;
}
