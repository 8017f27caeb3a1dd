// A fixed set of threads that run closures in FIFO order: where the service
// decodes and resizes images, so that neither gRPC's callback threads nor the
// batcher's workers ever do. The queue itself is unbounded; callers bound what
// they put in it (the service admits work against --max_queue_faces first).
#ifndef FER_SERVER_THREAD_POOL_H_
#define FER_SERVER_THREAD_POOL_H_

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace fer {

class ThreadPool {
 public:
  // Starts num_threads (>= 1) threads.
  explicit ThreadPool(int num_threads);
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;
  // Runs every closure already scheduled, then joins the threads.
  ~ThreadPool();

  // Queues task to run on one of the threads. Thread-safe; may be called from
  // a task. Must not be called once the destructor has begun.
  void Schedule(std::function<void()> task);

  int size() const { return static_cast<int>(threads_.size()); }

 private:
  void Loop();

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;  // guarded by mu_
  bool stopping_ = false;                    // guarded by mu_
  std::vector<std::thread> threads_;
};

}  // namespace fer

#endif  // FER_SERVER_THREAD_POOL_H_
