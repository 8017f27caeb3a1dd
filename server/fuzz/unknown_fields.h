// The unknown fields protobuf keeps when it parses a message: what
// server/wire_scan.h must count without parsing. Shared by the request fuzzer
// and tests/server/wire_scan_test.cc, which check the scan against the parse.
#ifndef FER_SERVER_FUZZ_UNKNOWN_FIELDS_H_
#define FER_SERVER_FUZZ_UNKNOWN_FIELDS_H_

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <google/protobuf/unknown_field_set.h>

#include <cstdint>
#include <vector>

namespace fer::fuzz {

// Unknown fields in set, inner fields of unknown groups included.
inline int64_t CountUnknown(const google::protobuf::UnknownFieldSet& set) {
  int64_t count = set.field_count();
  for (int i = 0; i < set.field_count(); ++i) {
    if (set.field(i).type() == google::protobuf::UnknownField::TYPE_GROUP) {
      count += CountUnknown(set.field(i).group());
    }
  }
  return count;
}

// Unknown fields in message and every message under it.
inline int64_t CountUnknown(const google::protobuf::Message& message) {
  using google::protobuf::FieldDescriptor;
  const google::protobuf::Reflection* reflection = message.GetReflection();
  int64_t count = CountUnknown(reflection->GetUnknownFields(message));
  std::vector<const FieldDescriptor*> fields;
  reflection->ListFields(message, &fields);
  for (const FieldDescriptor* field : fields) {
    if (field->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) continue;
    if (!field->is_repeated()) {
      count += CountUnknown(reflection->GetMessage(message, field));
      continue;
    }
    for (int i = 0; i < reflection->FieldSize(message, field); ++i) {
      count += CountUnknown(reflection->GetRepeatedMessage(message, field, i));
    }
  }
  return count;
}

}  // namespace fer::fuzz

#endif  // FER_SERVER_FUZZ_UNKNOWN_FIELDS_H_
