// Where the faces of a request or stream frame (fer.v1.Image messages) meet
// the preprocessing: the face-count limit and the conversion of every face to
// model input. The service calls these for each call; the request fuzzer
// calls them on arbitrary bytes parsed as requests, so that both exercise the
// same code.
#ifndef FER_SERVER_REQUEST_FACES_H_
#define FER_SERVER_REQUEST_FACES_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "fer/v1/expression.pb.h"
#include "server/preprocess.h"

namespace fer {

using RequestFaces = google::protobuf::RepeatedPtrField<fer::v1::Image>;

// The preprocessing input for one request image: views into image, which must
// outlive it. Raw sizes beyond int are clamped, so that the limit check
// refuses them rather than seeing them wrap negative.
ImageInput ToImageInput(const fer::v1::Image& image);

// INVALID_ARGUMENT when faces is more than max_faces ("N faces in one
// request; the limit is M"), or empty unless allow_empty (a stream frame may
// be empty; a unary request may not): server/wire_scan.h's CheckFaceCount on
// the parsed faces, with the same messages.
absl::Status CheckFaceCount(const RequestFaces& faces, int max_faces, bool allow_empty);

// Appends the model input of every face, in order, to *out (as Preprocess
// does for one). On the first face that fails, returns its error with the
// message prefixed "face I: " (I its 0-based index) and leaves *out as it was.
absl::Status PreprocessFaces(const RequestFaces& faces, const PreprocessOptions& options,
                             bool ten_crop, std::vector<uint8_t>* out);

}  // namespace fer

#endif  // FER_SERVER_REQUEST_FACES_H_
