#include "client/face_tracker.h"

#include <algorithm>
#include <cstddef>
#include <tuple>
#include <utility>

namespace fer::client {

double IoU(const FaceBox& a, const FaceBox& b) {
  const int left = std::max(a.x, b.x);
  const int top = std::max(a.y, b.y);
  const int right = std::min(a.x + a.width, b.x + b.width);
  const int bottom = std::min(a.y + a.height, b.y + b.height);
  if (right <= left || bottom <= top) return 0.0;
  const double intersection = static_cast<double>(right - left) * (bottom - top);
  const double union_area = static_cast<double>(a.width) * a.height +
                            static_cast<double>(b.width) * b.height - intersection;
  return union_area > 0 ? intersection / union_area : 0.0;
}

std::vector<int> MatchByIoU(const std::vector<FaceBox>& previous,
                            const std::vector<FaceBox>& current, double min_iou) {
  // (iou, previous, current) for every pair worth considering. Faces per frame
  // are few, so all pairs are cheap and greedy matching is close to optimal.
  std::vector<std::tuple<double, size_t, size_t>> pairs;
  for (size_t p = 0; p < previous.size(); ++p) {
    for (size_t c = 0; c < current.size(); ++c) {
      const double overlap = IoU(previous[p], current[c]);
      if (overlap >= min_iou && overlap > 0) pairs.emplace_back(overlap, p, c);
    }
  }
  std::stable_sort(pairs.begin(), pairs.end(),
                   [](const auto& a, const auto& b) { return std::get<0>(a) > std::get<0>(b); });
  std::vector<int> match(current.size(), -1);
  std::vector<bool> used(previous.size(), false);
  for (const auto& [overlap, p, c] : pairs) {
    if (used[p] || match[c] != -1) continue;
    used[p] = true;
    match[c] = static_cast<int>(p);
  }
  return match;
}

FaceTracker::FaceTracker(const TrackerOptions& options) : options_(options) {}

std::vector<TrackedFace> FaceTracker::Update(const std::vector<FaceBox>& boxes,
                                             const std::vector<Scores>& scores) {
  std::vector<FaceBox> previous;
  previous.reserve(tracks_.size());
  for (const Track& track : tracks_) previous.push_back(track.box);
  const std::vector<int> match = MatchByIoU(previous, boxes, options_.min_iou);

  std::vector<bool> seen(tracks_.size(), false);
  std::vector<TrackedFace> out;
  out.reserve(boxes.size());
  std::vector<Track> born;
  for (size_t i = 0; i < boxes.size(); ++i) {
    const std::vector<float>& current = scores[i].probabilities;
    if (match[i] >= 0) {
      Track& track = tracks_[static_cast<size_t>(match[i])];
      seen[static_cast<size_t>(match[i])] = true;
      if (track.probabilities.size() == current.size()) {
        for (size_t k = 0; k < current.size(); ++k) {
          track.probabilities[k] = static_cast<float>(
              options_.alpha * current[k] + (1.0 - options_.alpha) * track.probabilities[k]);
        }
      } else {
        track.probabilities = current;  // a changed label set cannot be averaged
      }
      track.box = boxes[i];
      track.missed = 0;
      out.push_back({track.id, Scores::FromProbabilities(track.probabilities)});
    } else {
      born.push_back({next_id_++, boxes[i], current, 0});
      out.push_back({born.back().id, Scores::FromProbabilities(current)});
    }
  }
  for (size_t t = 0; t < tracks_.size(); ++t) {
    if (!seen[t]) ++tracks_[t].missed;
  }
  Age();
  for (Track& track : born) tracks_.push_back(std::move(track));
  return out;
}

void FaceTracker::SkipFrame() {
  for (Track& track : tracks_) ++track.missed;
  Age();
}

void FaceTracker::Age() {
  tracks_.erase(
      std::remove_if(tracks_.begin(), tracks_.end(),
                     [&](const Track& track) { return track.missed > options_.max_missed_frames; }),
      tracks_.end());
}

}  // namespace fer::client
