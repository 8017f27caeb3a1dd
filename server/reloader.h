// Model reloads off the signal thread: fer-server takes its signals on one
// thread (sigwait), and a reload (load the file, build and warm up the new
// model) takes seconds, during which that thread could not take a SIGTERM.
// A BackgroundReloader runs the reloads on a thread of its own, one at a time,
// so that a drain starts as soon as it is asked for, reload or not.
#ifndef FER_SERVER_RELOADER_H_
#define FER_SERVER_RELOADER_H_

#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

namespace fer {

class BackgroundReloader {
 public:
  // reload runs on the reloader's thread, once per run.
  explicit BackgroundReloader(std::function<void()> reload);
  // Cancel(), then waits for the run in progress.
  ~BackgroundReloader();

  BackgroundReloader(const BackgroundReloader&) = delete;
  BackgroundReloader& operator=(const BackgroundReloader&) = delete;

  // Asks for a reload and returns at once: one starts now or, while one runs,
  // one more starts after it. Requests made during a run count as one (they
  // all ask for the file as it is once the run ends). Ignored after Cancel().
  void Request();

  // No run starts from now on: a requested one is dropped, the one in
  // progress goes on. Returns at once. Idempotent.
  void Cancel();

  // Runs finished so far.
  int runs() const;

 private:
  void Loop();

  const std::function<void()> reload_;
  mutable std::mutex mu_;
  std::condition_variable changed_;
  bool requested_ = false;
  bool cancelled_ = false;
  int runs_ = 0;
  std::thread thread_;  // last: starts once the rest is set
};

}  // namespace fer

#endif  // FER_SERVER_RELOADER_H_
