// Draws attention maps (Prediction.attention) over faces: one place for
// fer-client classify --attention=DIR (a picture per face) and fer-client
// stream --annotate_attention (maps inside the face boxes of a video).
#ifndef FER_CLIENT_ATTENTION_OVERLAY_H_
#define FER_CLIENT_ATTENTION_OVERLAY_H_

#include <opencv2/core.hpp>
#include <string>
#include <vector>

#include "client/face_result.h"

namespace fer::client {

// How much of the heat map shows through the face: 0 the face alone, 1 the
// map alone.
inline constexpr double kAttentionOpacity = 0.45;

// Blends map over region of image (8-bit BGR, changed in place) as a JET heat
// map: blue where the map is lowest, red where it is highest. The map is
// stretched from its own minimum to its maximum (the values of one map span a
// narrow range; absolute levels are in the numbers, center_share among them),
// and a flat map is drawn mid-scale. region is the face as the server got it:
// the server stretches it to the model's square, so the map's cells are
// placed by map.side and map.offset with the region stretched the same way,
// and values between cell centres are interpolated bilinearly (beyond the
// outer centres, the outer cells' values). Parts of region outside image are
// left out; an empty map or region draws nothing.
void OverlayAttention(const AttentionGrid& map, const cv::Rect& region, cv::Mat& image,
                      double opacity = kAttentionOpacity);

// A picture of one face for fer-client classify --attention=DIR: face (8-bit
// BGR or grey, any size) stretched to side x side as the server stretches it,
// its map overlaid, and the caption lines written on a dark band at the top.
cv::Mat AttentionPicture(const cv::Mat& face, const AttentionGrid& map,
                         const std::vector<std::string>& caption, int side);

}  // namespace fer::client

#endif  // FER_CLIENT_ATTENTION_OVERLAY_H_
