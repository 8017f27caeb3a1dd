// Runs a test's body on several threads at once, for the tests that prove a
// class safe under concurrent use.
#ifndef FER_TESTS_SUPPORT_PARALLEL_FOR_H_
#define FER_TESTS_SUPPORT_PARALLEL_FOR_H_

#include <functional>
#include <thread>
#include <vector>

namespace fer {
namespace test_support {

// Calls body(0) ... body(count - 1), each on its own thread, all started
// before any is joined; returns once every call has returned.
inline void ParallelFor(int count, const std::function<void(int)>& body) {
  std::vector<std::thread> threads;
  threads.reserve(count);
  for (int i = 0; i < count; ++i) threads.emplace_back(body, i);
  for (std::thread& thread : threads) thread.join();
}

}  // namespace test_support
}  // namespace fer

#endif  // FER_TESTS_SUPPORT_PARALLEL_FOR_H_
