// Weight files that are broken in ways a trainer's bug or a bad copy makes,
// written with the model library from a good file. Torch-free interface, so
// that the subprocess tests need no LibTorch headers.
#ifndef FER_TESTS_SERVER_BROKEN_MODELS_H_
#define FER_TESTS_SERVER_BROKEN_MODELS_H_

#include <string>

#include "absl/status/status.h"

namespace fer::test_util {

// The weight file at from with one value of tensor (a state_dict name)
// replaced by NaN, written to to.
absl::Status WriteModelWithNan(const std::string& from, const std::string& to,
                               const std::string& tensor);

// The weight file at from with every parameter set to 1e30: it loads (every
// weight is finite) but its activations overflow to infinity, so it answers
// NaN probabilities.
absl::Status WriteOverflowingModel(const std::string& from, const std::string& to);

// Not broken: the weight file at from with its meta version set to version,
// written to to (a second model to reload, told apart by its version).
absl::Status WriteModelWithVersion(const std::string& from, const std::string& to,
                                   const std::string& version);

}  // namespace fer::test_util

#endif  // FER_TESTS_SERVER_BROKEN_MODELS_H_
