// mpt_pipeline_bench — process_parallel items per second on the PyProcessParallel tokenizer job:
// N short strings (cycling through a few sentences), each split into tokens by a worker, the
// consumer counting tokens. bench/peers/pool_imap.py runs the same job with Python's Pool.imap.
//
// Usage: mpt_pipeline_bench [--items N] [--workers W] [--chunk C] [--json]
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mpt/pipeline.hpp"

namespace {

const char* const kTexts[] = {"this is an example text", "another text with no meaning",
                              "some more text here", "tokenize me please", "a b c d e f"};

std::vector<std::string_view> split(std::string_view line) {
  std::vector<std::string_view> tokens;
  std::size_t a = 0;
  while (a < line.size()) {
    std::size_t b = line.find(' ', a);
    if (b == std::string_view::npos) b = line.size();
    if (b > a) tokens.push_back(line.substr(a, b - a));
    a = b + 1;
  }
  return tokens;
}

// Peak resident set of this process image in KiB (VmHWM: unlike ru_maxrss, reset by exec, so a
// large launcher such as python does not show through).
long peak_rss_kib() {
  FILE* f = std::fopen("/proc/self/status", "r");
  if (!f) return -1;
  char line[256];
  long kib = -1;
  while (std::fgets(line, sizeof line, f))
    if (std::strncmp(line, "VmHWM:", 6) == 0) kib = std::atol(line + 6);
  std::fclose(f);
  return kib;
}

}  // namespace

int main(int argc, char** argv) {
  long long items = 1'000'000;
  int workers = 2;
  unsigned chunk = 0;
  bool json = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--items" && i + 1 < argc)
      items = std::atoll(argv[++i]);
    else if (a == "--workers" && i + 1 < argc)
      workers = std::atoi(argv[++i]);
    else if (a == "--chunk" && i + 1 < argc)
      chunk = static_cast<unsigned>(std::atoi(argv[++i]));
    else if (a == "--json")
      json = true;
    else {
      const bool help = a == "--help" || a == "-h";
      std::fprintf(help ? stdout : stderr,
                   "usage: mpt_pipeline_bench [--items N] [--workers W] [--chunk C] "
                   "[--json]\n");
      return help ? 0 : 2;
    }
  }
  mpt::ParallelOptions opts;
  opts.workers = workers;
  if (chunk) opts.chunk_size = chunk;
  long long generated = 0, tokens = 0, results = 0;
  const auto t0 = std::chrono::steady_clock::now();
  try {
    mpt::process_parallel(
        [&]() -> std::optional<std::string_view> {
          if (generated == items) return std::nullopt;
          return std::string_view(kTexts[generated++ % 5]);
        },
        [](std::string_view line) { return split(line); },
        [&](const std::vector<std::string_view>& t) {
          tokens += static_cast<long long>(t.size());
          ++results;
        },
        opts);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mpt_pipeline_bench: %s\n", e.what());
    return 1;
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  rusage kids{};
  getrusage(RUSAGE_CHILDREN, &kids);  // the workers (forks of this image: exec is not involved)
  const long parent_kib = peak_rss_kib();
  const long long expect_tokens = items / 5 * (5 + 5 + 4 + 3 + 6);
  if (results != items || (items % 5 == 0 && tokens != expect_tokens)) {
    std::fprintf(stderr, "mpt_pipeline_bench: wrong totals (%lld results, %lld tokens)\n", results,
                 tokens);
    return 1;
  }
  const double rate = static_cast<double>(items) / s;
  if (json) {
    std::printf(
        "{\"schema\": 1, \"impl\": \"mpt.process_parallel\", \"items\": %lld, \"workers\": %d, "
        "\"chunk_size\": %u, \"tokens\": %lld, \"seconds\": %.6f, \"items_per_sec\": %.1f, "
        "\"parent_max_rss_kib\": %ld, \"workers_max_rss_kib\": %ld}\n",
        items, workers, opts.chunk_size, tokens, s, rate, parent_kib, kids.ru_maxrss);
  } else {
    std::printf(
        "items %lld  workers %d  chunk %u  tokens %lld  %.3f s  %.0f items/s  "
        "max RSS parent %ld KiB, workers %ld KiB\n",
        items, workers, opts.chunk_size, tokens, s, rate, parent_kib, kids.ru_maxrss);
  }
  return 0;
}
