// The timestamp fer-client stream reports for a frame of a video file.
//
// OpenCV's CAP_PROP_POS_MSEC is what the container says, and it is undefined
// where the container says nothing: a still image read as a one-frame video
// answers values such as -3.7e20, and some containers answer NaN or jump
// backwards. Such values are replaced by one derived from the frame index
// and rate, or 0 when the rate is unknown too. Pure arithmetic, unit-tested.
#ifndef FER_CLIENT_FRAME_TIMESTAMP_H_
#define FER_CLIENT_FRAME_TIMESTAMP_H_

#include <cstdint>

namespace fer::client {

// Container timestamps past this (about three years) are taken as garbage.
inline constexpr double kMaxPlausibleTimestampMs = 1e11;

// The timestamp of frame `index` (0-based) in milliseconds, given the
// container's position container_ms (CAP_PROP_POS_MSEC), its frame rate fps
// (CAP_PROP_FPS; 0, NaN or absurd when unknown) and the timestamp reported
// for the previous frame (0 for the first).
//   - container_ms when it is finite and in [0, kMaxPlausibleTimestampMs];
//   - else index * 1000 / fps when fps is finite and in (0, 1000];
//   - else 0.
// Guaranteed: finite, >= 0, and never below previous_ms (a container that
// jumps backwards repeats the previous timestamp).
double FrameTimestampMs(double container_ms, uint64_t index, double fps, double previous_ms);

}  // namespace fer::client

#endif  // FER_CLIENT_FRAME_TIMESTAMP_H_
