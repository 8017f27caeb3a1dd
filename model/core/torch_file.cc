#include "model/core/torch_file.h"

#include <caffe2/serialize/in_memory_adapter.h>
#include <caffe2/serialize/inline_container.h>
#include <torch/torch.h>

#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace fer {
namespace {

// The first bytes of a legacy torch.save file: PROTO 2, then LONG1 of the
// magic number 0x1950a86a20f9469cfc6c.
constexpr unsigned char kLegacyMagic[] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c,
                                          0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};

bool StartsWith(const std::vector<char>& bytes, const void* prefix, size_t size) {
  return bytes.size() >= size && std::memcmp(bytes.data(), prefix, size) == 0;
}

// One entry of the pickle machine's stack: a value, a MARK, or a global (a
// class or function named by module and name, resolved when it is called).
struct Item {
  enum Kind { kValue, kMark, kGlobal } kind = kValue;
  c10::IValue value;
  std::string global;
};

using RecordReader = std::function<absl::StatusOr<torch::Tensor>(
    const std::string& key, c10::ScalarType type, int64_t numel)>;

// A pickle reader for the subset of protocols 2 to 5 that torch.save and
// torch::pickle_save emit for plain data. Every read is bounds-checked; any
// malformed input ends in an error status, never a crash.
class PickleReader {
 public:
  PickleReader(const char* data, size_t size, RecordReader records)
      : data_(data), size_(size), records_(std::move(records)) {}

  absl::StatusOr<c10::IValue> Run();

 private:
  absl::Status Step(uint8_t op);
  absl::Status StepContainers(uint8_t op, bool* handled);
  absl::Status Append(bool many);
  absl::Status SetItems(bool many);
  absl::Status StepScalars(uint8_t op, bool* handled);
  absl::Status StepMemo(uint8_t op, bool* handled);
  absl::Status PushGlobal(std::string name);
  absl::Status PushTuple(std::vector<c10::IValue> values);
  absl::Status Adopt(const c10::IValue& parent, const std::vector<c10::IValue>& children);
  static bool IsContainer(const c10::IValue& v) {
    return v.isList() || v.isGenericDict() || v.isTuple();
  }
  absl::Status Reduce();
  absl::Status Build();
  absl::Status NewObject(bool with_kwargs);
  absl::Status PersistentLoad();
  absl::StatusOr<c10::IValue> Call(const std::string& global, const c10::ivalue::Tuple& args);
  absl::StatusOr<c10::IValue> RebuildTensor(const c10::ivalue::Tuple& args);

  absl::Status Need(size_t n) const {
    if (size_ - pos_ < n) return absl::InvalidArgumentError("pickle ends early (truncated)");
    return absl::OkStatus();
  }
  uint64_t ReadUnsigned(size_t n) {  // little-endian; caller checked Need(n)
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i)
      v |= static_cast<uint64_t>(static_cast<uint8_t>(data_[pos_ + i])) << (8 * i);
    pos_ += n;
    return v;
  }
  absl::StatusOr<std::string> ReadBytes(size_t length_bytes);
  absl::StatusOr<std::string> ReadLine();
  absl::StatusOr<Item> Pop();
  absl::StatusOr<c10::IValue> PopValue();
  absl::StatusOr<std::vector<c10::IValue>> PopToMark();
  absl::StatusOr<c10::IValue*> Top();

  const char* data_;
  size_t size_;
  size_t pos_ = 0;
  RecordReader records_;
  std::vector<Item> stack_;
  std::unordered_map<uint64_t, Item> memo_;
  // Nesting depth of each container, and the containers already inside
  // another. Python's pickler fills a container before putting it into its
  // parent, so a sealed container is never changed again and the depths stay
  // exact; that bounds the nesting, whose recursive destruction could
  // otherwise overflow the stack.
  std::unordered_map<const void*, int> depth_;
  std::unordered_set<const void*> sealed_;
  // Values popped and dropped stay alive until the end, so that no address
  // in depth_ or sealed_ is reused by a new container.
  std::vector<c10::IValue> kept_;
  bool stopped_ = false;
};

absl::StatusOr<std::string> PickleReader::ReadBytes(size_t length_bytes) {
  if (auto s = Need(length_bytes); !s.ok()) return s;
  const uint64_t length = ReadUnsigned(length_bytes);
  if (auto s = Need(length); !s.ok()) return s;
  std::string out(data_ + pos_, length);
  pos_ += length;
  return out;
}

absl::StatusOr<std::string> PickleReader::ReadLine() {
  const void* end = std::memchr(data_ + pos_, '\n', size_ - pos_);
  if (end == nullptr) return absl::InvalidArgumentError("pickle ends early (truncated)");
  std::string line(data_ + pos_, static_cast<const char*>(end));
  pos_ += line.size() + 1;
  return line;
}

absl::StatusOr<Item> PickleReader::Pop() {
  if (stack_.empty()) return absl::InvalidArgumentError("malformed pickle (stack underflow)");
  Item item = std::move(stack_.back());
  stack_.pop_back();
  return item;
}

absl::StatusOr<c10::IValue> PickleReader::PopValue() {
  auto item = Pop();
  if (!item.ok()) return item.status();
  if (item->kind != Item::kValue) {
    return absl::InvalidArgumentError(
        item->kind == Item::kMark ? "malformed pickle (unexpected MARK)"
                                  : absl::StrCat("pickle uses ", item->global, " as a value"));
  }
  return std::move(item->value);
}

absl::StatusOr<std::vector<c10::IValue>> PickleReader::PopToMark() {
  std::vector<c10::IValue> values;
  while (true) {
    if (stack_.empty()) return absl::InvalidArgumentError("malformed pickle (no MARK)");
    if (stack_.back().kind == Item::kMark) break;
    auto value = PopValue();
    if (!value.ok()) return value.status();
    values.push_back(std::move(*value));
  }
  stack_.pop_back();
  std::reverse(values.begin(), values.end());
  return values;
}

absl::StatusOr<c10::IValue*> PickleReader::Top() {
  if (stack_.empty() || stack_.back().kind != Item::kValue) {
    return absl::InvalidArgumentError("malformed pickle (no container on the stack)");
  }
  return &stack_.back().value;
}

c10::IValue NewDict() { return c10::impl::GenericDict(c10::AnyType::get(), c10::AnyType::get()); }
c10::IValue NewList() { return c10::impl::GenericList(c10::AnyType::get()); }

// APPEND (one value) or APPENDS (the values down to the MARK) to the list
// below them.
absl::Status PickleReader::Append(bool many) {
  std::vector<c10::IValue> values;
  if (!many) {
    auto value = PopValue();
    if (!value.ok()) return value.status();
    values.push_back(std::move(*value));
  } else {
    auto popped = PopToMark();
    if (!popped.ok()) return popped.status();
    values = std::move(*popped);
  }
  auto list = Top();
  if (!list.ok()) return list.status();
  if (!(*list)->isList())
    return absl::InvalidArgumentError("malformed pickle (APPEND to a non-list)");
  if (auto s = Adopt(**list, values); !s.ok()) return s;
  for (auto& v : values) (*list)->toList().push_back(std::move(v));
  return absl::OkStatus();
}

// SETITEM (one key and value) or SETITEMS (pairs down to the MARK) into the
// dict below them.
absl::Status PickleReader::SetItems(bool many) {
  std::vector<c10::IValue> values;
  if (!many) {
    auto value = PopValue();
    auto key = PopValue();
    if (!value.ok() || !key.ok()) return absl::InvalidArgumentError("malformed pickle (SETITEM)");
    values = {std::move(*key), std::move(*value)};
  } else {
    auto popped = PopToMark();
    if (!popped.ok()) return popped.status();
    values = std::move(*popped);
  }
  auto dict = Top();
  if (!dict.ok()) return dict.status();
  if (!(*dict)->isGenericDict() || values.size() % 2 != 0) {
    return absl::InvalidArgumentError("malformed pickle (SETITEMS on a non-dict)");
  }
  if (auto s = Adopt(**dict, values); !s.ok()) return s;
  auto d = (*dict)->toGenericDict();
  for (size_t i = 0; i < values.size(); i += 2) d.insert_or_assign(values[i], values[i + 1]);
  return absl::OkStatus();
}

absl::Status PickleReader::StepContainers(uint8_t op, bool* handled) {
  *handled = true;
  switch (op) {
    case '(':  // MARK
      stack_.push_back(Item{Item::kMark, {}, {}});
      return absl::OkStatus();
    case '}':  // EMPTY_DICT
      stack_.push_back(Item{Item::kValue, NewDict(), {}});
      return absl::OkStatus();
    case ']':  // EMPTY_LIST
      stack_.push_back(Item{Item::kValue, NewList(), {}});
      return absl::OkStatus();
    case ')':  // EMPTY_TUPLE
      stack_.push_back(Item{Item::kValue, c10::ivalue::Tuple::create({}), {}});
      return absl::OkStatus();
    case 't': {  // TUPLE
      auto values = PopToMark();
      if (!values.ok()) return values.status();
      return PushTuple(std::move(*values));
      return absl::OkStatus();
    }
    case 0x85:  // TUPLE1..3
    case 0x86:
    case 0x87: {
      std::vector<c10::IValue> values(op - 0x84);
      for (size_t i = values.size(); i-- > 0;) {
        auto value = PopValue();
        if (!value.ok()) return value.status();
        values[i] = std::move(*value);
      }
      return PushTuple(std::move(values));
    }
    case 'a':  // APPEND, APPENDS
    case 'e':
      return Append(op == 'e');
    case 's':  // SETITEM, SETITEMS
    case 'u':
      return SetItems(op == 'u');
    default:
      *handled = false;
      return absl::OkStatus();
  }
}

absl::Status PickleReader::StepScalars(uint8_t op, bool* handled) {
  *handled = true;
  auto push = [this](c10::IValue v) {
    stack_.push_back(Item{Item::kValue, std::move(v), {}});
    return absl::OkStatus();
  };
  switch (op) {
    case 'N':
      return push(c10::IValue());
    case 0x88:
      return push(true);
    case 0x89:
      return push(false);
    case 'K':  // BININT1, BININT2, BININT
    case 'M':
    case 'J': {
      const size_t n = op == 'K' ? 1 : op == 'M' ? 2 : 4;
      if (auto s = Need(n); !s.ok()) return s;
      const uint64_t v = ReadUnsigned(n);
      return push(op == 'J' ? static_cast<int64_t>(static_cast<int32_t>(v))
                            : static_cast<int64_t>(v));
    }
    case 0x8a: {  // LONG1: little-endian two's complement
      if (auto s = Need(1); !s.ok()) return s;
      const size_t n = ReadUnsigned(1);
      if (n > 8) return absl::InvalidArgumentError("pickle holds an integer wider than 64 bits");
      if (auto s = Need(n); !s.ok()) return s;
      uint64_t v = ReadUnsigned(n);
      if (n > 0 && n < 8 && (v >> (8 * n - 1)) & 1) v |= ~uint64_t{0} << (8 * n);
      return push(static_cast<int64_t>(v));
    }
    case 'G': {  // BINFLOAT: big-endian double
      if (auto s = Need(8); !s.ok()) return s;
      uint64_t bits = 0;
      for (int i = 0; i < 8; ++i) bits = (bits << 8) | static_cast<uint8_t>(data_[pos_ + i]);
      pos_ += 8;
      double d;
      std::memcpy(&d, &bits, sizeof d);
      return push(d);
    }
    case 'X':    // BINUNICODE
    case 0x8c:   // SHORT_BINUNICODE
    case 0x8d:   // BINUNICODE8
    case 'U':    // SHORT_BINSTRING
    case 'T': {  // BINSTRING
      const size_t n = (op == 0x8c || op == 'U') ? 1 : op == 0x8d ? 8 : 4;
      auto text = ReadBytes(n);
      if (!text.ok()) return text.status();
      return push(std::move(*text));
    }
    default:
      *handled = false;
      return absl::OkStatus();
  }
}

absl::Status PickleReader::StepMemo(uint8_t op, bool* handled) {
  *handled = true;
  if (op == 'q' || op == 'r' || op == 0x94) {  // BINPUT, LONG_BINPUT, MEMOIZE
    uint64_t key = memo_.size();
    if (op != 0x94) {
      const size_t n = op == 'q' ? 1 : 4;
      if (auto s = Need(n); !s.ok()) return s;
      key = ReadUnsigned(n);
    }
    if (stack_.empty()) return absl::InvalidArgumentError("malformed pickle (PUT on empty stack)");
    memo_[key] = stack_.back();
    return absl::OkStatus();
  }
  if (op == 'h' || op == 'j') {  // BINGET, LONG_BINGET
    const size_t n = op == 'h' ? 1 : 4;
    if (auto s = Need(n); !s.ok()) return s;
    auto it = memo_.find(ReadUnsigned(n));
    if (it == memo_.end())
      return absl::InvalidArgumentError("malformed pickle (GET of unknown memo)");
    stack_.push_back(it->second);
    return absl::OkStatus();
  }
  *handled = false;
  return absl::OkStatus();
}

absl::Status PickleReader::Step(uint8_t op) {
  bool handled = false;
  for (auto step :
       {&PickleReader::StepContainers, &PickleReader::StepScalars, &PickleReader::StepMemo}) {
    if (auto s = (this->*step)(op, &handled); !s.ok() || handled) return s;
  }
  switch (op) {
    case 0x80:  // PROTO
      if (auto s = Need(1); !s.ok()) return s;
      ++pos_;
      return absl::OkStatus();
    case 0x95:  // FRAME: only a length hint
      if (auto s = Need(8); !s.ok()) return s;
      pos_ += 8;
      return absl::OkStatus();
    case '.':  // STOP
      stopped_ = true;
      return absl::OkStatus();
    case 'c': {  // GLOBAL
      auto module = ReadLine();
      if (!module.ok()) return module.status();
      auto name = ReadLine();
      if (!name.ok()) return name.status();
      return PushGlobal(absl::StrCat(*module, ".", *name));
    }
    case 0x93: {  // STACK_GLOBAL
      auto name = PopValue();
      auto module = PopValue();
      if (!name.ok() || !module.ok() || !name->isString() || !module->isString()) {
        return absl::InvalidArgumentError("malformed pickle (STACK_GLOBAL)");
      }
      return PushGlobal(absl::StrCat(module->toStringRef(), ".", name->toStringRef()));
    }
    case 'R':
      return Reduce();
    case 'b':
      return Build();
    case 'Q':
      return PersistentLoad();
    case 0x81:  // NEWOBJ, NEWOBJ_EX: instances of Python classes
    case 0x92:
      return NewObject(op == 0x92);
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("pickle uses opcode 0x", absl::Hex(op), ", which plain data does not need"));
  }
}

absl::StatusOr<c10::IValue> PickleReader::Run() {
  while (!stopped_) {
    if (auto s = Need(1); !s.ok()) return s;
    const uint8_t op = static_cast<uint8_t>(data_[pos_++]);
    if (auto s = Step(op); !s.ok()) return s;
  }
  if (stack_.size() != 1) return absl::InvalidArgumentError("malformed pickle (stack at STOP)");
  return PopValue();
}

const std::map<std::string, c10::ScalarType>& StorageTypes();

constexpr int kMaxDepth = 64;

// Records that children go into parent (new when it is a tuple being built).
absl::Status PickleReader::Adopt(const c10::IValue& parent,
                                 const std::vector<c10::IValue>& children) {
  const void* key = parent.internalToPointer();
  if (sealed_.count(key) != 0) {
    return absl::InvalidArgumentError("malformed pickle (a container changed after its use)");
  }
  int depth = depth_.count(key) ? depth_[key] : 1;
  for (const c10::IValue& child : children) {
    if (!IsContainer(child)) continue;
    const void* child_key = child.internalToPointer();
    sealed_.insert(child_key);
    depth = std::max(depth, (depth_.count(child_key) ? depth_[child_key] : 1) + 1);
  }
  if (depth > kMaxDepth) {
    return absl::InvalidArgumentError(
        absl::StrCat("pickle nests containers deeper than ", kMaxDepth));
  }
  depth_[key] = depth;
  return absl::OkStatus();
}

absl::Status PickleReader::PushTuple(std::vector<c10::IValue> values) {
  c10::IValue tuple = c10::ivalue::Tuple::create(std::move(values));
  if (auto s = Adopt(tuple, tuple.toTupleRef().elements().vec()); !s.ok()) return s;
  stack_.push_back(Item{Item::kValue, std::move(tuple), {}});
  return absl::OkStatus();
}

// A storage class is data (it names a persistent id's element type), so it is
// pushed as its name; every other global must be called by REDUCE.
absl::Status PickleReader::PushGlobal(std::string name) {
  if (StorageTypes().count(name) != 0) {
    stack_.push_back(Item{Item::kValue, std::move(name), {}});
  } else {
    stack_.push_back(Item{Item::kGlobal, {}, std::move(name)});
  }
  return absl::OkStatus();
}

absl::Status PickleReader::Reduce() {
  auto args = PopValue();
  if (!args.ok()) return args.status();
  auto callable = Pop();
  if (!callable.ok()) return callable.status();
  if (callable->kind != Item::kGlobal || !args->isTuple()) {
    return absl::InvalidArgumentError("malformed pickle (REDUCE)");
  }
  kept_.push_back(*args);
  auto result = Call(callable->global, *args->toTuple());
  if (!result.ok()) return result.status();
  stack_.push_back(Item{Item::kValue, std::move(*result), {}});
  return absl::OkStatus();
}

// Instances of Python classes (an nn.Module, say) are never plain data: the
// error names the class.
absl::Status PickleReader::NewObject(bool with_kwargs) {
  for (int i = with_kwargs ? 2 : 1; i > 0; --i) {
    if (auto args = Pop(); !args.ok()) return args.status();
  }
  auto cls = Pop();
  if (!cls.ok()) return cls.status();
  if (cls->kind != Item::kGlobal) return absl::InvalidArgumentError("malformed pickle (NEWOBJ)");
  return absl::InvalidArgumentError(
      absl::StrCat("pickle holds an object of class ", cls->global, ", not plain data"));
}

// BUILD sets an object's attributes. The only objects here are dicts (an
// OrderedDict's state is its attributes, such as state_dict()'s _metadata,
// which loading does not need), so the state is dropped.
absl::Status PickleReader::Build() {
  auto state = PopValue();
  if (!state.ok()) return state.status();
  kept_.push_back(*state);
  auto object = Top();
  if (!object.ok()) return object.status();
  if (!(*object)->isGenericDict()) {
    return absl::InvalidArgumentError(
        absl::StrCat("pickle sets attributes of a ", (*object)->tagKind(), ", not plain data"));
  }
  return absl::OkStatus();
}

const std::map<std::string, c10::ScalarType>& StorageTypes() {
  static const auto* types = new std::map<std::string, c10::ScalarType>{
      {"torch.FloatStorage", c10::kFloat}, {"torch.DoubleStorage", c10::kDouble},
      {"torch.HalfStorage", c10::kHalf},   {"torch.BFloat16Storage", c10::kBFloat16},
      {"torch.LongStorage", c10::kLong},   {"torch.IntStorage", c10::kInt},
      {"torch.ShortStorage", c10::kShort}, {"torch.CharStorage", c10::kChar},
      {"torch.ByteStorage", c10::kByte},   {"torch.BoolStorage", c10::kBool},
      {"torch.UntypedStorage", c10::kByte}};
  return *types;
}

// BINPERSID with ('storage', torch.<Type>Storage, key, location, numel): the
// storage is the zip record data/<key>, read as a flat CPU tensor.
absl::Status PickleReader::PersistentLoad() {
  auto pid = PopValue();
  if (!pid.ok()) return pid.status();
  kept_.push_back(*pid);
  // The storage type, a global inside the tuple, is there as its name (see
  // PushGlobal).
  if (!pid->isTuple() || pid->toTupleRef().elements().size() != 5) {
    return absl::InvalidArgumentError("malformed pickle (persistent id is not a storage)");
  }
  const auto& e = pid->toTupleRef().elements();
  if (!e[0].isString() || e[0].toStringRef() != "storage" || !e[1].isString() || !e[2].isString() ||
      !e[4].isInt()) {
    return absl::InvalidArgumentError("malformed pickle (persistent id is not a storage)");
  }
  auto type = StorageTypes().find(e[1].toStringRef());
  if (type == StorageTypes().end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor storage of type ", e[1].toStringRef(), " is not supported"));
  }
  auto storage = records_(e[2].toStringRef(), type->second, e[4].toInt());
  if (!storage.ok()) return storage.status();
  stack_.push_back(Item{Item::kValue, *storage, {}});
  return absl::OkStatus();
}

absl::StatusOr<c10::IValue> PickleReader::RebuildTensor(const c10::ivalue::Tuple& args) {
  const auto& a = args.elements();
  if (a.size() < 4 || !a[0].isTensor() || !a[1].isInt() || !a[2].isTuple() || !a[3].isTuple()) {
    return absl::InvalidArgumentError("malformed tensor in pickle");
  }
  std::vector<int64_t> sizes, strides;
  for (const auto& v : a[2].toTupleRef().elements()) sizes.push_back(v.isInt() ? v.toInt() : -1);
  for (const auto& v : a[3].toTupleRef().elements()) strides.push_back(v.isInt() ? v.toInt() : -1);
  const torch::Tensor& storage = a[0].toTensor();
  const int64_t offset = a[1].toInt();
  // The last element the view reaches must lie inside the storage; every
  // step is checked for overflow, so hostile sizes cannot wrap around.
  bool valid = sizes.size() == strides.size() && offset >= 0;
  bool empty = false;
  int64_t last = offset;
  for (size_t i = 0; valid && i < sizes.size(); ++i) {
    int64_t reach = 0;
    valid = sizes[i] >= 0 && strides[i] >= 0 &&
            !__builtin_mul_overflow(std::max<int64_t>(sizes[i] - 1, 0), strides[i], &reach) &&
            !__builtin_add_overflow(last, reach, &last);
    empty |= sizes[i] == 0;
  }
  if (!valid || (!empty && last >= storage.numel())) {
    return absl::InvalidArgumentError("tensor in pickle reaches outside its storage");
  }
  if (empty) return torch::empty(sizes, storage.options());
  return storage.as_strided(sizes, strides, offset).clone();
}

absl::StatusOr<c10::IValue> PickleReader::Call(const std::string& global,
                                               const c10::ivalue::Tuple& args) {
  const auto& a = args.elements();
  if (global == "collections.OrderedDict" || global == "builtins.dict") {
    if (!a.empty()) return absl::InvalidArgumentError("OrderedDict with arguments in pickle");
    return NewDict();
  }
  if (global == "torch._utils._rebuild_tensor_v2") return RebuildTensor(args);
  if (global == "torch._utils._rebuild_parameter" && !a.empty() && a[0].isTensor()) return a[0];
  // torch::pickle_save's wrappers of typed lists and dicts: the value itself.
  if (absl::StartsWith(global, "torch.jit._pickle.") && !a.empty()) return a[0];
  return absl::InvalidArgumentError(
      absl::StrCat("pickle calls ", global, ", which a file of plain data does not hold"));
}

// Copies the zip record data/<key> into a flat tensor of numel elements.
absl::StatusOr<torch::Tensor> ReadStorage(caffe2::serialize::PyTorchStreamReader& zip,
                                          const std::string& key, c10::ScalarType type,
                                          int64_t numel) {
  const std::string name = "data/" + key;
  if (numel < 0 || !zip.hasRecord(name)) {
    return absl::InvalidArgumentError(absl::StrCat("the zip has no tensor record ", name));
  }
  auto [data, size] = zip.getRecord(name);
  const size_t element = c10::elementSize(type);
  const size_t needed = static_cast<size_t>(numel) * element;
  if (static_cast<size_t>(numel) > size / element) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor record ", name, " holds ", size, " bytes, expected ", needed));
  }
  torch::Tensor storage = torch::empty({numel}, torch::TensorOptions().dtype(type));
  if (needed > 0) std::memcpy(storage.data_ptr(), data.get(), needed);
  return storage;
}

// Names what the bytes are when they are not a torch.save zip file.
absl::Status NotAZip(const std::vector<char>& bytes) {
  if (StartsWith(bytes, kLegacyMagic, sizeof kLegacyMagic)) {
    return absl::InvalidArgumentError(
        "legacy PyTorch format (torch.save with _use_new_zipfile_serialization=False), which "
        "is not read: save it again with torch.save(obj, path) in the default zip format");
  }
  if (!bytes.empty() && static_cast<uint8_t>(bytes[0]) == 0x80) {
    return absl::InvalidArgumentError(
        "a bare pickle, not a PyTorch file: save it with torch.save(obj, path)");
  }
  return absl::InvalidArgumentError(
      "not a PyTorch file (neither the zip format torch.save writes nor its legacy format)");
}

// Opens the zip; the messages separate a cut file from a zip of another kind.
absl::StatusOr<std::unique_ptr<caffe2::serialize::PyTorchStreamReader>> OpenZip(
    const std::vector<char>& bytes) {
  if (!StartsWith(bytes, "PK\x03\x04", 4)) return NotAZip(bytes);
  try {
    auto adapter = std::make_shared<caffe2::serialize::MemoryReadAdapter>(
        bytes.data(), static_cast<off_t>(bytes.size()));
    return std::make_unique<caffe2::serialize::PyTorchStreamReader>(adapter);
  } catch (const std::exception& e) {
    std::string what = e.what();
    what = what.substr(0, what.find('\n'));
    // LibTorch prefixes "[enforce fail at FILE:LINE] . ": not for users.
    if (const size_t end = what.find("] . ");
        what.rfind("[enforce", 0) == 0 && end != std::string::npos) {
      what = what.substr(end + 4);
    }
    // The bytes open with a zip entry, so a zip whose end is missing is a
    // file cut short.
    if (what.find("central directory") != std::string::npos ||
        what.find("not a ZIP archive") != std::string::npos) {
      return absl::InvalidArgumentError(
          "truncated: a zip file whose directory at the end is missing");
    }
    return absl::InvalidArgumentError(
        absl::StrCat("a zip file, but not one torch.save wrote (", what, ")"));
  }
}

absl::StatusOr<c10::IValue> ReadZip(caffe2::serialize::PyTorchStreamReader& zip) {
  if (!zip.hasRecord("data.pkl")) {
    return absl::InvalidArgumentError("a zip file without data.pkl: not written by torch.save");
  }
  if (zip.hasRecord("constants.pkl") || zip.hasRecord("code/__torch__.py")) {
    return absl::InvalidArgumentError(
        "a TorchScript module (torch.jit.save), not a weight file: save {\"format\": "
        "\"lla-net/1\", \"state_dict\": model.state_dict(), \"meta\": {...}} with torch.save");
  }
  auto [pickle, size] = zip.getRecord("data.pkl");
  PickleReader reader(static_cast<const char*>(pickle.get()), size,
                      [&zip](const std::string& key, c10::ScalarType type, int64_t numel) {
                        return ReadStorage(zip, key, type, numel);
                      });
  return reader.Run();
}

}  // namespace

absl::StatusOr<c10::IValue> ReadTorchFile(const std::vector<char>& bytes) {
  auto zip = OpenZip(bytes);
  if (!zip.ok()) return zip.status();
  try {
    return ReadZip(**zip);
  } catch (const std::exception& e) {
    // Records with a bad checksum or cut short inside an intact directory.
    std::string what = e.what();
    return absl::InvalidArgumentError(
        absl::StrCat("damaged PyTorch file: ", what.substr(0, what.find('\n'))));
  }
}

}  // namespace fer
