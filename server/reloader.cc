#include "server/reloader.h"

#include <utility>

namespace fer {

BackgroundReloader::BackgroundReloader(std::function<void()> reload)
    : reload_(std::move(reload)), thread_([this] { Loop(); }) {}

BackgroundReloader::~BackgroundReloader() {
  Cancel();
  thread_.join();
}

void BackgroundReloader::Request() {
  std::lock_guard<std::mutex> lock(mu_);
  if (cancelled_) return;
  requested_ = true;
  changed_.notify_all();
}

void BackgroundReloader::Cancel() {
  std::lock_guard<std::mutex> lock(mu_);
  cancelled_ = true;
  requested_ = false;
  changed_.notify_all();
}

int BackgroundReloader::runs() const {
  std::lock_guard<std::mutex> lock(mu_);
  return runs_;
}

void BackgroundReloader::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    changed_.wait(lock, [this] { return requested_ || cancelled_; });
    if (cancelled_) return;
    requested_ = false;
    lock.unlock();
    reload_();
    lock.lock();
    ++runs_;
  }
}

}  // namespace fer
