// Follows faces from one video frame to the next and smooths their scores
// over time.
//
// A face detector answers each frame independently, and a per-frame classifier
// flickers between neighbouring expressions. FaceTracker links the faces of
// consecutive frames by box overlap (IoU) into tracks and keeps, per track, an
// exponential moving average of the probabilities:
//   smoothed = alpha * current + (1 - alpha) * previous smoothed
// so alpha = 1 means no smoothing and a small alpha means a long memory. A
// new track starts from its first frame's probabilities. The average of
// probability vectors is again a probability vector, so the smoothed scores
// still sum to one.
//
// Not thread-safe: one tracker follows one video, frame by frame, in order.
#ifndef FER_CLIENT_FACE_TRACKER_H_
#define FER_CLIENT_FACE_TRACKER_H_

#include <vector>

#include "client/face_result.h"

namespace fer::client {

// Intersection over union of two boxes, in [0, 1]; 0 when either is empty.
double IoU(const FaceBox& a, const FaceBox& b);

// Pairs the boxes of the current frame with those of the previous one:
// greedily, highest IoU first, each box used at most once, and only pairs with
// IoU >= min_iou. Returns, for each current box, the index of its previous box
// or -1. Ties keep the lower indices first, so the result is deterministic.
std::vector<int> MatchByIoU(const std::vector<FaceBox>& previous,
                            const std::vector<FaceBox>& current, double min_iou);

struct TrackerOptions {
  // Weight of the newest frame in the moving average, in (0, 1].
  double alpha = 1.0;
  // Least overlap for a face to continue a track.
  double min_iou = 0.3;
  // A track whose face is not seen (a detector miss) survives this many
  // frames before it is forgotten, so that a one-frame miss does not reset
  // the average.
  int max_missed_frames = 5;
};

// One face of a frame after tracking.
struct TrackedFace {
  int track_id = 0;  // stable across frames while the track lives; never reused
  Scores smoothed;
};

class FaceTracker {
 public:
  explicit FaceTracker(const TrackerOptions& options);

  // Consumes the next frame: boxes[i] and scores[i] describe its face i
  // (requires boxes.size() == scores.size()). Returns one TrackedFace per
  // face, in the same order.
  std::vector<TrackedFace> Update(const std::vector<FaceBox>& boxes,
                                  const std::vector<Scores>& scores);

  // The next frame brought no usable faces (its classification failed):
  // every track ages by one frame as if unseen.
  void SkipFrame();

  // Tracks currently remembered (seen within max_missed_frames).
  size_t track_count() const { return tracks_.size(); }

 private:
  struct Track {
    int id = 0;
    FaceBox box;                       // where the face was last seen
    std::vector<float> probabilities;  // the moving average
    int missed = 0;                    // frames since last seen
  };

  void Age();  // drops tracks missed for more than max_missed_frames

  const TrackerOptions options_;
  std::vector<Track> tracks_;
  int next_id_ = 0;
};

}  // namespace fer::client

#endif  // FER_CLIENT_FACE_TRACKER_H_
