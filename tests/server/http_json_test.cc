// The HTTP API's documents and status mapping (server/http_json.h) as pure
// functions: no server, no model.
#include "server/http_json.h"

#include <gmock/gmock.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace fer {
namespace {

using google::protobuf::RepeatedPtrField;
using ::testing::HasSubstr;
using Json = nlohmann::json;

absl::Status Parse(const std::string& body, int max_faces, RepeatedPtrField<fer::v1::Image>* faces,
                   fer::v1::ClassifyOptions* options) {
  return ParseClassifyJson(body, max_faces, faces, options);
}

// Expects body to be refused with INVALID_ARGUMENT saying what, and nothing
// decoded.
void ExpectRefused(const std::string& body, const std::string& what, int max_faces = 4) {
  SCOPED_TRACE(body);
  RepeatedPtrField<fer::v1::Image> faces;
  fer::v1::ClassifyOptions options;
  const absl::Status status = Parse(body, max_faces, &faces, &options);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr(what));
  EXPECT_EQ(faces.size(), 0);
}

TEST(HttpJsonTest, StatusCodesMapToHttpStatusesAndAnOverrideWins) {
  const std::pair<absl::StatusCode, int> table[] = {
      {absl::StatusCode::kOk, 200},
      {absl::StatusCode::kInvalidArgument, 400},
      {absl::StatusCode::kFailedPrecondition, 400},
      {absl::StatusCode::kNotFound, 404},
      {absl::StatusCode::kResourceExhausted, 429},
      {absl::StatusCode::kCancelled, 499},
      {absl::StatusCode::kUnimplemented, 501},
      {absl::StatusCode::kUnavailable, 503},
      {absl::StatusCode::kDeadlineExceeded, 504},
      {absl::StatusCode::kInternal, 500},
      {absl::StatusCode::kUnknown, 500},
      {absl::StatusCode::kDataLoss, 500},
  };
  for (const auto& [code, http] : table) {
    EXPECT_EQ(HttpStatusOf(absl::Status(code, code == absl::StatusCode::kOk ? "" : "x")), http)
        << absl::StatusCodeToString(code);
  }
  const absl::Status too_large =
      WithHttpStatus(absl::ResourceExhaustedError("big"), kHttpPayloadTooLarge);
  EXPECT_EQ(HttpStatusOf(too_large), 413);
  EXPECT_EQ(too_large.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(too_large.message(), "big");
}

TEST(HttpJsonTest, ErrorJsonCarriesTheGrpcCodeNameAndTheMessageUnchanged) {
  const Json json = Json::parse(ErrorJson(absl::InvalidArgumentError("face 1: \"bad\"\n")));
  EXPECT_EQ(json, Json::parse(R"({"error": {"code": "INVALID_ARGUMENT",
                                            "message": "face 1: \"bad\"\n"}})"));
  // Bytes that are not UTF-8 (a client's header echoed, say) still give JSON.
  EXPECT_NO_THROW(Json::parse(ErrorJson(absl::NotFoundError("no \xff\xfe"))));
}

TEST(HttpJsonTest, AClassifyBodyGivesItsFacesDecodedAndItsOptions) {
  RepeatedPtrField<fer::v1::Image> faces;
  fer::v1::ClassifyOptions options;
  const std::string body = absl::StrCat(R"({"faces": [")", absl::Base64Escape("first"), R"(", ")",
                                        absl::Base64Escape(std::string("\0\x01\xff", 3)),
                                        R"("], "ten_crop": true, "attention": true})");
  ASSERT_TRUE(Parse(body, 4, &faces, &options).ok());
  ASSERT_EQ(faces.size(), 2);
  EXPECT_EQ(faces[0].encoded(), "first");
  EXPECT_EQ(faces[1].encoded(), std::string("\0\x01\xff", 3));
  EXPECT_TRUE(options.ten_crop());
  EXPECT_TRUE(options.attention());

  // Options left out keep what they were (the query's).
  RepeatedPtrField<fer::v1::Image> one;
  fer::v1::ClassifyOptions preset;
  preset.set_ten_crop(true);
  ASSERT_TRUE(Parse(R"({"faces": ["eA=="], "attention": false})", 4, &one, &preset).ok());
  EXPECT_TRUE(preset.ten_crop());
  EXPECT_EQ(one.size(), 1);
}

TEST(HttpJsonTest, BodiesOutsideTheSchemaAreRefusedSayingWhy) {
  ExpectRefused(R"({"faces": ["eA==", "not base64!"]})", "face 1: not standard base64");
  ExpectRefused(R"({"faces": [1]})", "\"faces\" must hold base64 strings, not a number");
  ExpectRefused(R"({"faces": "eA=="})", "\"faces\" must be an array of base64 strings");
  ExpectRefused(R"({"faces": [["eA=="]]})", "\"faces\" must hold base64 strings, not an array");
  ExpectRefused(R"({"faces": ["eA=="], "ten_crop": "yes"})", "\"ten_crop\" must be true or false");
  ExpectRefused(R"({"faces": ["eA=="], "attention": 1})", "\"attention\" must be true or false");
  ExpectRefused(R"({"faces": ["eA=="], "tencrop": true})", "unknown key \"tencrop\"");
  ExpectRefused(R"({"faces": ["eA=="], "faces": ["eA=="]})", "\"faces\" appears twice");
  ExpectRefused(R"(["eA=="])", "the body must be a JSON object");
  ExpectRefused(R"({"faces": ["eA=="])", "the body is not JSON: parse error");
  ExpectRefused("", "the body is not JSON");
  ExpectRefused(R"({"faces": []})", "the request has no faces; send 1 or more");
  ExpectRefused(R"({"ten_crop": true})", "the request has no faces");
  // The same message as gRPC's for too many faces, with the whole count.
  ExpectRefused(R"({"faces": ["eA==", "eA==", "eA==", "eA==", "eA==", "eA=="]})",
                "6 faces in one request; the limit is 4");
}

TEST(HttpJsonTest, QueryParametersSetOptionsAndTheTimeout) {
  fer::v1::ClassifyOptions options;
  absl::Duration timeout = absl::InfiniteDuration();
  EXPECT_TRUE(ApplyClassifyParameter("ten_crop", "true", &options, &timeout).ok());
  EXPECT_TRUE(ApplyClassifyParameter("attention", "1", &options, &timeout).ok());
  EXPECT_TRUE(ApplyClassifyParameter("timeout_ms", "250", &options, &timeout).ok());
  EXPECT_TRUE(options.ten_crop());
  EXPECT_TRUE(options.attention());
  EXPECT_EQ(timeout, absl::Milliseconds(250));
  EXPECT_TRUE(ApplyClassifyParameter("ten_crop", "False", &options, &timeout).ok());
  EXPECT_FALSE(options.ten_crop());
  for (const auto& [key, value] :
       {std::pair{"ten_crop", "yes"}, std::pair{"timeout_ms", "0"}, std::pair{"timeout_ms", "-5"},
        std::pair{"timeout_ms", "1s"}, std::pair{"tencrop", "true"}}) {
    EXPECT_EQ(ApplyClassifyParameter(key, value, &options, &timeout).code(),
              absl::StatusCode::kInvalidArgument)
        << key << "=" << value;
  }
}

TEST(HttpJsonTest, ClassifyResponsesPrintFloatsShortestAndAttentionOnlyWhenSet) {
  RepeatedPtrField<fer::v1::Prediction> predictions;
  fer::v1::Prediction* plain = predictions.Add();
  for (float p : {0.1f, 0.25f, 0.65f}) plain->add_probabilities(p);
  plain->set_top_label_name("happiness");
  plain->set_confidence(0.65f);
  fer::v1::Prediction* with_map = predictions.Add();
  with_map->add_probabilities(1.0f);
  with_map->set_top_label_name("neutral");
  with_map->set_confidence(1.0f);
  fer::v1::AttentionMap* map = with_map->mutable_attention();
  map->set_height(1);
  map->set_width(2);
  map->add_values(0.5f);
  map->add_values(0.75f);
  map->set_center_share(0.3f);

  const std::string text = ClassifyResponseJson(predictions, "v7");
  EXPECT_THAT(text, HasSubstr(R"("probabilities":[0.1,0.25,0.65])"));
  const Json json = Json::parse(text);
  EXPECT_EQ(json["model_version"], "v7");
  ASSERT_EQ(json["predictions"].size(), 2u);
  EXPECT_EQ(json["predictions"][0]["label"], "happiness");
  EXPECT_FLOAT_EQ(json["predictions"][0]["confidence"].get<float>(), 0.65f);
  EXPECT_FALSE(json["predictions"][0].contains("attention"));
  EXPECT_EQ(json["predictions"][1]["attention"],
            Json::parse(R"({"height": 1, "width": 2, "values": [0.5, 0.75],
                            "center_share": 0.3})"));
}

TEST(HttpJsonTest, ModelInfoJsonIsProtobufsMappingWithEveryField) {
  fer::v1::ModelInfo info;
  info.add_labels("neutral");
  info.add_labels("happiness");
  info.set_version("v1");
  info.set_parameters(123);
  info.set_max_batch_size(8);
  const std::string json = ModelInfoJson(info);
  EXPECT_THAT(json, HasSubstr(R"("max_batch_size":8)"));
  EXPECT_THAT(json, HasSubstr(R"("instances":0)"));  // zero fields too
  fer::v1::ModelInfo back;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(json, &back).ok());
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(info, back));
}

TEST(HttpJsonTest, OipMetadataDescribesTheModelsTensors) {
  fer::v1::ModelInfo info;
  for (int i = 0; i < 7; ++i) info.add_labels(absl::StrCat("c", i));
  info.set_version("v3");
  const Json json = Json::parse(OipModelMetadataJson(info));
  EXPECT_EQ(json["name"], "lla-net");
  EXPECT_EQ(json["versions"], Json::parse(R"(["v3"])"));
  EXPECT_EQ(json["inputs"][0], Json::parse(R"({"name": "IMAGE", "datatype": "BYTES",
                                                "shape": [-1]})"));
  EXPECT_EQ(json["outputs"][0], Json::parse(R"({"name": "PROBABILITIES", "datatype": "FP32",
                                                 "shape": [-1, 7]})"));
  EXPECT_EQ(Json::parse(OipServerMetadataJson("1.2.3"))["version"], "1.2.3");
}

}  // namespace
}  // namespace fer
