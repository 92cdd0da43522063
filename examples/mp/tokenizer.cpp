// PyProcessParallel's example in C++: tokenize lines in worker processes, write one token per line.
//
//   Python (PyProcessParallel)                   C++ (mpthrottle)
//   def work_generator(): yield text             generator: returns std::optional<line>
//   def work_processor(line): return line.split() processor: runs in a worker process
//   def result_consumer(tokens): out.write(...)  consumer: runs here
//   process_parallel(gen, proc, cons, workers=2) mpt::process_parallel(gen, proc, cons, {...})
//
// Usage: mp_tokenizer [INPUT [OUTPUT]]   (default: three sample lines, tokens.txt)
#include <cstdio>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "mpt/pipeline.hpp"

int main(int argc, char** argv) {
  const std::vector<std::string> texts = {"this is an example text", "another text with no meaning",
                                          "some more text here"};
  std::ifstream in;
  if (argc > 1) {
    in.open(argv[1]);
    if (!in) {
      std::fprintf(stderr, "mp_tokenizer: cannot read %s\n", argv[1]);
      return 1;
    }
  }
  std::ofstream out(argc > 2 ? argv[2] : "tokens.txt");
  std::size_t next = 0;

  // work_generator: read lazily, one line at a time (memory stays bounded for any input size).
  auto work_generator = [&]() -> std::optional<std::string> {
    if (in.is_open()) {
      std::string line;
      if (std::getline(in, line)) return line;
      return std::nullopt;
    }
    if (next == texts.size()) return std::nullopt;
    return texts[next++];
  };
  // work_processor: runs in parallel, in worker processes.
  auto work_processor = [](const std::string& line) {
    std::vector<std::string> tokens;
    std::size_t a = 0;
    while (a < line.size()) {
      std::size_t b = line.find_first_of(" \t", a);
      if (b == std::string::npos) b = line.size();
      if (b > a) tokens.push_back(line.substr(a, b - a));
      a = b + 1;
    }
    return tokens;
  };
  // result_consumer: runs here, one token per line.
  std::size_t count = 0;
  auto result_consumer = [&](const std::vector<std::string>& tokens) {
    for (const auto& t : tokens)
      out << t << '\n';
    count += tokens.size();
  };

  try {
    mpt::process_parallel(work_generator, work_processor, result_consumer,
                          {.workers = 2, .max_jobs = 100, .max_results = 100});
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mp_tokenizer: %s\n", e.what());
    return 1;
  }
  // do your clean up here
  out.close();
  std::printf("%zu tokens written to %s\n", count, argc > 2 ? argv[2] : "tokens.txt");
  return 0;
}
