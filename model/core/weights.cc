#include "model/core/weights.h"

#include <cstdio>
#include <fstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "model/common/user_file.h"
#include "model/core/torch_file.h"

namespace fer {
namespace {

using GenericDict = c10::impl::GenericDict;

GenericDict NewDict() { return GenericDict(c10::StringType::get(), c10::AnyType::get()); }

c10::IValue FloatList(const std::array<float, 3>& values) {
  c10::List<double> list;
  for (float v : values) list.push_back(v);
  return list;
}

c10::IValue MetaToIValue(const ModelMeta& meta) {
  GenericDict arch = NewDict();
  arch.insert("num_classes", static_cast<int64_t>(meta.arch.num_classes));
  arch.insert("attention_kernel", static_cast<int64_t>(meta.arch.attention_kernel));
  arch.insert("attention", meta.arch.attention);
  c10::List<std::string> labels;
  for (const auto& label : meta.labels) labels.push_back(label);
  GenericDict metrics = NewDict();
  for (const auto& [name, value] : meta.metrics) metrics.insert(name, value);

  GenericDict dict = NewDict();
  dict.insert("arch", arch);
  dict.insert("input_size", static_cast<int64_t>(meta.input_size));
  dict.insert("mean", FloatList(meta.mean));
  dict.insert("std", FloatList(meta.std));
  dict.insert("color", meta.color);
  dict.insert("input_blur", meta.input_blur);
  dict.insert("labels", labels);
  dict.insert("trained_on", meta.trained_on);
  dict.insert("metrics", metrics);
  dict.insert("created", meta.created);
  dict.insert("version", meta.version);
  return dict;
}

// The elements of a list or a tuple (Python writes either for a sequence);
// empty for anything else.
std::vector<c10::IValue> Sequence(const c10::IValue& value) {
  if (value.isList()) return value.toListRef().vec();
  if (value.isTuple()) return value.toTupleRef().elements().vec();
  return {};
}

// Reads meta fields defensively: any type may be anything in a foreign file.
class MetaReader {
 public:
  explicit MetaReader(GenericDict dict) : dict_(std::move(dict)) {}

  absl::StatusOr<c10::IValue> Get(const std::string& key, bool required = true) const {
    auto it = dict_.find(key);
    if (it == dict_.end()) {
      if (required) return absl::InvalidArgumentError(absl::StrCat("meta has no \"", key, "\""));
      return c10::IValue();
    }
    return it->value();
  }

  absl::StatusOr<int64_t> Int(const std::string& key) const {
    auto value = Get(key);
    if (!value.ok()) return value.status();
    if (!value->isInt()) return TypeError(key, "an integer");
    return value->toInt();
  }

  absl::StatusOr<std::string> String(const std::string& key, bool required = true) const {
    auto value = Get(key, required);
    if (!value.ok()) return value.status();
    if (value->isNone()) return std::string();
    if (!value->isString()) return TypeError(key, "a string");
    return value->toStringRef();
  }

  absl::Status Triple(const std::string& key, std::array<float, 3>* out) const {
    auto value = Get(key);
    if (!value.ok()) return value.status();
    const std::vector<c10::IValue> items = Sequence(*value);
    if (items.size() != 3) return TypeError(key, "3 numbers");
    for (size_t i = 0; i < 3; ++i) {
      const c10::IValue& v = items[i];
      if (!v.isDouble() && !v.isInt()) return TypeError(key, "3 numbers");
      (*out)[i] = static_cast<float>(v.isDouble() ? v.toDouble() : v.toInt());
    }
    return absl::OkStatus();
  }

 private:
  static absl::Status TypeError(const std::string& key, const char* expected) {
    return absl::InvalidArgumentError(absl::StrCat("meta \"", key, "\" is not ", expected));
  }
  GenericDict dict_;
};

// meta["arch"]: the network's shape, within what LlaNet can build.
absl::Status ReadArch(const MetaReader& reader, ArchOptions* out) {
  auto arch = reader.Get("arch");
  if (!arch.ok()) return arch.status();
  if (!arch->isGenericDict()) return absl::InvalidArgumentError("meta \"arch\" is not a dict");
  MetaReader arch_reader(arch->toGenericDict());
  auto classes = arch_reader.Int("num_classes");
  auto kernel = arch_reader.Int("attention_kernel");
  auto attention = arch_reader.Get("attention");
  if (!classes.ok()) return classes.status();
  if (!kernel.ok()) return kernel.status();
  if (!attention.ok()) return attention.status();
  if (!attention->isBool()) return absl::InvalidArgumentError("meta arch.attention is not a bool");
  if (*classes < 2 || *classes > 100000) {
    return absl::InvalidArgumentError(absl::StrCat("meta arch.num_classes is ", *classes));
  }
  if (*kernel != 1 && *kernel != 3) {
    return absl::InvalidArgumentError(absl::StrCat("meta arch.attention_kernel is ", *kernel));
  }
  *out = {static_cast<int>(*classes), static_cast<int>(*kernel), attention->toBool()};
  return absl::OkStatus();
}

// How faces become the network's input: size, normalisation, colour, blur.
absl::Status ReadInput(const MetaReader& reader, ModelMeta* meta) {
  auto input_size = reader.Int("input_size");
  if (!input_size.ok()) return input_size.status();
  if (*input_size < 16 || *input_size > 1024) {
    return absl::InvalidArgumentError(absl::StrCat("meta input_size is ", *input_size));
  }
  meta->input_size = static_cast<int>(*input_size);
  if (auto s = reader.Triple("mean", &meta->mean); !s.ok()) return s;
  if (auto s = reader.Triple("std", &meta->std); !s.ok()) return s;
  for (float s : meta->std) {
    if (!(s > 0)) return absl::InvalidArgumentError("meta std must be positive");
  }
  auto color = reader.String("color");
  if (!color.ok()) return color.status();
  if (*color != "gray3" && *color != "rgb") {
    return absl::InvalidArgumentError(absl::StrCat("meta color is \"", *color, "\""));
  }
  meta->color = *color;
  auto blur = reader.Get("input_blur", /*required=*/false);
  if (!blur.ok()) return blur.status();
  if (blur->isDouble() || blur->isInt()) {
    meta->input_blur = blur->isDouble() ? blur->toDouble() : static_cast<double>(blur->toInt());
  } else if (!blur->isNone()) {
    return absl::InvalidArgumentError("meta \"input_blur\" is not a number");
  }
  if (meta->input_blur < 0 || meta->input_blur > 1) {
    return absl::InvalidArgumentError(absl::StrCat("meta input_blur is ", meta->input_blur));
  }
  return absl::OkStatus();
}

// meta["labels"]: one string per class of the arch already read.
absl::Status ReadLabels(const MetaReader& reader, ModelMeta* meta) {
  auto labels = reader.Get("labels");
  if (!labels.ok()) return labels.status();
  if (!labels->isList() && !labels->isTuple()) {
    return absl::InvalidArgumentError("meta \"labels\" is not a list");
  }
  for (const c10::IValue& label : Sequence(*labels)) {
    if (!label.isString()) return absl::InvalidArgumentError("meta labels are not strings");
    meta->labels.push_back(label.toStringRef());
  }
  if (static_cast<int>(meta->labels.size()) != meta->arch.num_classes) {
    return absl::InvalidArgumentError(absl::StrCat("meta has ", meta->labels.size(), " labels for ",
                                                   meta->arch.num_classes, " classes"));
  }
  return absl::OkStatus();
}

// The optional descriptive fields; metrics that are not numbers are skipped.
absl::Status ReadProvenance(const MetaReader& reader, ModelMeta* meta) {
  for (auto [key, field] :
       {std::pair{"trained_on", &meta->trained_on}, std::pair{"created", &meta->created},
        std::pair{"version", &meta->version}}) {
    auto value = reader.String(key, /*required=*/false);
    if (!value.ok()) return value.status();
    *field = *value;
  }
  auto metrics = reader.Get("metrics", /*required=*/false);
  if (!metrics.ok()) return metrics.status();
  if (metrics->isGenericDict()) {
    for (const auto& entry : metrics->toGenericDict()) {
      if (!entry.key().isString()) continue;
      const c10::IValue& v = entry.value();
      if (v.isDouble() || v.isInt()) {
        meta->metrics[entry.key().toStringRef()] = v.isDouble() ? v.toDouble() : v.toInt();
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<ModelMeta> MetaFromIValue(const c10::IValue& value) {
  if (!value.isGenericDict()) return absl::InvalidArgumentError("\"meta\" is not a dict");
  MetaReader reader(value.toGenericDict());
  ModelMeta meta;
  if (auto s = ReadArch(reader, &meta.arch); !s.ok()) return s;
  if (auto s = ReadInput(reader, &meta); !s.ok()) return s;
  if (auto s = ReadLabels(reader, &meta); !s.ok()) return s;
  if (auto s = ReadProvenance(reader, &meta); !s.ok()) return s;
  return meta;
}

// Every parameter and buffer of net, by state_dict name.
std::vector<std::pair<std::string, torch::Tensor>> StateEntries(const LlaNet& net) {
  std::vector<std::pair<std::string, torch::Tensor>> entries;
  for (const auto& item : net->named_parameters()) entries.emplace_back(item.key(), item.value());
  for (const auto& item : net->named_buffers()) entries.emplace_back(item.key(), item.value());
  return entries;
}

std::string ShapeString(c10::IntArrayRef sizes) {
  std::string out = "[";
  for (size_t i = 0; i < sizes.size(); ++i) absl::StrAppend(&out, i ? ", " : "", sizes[i]);
  return out + "]";
}

std::string KindName(const c10::IValue& value) {
  if (value.isTensor()) return "tensor";
  if (value.isList()) return "list";
  if (value.isTuple()) return "tuple";
  if (value.isString()) return "string";
  if (value.isNone()) return "None";
  return value.tagKind();
}

// Checks the outer dict of a weight file; the errors name the missing key.
absl::Status CheckWeightDict(const c10::IValue& file) {
  if (!file.isGenericDict()) {
    return absl::InvalidArgumentError(
        absl::StrCat("not an LLA-Net weight file: it holds a ", KindName(file),
                     ", not a dict with \"format\", \"state_dict\" and \"meta\""));
  }
  GenericDict dict = file.toGenericDict();
  auto format = dict.find("format");
  if (format == dict.end() && dict.find("conv1.weight") != dict.end()) {
    // torch.save(model.state_dict(), path): the tensors without the meta.
    return absl::InvalidArgumentError(
        "not an LLA-Net weight file: it is a bare state_dict; save {\"format\": \"lla-net/1\", "
        "\"state_dict\": model.state_dict(), \"meta\": {...}} (see docs/model.md)");
  }
  if (format == dict.end()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "not an LLA-Net weight file: the dict has no \"format\" key (\"", kWeightFormat, "\")"));
  }
  if (!format->value().isString() || format->value().toStringRef() != kWeightFormat) {
    return absl::InvalidArgumentError(absl::StrCat("not an LLA-Net weight file: \"format\" is ",
                                                   format->value().isString()
                                                       ? "\"" + format->value().toStringRef() + "\""
                                                       : std::string("not a string"),
                                                   ", expected \"", kWeightFormat, "\""));
  }
  if (dict.find("meta") == dict.end()) {
    return absl::InvalidArgumentError("weight file has no \"meta\" key");
  }
  auto state = dict.find("state_dict");
  if (state == dict.end())
    return absl::InvalidArgumentError("weight file has no \"state_dict\" key");
  if (!state->value().isGenericDict()) {
    return absl::InvalidArgumentError("weight file's \"state_dict\" is not a dict");
  }
  return absl::OkStatus();
}

absl::StatusOr<LoadedModel> LoadFromIValue(const c10::IValue& file) {
  if (auto s = CheckWeightDict(file); !s.ok()) return s;
  GenericDict dict = file.toGenericDict();
  auto meta_value = dict.find("meta");
  auto state_value = dict.find("state_dict");
  auto meta = MetaFromIValue(meta_value->value());
  if (!meta.ok()) return meta.status();

  LoadedModel loaded{LlaNet(meta->arch), *meta};
  GenericDict state = state_value->value().toGenericDict();
  torch::NoGradGuard no_grad;
  for (auto& [name, tensor] : StateEntries(loaded.net)) {
    auto it = state.find(name);
    if (it == state.end()) return absl::InvalidArgumentError(absl::StrCat("missing ", name));
    if (!it->value().isTensor()) {
      return absl::InvalidArgumentError(absl::StrCat(name, " is not a tensor"));
    }
    const torch::Tensor& stored = it->value().toTensor();
    if (stored.sizes() != tensor.sizes()) {
      return absl::InvalidArgumentError(absl::StrCat(name, " has shape ",
                                                     ShapeString(stored.sizes()), ", expected ",
                                                     ShapeString(tensor.sizes())));
    }
    if (stored.is_floating_point() && !torch::isfinite(stored).all().item<bool>()) {
      // A network with one NaN or infinite weight answers NaN for every face.
      return absl::InvalidArgumentError(
          absl::StrCat(name, " holds NaN or infinite values (a diverged training run?)"));
    }
    tensor.copy_(stored.to(tensor.dtype()));
  }
  const size_t expected = StateEntries(loaded.net).size();
  if (state.size() != expected) {
    for (const auto& entry : state) {
      const std::string key = entry.key().isString() ? entry.key().toStringRef() : "<non-string>";
      bool known = false;
      for (const auto& item : StateEntries(loaded.net)) known |= item.first == key;
      if (!known) return absl::InvalidArgumentError(absl::StrCat("unexpected ", key));
    }
  }
  return loaded;
}

}  // namespace

absl::Status SaveWeightFile(const std::string& path, LlaNet net, const ModelMeta& meta,
                            StoredPrecision precision) {
  c10::Dict<std::string, torch::Tensor> state;
  for (auto& [name, tensor] : StateEntries(net)) {
    torch::Tensor value = tensor.detach().to(torch::kCPU).contiguous();
    if (precision == StoredPrecision::kFloat16 && value.is_floating_point()) {
      value = value.to(torch::kFloat16);
    } else {
      value = value.clone();
    }
    state.insert(name, value);
  }
  GenericDict file = NewDict();
  file.insert("format", std::string(kWeightFormat));
  file.insert("state_dict", state);
  file.insert("meta", MetaToIValue(meta));

  std::vector<char> bytes;
  try {
    bytes = torch::pickle_save(file);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("cannot serialise weights: ", e.what()));
  }
  const std::string temp = path + ".tmp";
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out.good()) return absl::UnavailableError(absl::StrCat("cannot write ", temp));
  }
  if (std::rename(temp.c_str(), path.c_str()) != 0) {
    std::remove(temp.c_str());
    return absl::UnavailableError(absl::StrCat("cannot rename ", temp, " to ", path));
  }
  return absl::OkStatus();
}

absl::StatusOr<LoadedModel> LoadWeightFile(const std::string& path) {
  absl::StatusOr<std::vector<char>> bytes = ReadRegularFileBytes(path, "weight file");
  if (!bytes.ok()) return bytes.status();
  if (bytes->empty()) return absl::InvalidArgumentError(absl::StrCat(path, " is empty"));

  absl::StatusOr<c10::IValue> file = ReadTorchFile(*bytes);
  absl::StatusOr<LoadedModel> loaded = file.ok() ? LoadFromIValue(*file) : file.status();
  if (!loaded.ok()) {
    return absl::Status(loaded.status().code(),
                        absl::StrCat(path, ": ", loaded.status().message()));
  }
  return loaded;
}

}  // namespace fer
