#include "client/frame_timestamp.h"

#include <algorithm>
#include <cmath>

namespace fer::client {
namespace {

// A rate above this is taken as a container's garbage rather than a video's.
constexpr double kMaxPlausibleFps = 1000;

bool PlausibleTimestamp(double ms) {
  return std::isfinite(ms) && ms >= 0 && ms <= kMaxPlausibleTimestampMs;
}

bool PlausibleFps(double fps) { return std::isfinite(fps) && fps > 0 && fps <= kMaxPlausibleFps; }

}  // namespace

double FrameTimestampMs(double container_ms, uint64_t index, double fps, double previous_ms) {
  double ms = 0;
  if (PlausibleTimestamp(container_ms)) {
    ms = container_ms;
  } else if (PlausibleFps(fps)) {
    ms = static_cast<double>(index) * 1000.0 / fps;
  }
  const double floor = PlausibleTimestamp(previous_ms) ? previous_ms : 0.0;
  return std::max(ms, floor);
}

}  // namespace fer::client
