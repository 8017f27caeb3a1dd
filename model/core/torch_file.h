// Reading the files torch.save writes in Python (and torch::pickle_save in
// C++) without LibTorch 1.13's unpickler, which turns a collections.OrderedDict
// (what every nn.Module.state_dict() is) into None and refuses opcodes Python
// emits for ordinary values (APPEND, for a one-element list).
#ifndef FER_MODEL_TORCH_FILE_H_
#define FER_MODEL_TORCH_FILE_H_

#include <ATen/core/ivalue.h>

#include <vector>

#include "absl/status/statusor.h"

namespace fer {

// Decodes the zip format of torch.save (the default since PyTorch 1.6) into
// an IValue: dicts and OrderedDicts become GenericDicts (keys Any), lists and
// tuples become Lists and Tuples, tensors CPU tensors (whatever device they
// were saved from), torch.nn.Parameter its data. Only plain data is accepted:
// a pickle naming any other Python class or function is refused with its name,
// so that loading never runs or imitates foreign code.
// Errors say what the bytes are: truncated, the legacy (pre-1.6) format, a zip
// that torch.save did not write, a TorchScript module, a damaged pickle.
absl::StatusOr<c10::IValue> ReadTorchFile(const std::vector<char>& bytes);

}  // namespace fer

#endif  // FER_MODEL_TORCH_FILE_H_
