// Data-parallel loops for the offline tools (packing, reading datasets).
#ifndef FER_MODEL_COMMON_PARALLEL_FOR_H_
#define FER_MODEL_COMMON_PARALLEL_FOR_H_

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <thread>
#include <vector>

namespace fer {

// Runs fn(i) once for every i in [0, n) on up to `threads` threads (the
// calling thread alone when that is 1 or n is 1), and returns when all have
// run. Indices are handed out one at a time, so uneven costs (decoding times
// vary a lot between files) balance. fn must not throw and must be safe to
// call concurrently for different i.
template <typename Fn>
void ParallelFor(size_t n, int threads, Fn fn) {
  const size_t workers = std::min<size_t>(n, static_cast<size_t>(std::max(threads, 1)));
  if (workers <= 1) {
    for (size_t i = 0; i < n; ++i) fn(i);
    return;
  }
  std::atomic<size_t> next{0};
  std::vector<std::thread> pool;
  pool.reserve(workers);
  for (size_t w = 0; w < workers; ++w) {
    pool.emplace_back([&] {
      for (size_t i = next++; i < n; i = next++) fn(i);
    });
  }
  for (std::thread& t : pool) t.join();
}

}  // namespace fer

#endif  // FER_MODEL_COMMON_PARALLEL_FOR_H_
