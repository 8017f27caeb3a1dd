// Drawing helpers the offline tools' pictures share (heatmap.h: confusion
// heat maps; attention_grid.h: faces with their attention maps): one font for
// text that is fitted to a width, and colour maps as lookup tables.
#ifndef FER_MODEL_TRAINING_DRAWING_H_
#define FER_MODEL_TRAINING_DRAWING_H_

#include <string>

#include "opencv2/core.hpp"
#include "opencv2/imgproc.hpp"

namespace fer {
namespace drawing {

inline constexpr int kFont = cv::FONT_HERSHEY_SIMPLEX;
inline constexpr int kThickness = 1;

// The size of text in kFont at scale.
cv::Size TextSize(const std::string& text, double scale);

// The largest scale, up to max_scale, at which text is at most width pixels
// wide.
double FitScale(const std::string& text, int width, double max_scale);

// OpenCV colour map colormap (cv::COLORMAP_*) as a 1 x 256 BGR lookup table.
cv::Mat ColourTable(int colormap);

// The table's colour for t in [0, 1] (clamped).
cv::Vec3b Colour(const cv::Mat& table, double t);

}  // namespace drawing
}  // namespace fer

#endif  // FER_MODEL_TRAINING_DRAWING_H_
