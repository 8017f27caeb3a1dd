// Output formats of fer-client classify and stream: exact text, CSV quoting,
// JSON that a real parser accepts, and the columns with and without smoothing.
#include "client/output_format.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <limits>
#include <string>
#include <vector>

#include "tests/client/json_test_util.h"

namespace fer::client {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

const std::vector<std::string> kLabels = {"neutral",   "anger",   "disgust", "fear",
                                          "happiness", "sadness", "surprise"};

Scores HappyScores() {
  return Scores::FromProbabilities({0.05f, 0.01f, 0.01f, 0.02f, 0.85f, 0.03f, 0.03f});
}

TEST(ChooseOutputFormatTest, FollowsTheFlagsAndRefusesBoth) {
  EXPECT_EQ(*ChooseOutputFormat(false, false, OutputFormat::kText), OutputFormat::kText);
  EXPECT_EQ(*ChooseOutputFormat(true, false, OutputFormat::kText), OutputFormat::kJson);
  EXPECT_EQ(*ChooseOutputFormat(false, true, OutputFormat::kText), OutputFormat::kCsv);
  EXPECT_FALSE(ChooseOutputFormat(true, true, OutputFormat::kText).ok());
}

TEST(EscapingTest, CsvFieldQuotesOnlyWhenNeeded) {
  EXPECT_EQ(CsvField("a.jpg"), "a.jpg");
  EXPECT_EQ(CsvField("a,b.jpg"), "\"a,b.jpg\"");
  EXPECT_EQ(CsvField("say \"hi\".jpg"), "\"say \"\"hi\"\".jpg\"");
  EXPECT_EQ(CsvField("two\nlines"), "\"two\nlines\"");
}

TEST(LabelNameTest, FallsBackToAnIndexedName) {
  EXPECT_EQ(LabelName(kLabels, 4), "happiness");
  EXPECT_EQ(LabelName(kLabels, 7), "label7");
  EXPECT_EQ(LabelName({}, 0), "label0");
}

TEST(ClassifyFormatTest, TextIsOneReadableLinePerFace) {
  EXPECT_EQ(ClassifyLine(OutputFormat::kText, kLabels, "faces/a.jpg", HappyScores()),
            "faces/a.jpg  happiness 0.8500  neutral=0.0500 anger=0.0100 disgust=0.0100 "
            "fear=0.0200 happiness=0.8500 sadness=0.0300 surprise=0.0300\n");
  EXPECT_EQ(ClassifyHeader(OutputFormat::kText, kLabels), "");
}

TEST(ClassifyFormatTest, CsvHasAHeaderAndOneRowPerFace) {
  EXPECT_EQ(ClassifyHeader(OutputFormat::kCsv, kLabels),
            "file,label,confidence,neutral,anger,disgust,fear,happiness,sadness,surprise\n");
  EXPECT_EQ(ClassifyLine(OutputFormat::kCsv, kLabels, "x,y.jpg", HappyScores()),
            "\"x,y.jpg\",happiness,0.8500,0.0500,0.0100,0.0100,0.0200,0.8500,0.0300,0.0300\n");
}

TEST(ClassifyFormatTest, JsonIsOneParsableObjectPerLine) {
  const std::string line = ClassifyLine(OutputFormat::kJson, kLabels, "q\"uote.jpg", HappyScores());
  ASSERT_EQ(test::Lines(line).size(), 1u);
  google::protobuf::Struct object;
  std::string error;
  ASSERT_TRUE(test::ParseJsonObject(line, &object, &error)) << error << "\n" << line;
  EXPECT_EQ(test::String(object, "file"), "q\"uote.jpg");
  EXPECT_EQ(test::String(object, "label"), "happiness");
  EXPECT_NEAR(test::Number(object, "confidence"), 0.85, 1e-4);
  const auto& probabilities = object.fields().at("probabilities").struct_value().fields();
  EXPECT_EQ(probabilities.size(), kLabels.size());
  EXPECT_NEAR(probabilities.at("sadness").number_value(), 0.03, 1e-4);
}

TEST(ClassifyFormatTest, ACenterShareEndsEachFormatsLine) {
  EXPECT_EQ(ClassifyLine(OutputFormat::kText, kLabels, "a.jpg", HappyScores(), 0.41234f),
            "a.jpg  happiness 0.8500  neutral=0.0500 anger=0.0100 disgust=0.0100 "
            "fear=0.0200 happiness=0.8500 sadness=0.0300 surprise=0.0300  center_share=0.4123\n");
  EXPECT_EQ(ClassifyHeader(OutputFormat::kCsv, kLabels, /*with_center_share=*/true),
            "file,label,confidence,neutral,anger,disgust,fear,happiness,sadness,surprise,"
            "center_share\n");
  EXPECT_EQ(ClassifyLine(OutputFormat::kCsv, kLabels, "a.jpg", HappyScores(), 0.5f),
            "a.jpg,happiness,0.8500,0.0500,0.0100,0.0100,0.0200,0.8500,0.0300,0.0300,0.5000\n");
  const std::string line =
      ClassifyLine(OutputFormat::kJson, kLabels, "a.jpg", HappyScores(), 0.25f);
  google::protobuf::Struct object;
  std::string error;
  ASSERT_TRUE(test::ParseJsonObject(line, &object, &error)) << error << "\n" << line;
  EXPECT_NEAR(test::Number(object, "center_share"), 0.25, 1e-4);
  // Without one, nothing changes.
  EXPECT_EQ(ClassifyLine(OutputFormat::kJson, kLabels, "a.jpg", HappyScores()).find("center_share"),
            std::string::npos);
}

// Escaping itself is fer::JsonString's (tests/model/common/json_text_test.cc); this
// checks that the client applies it to paths and that parsers get the path back.
TEST(ClassifyFormatTest, JsonEscapesThePathAndKeepsUtf8) {
  const std::string path = "a\"b\\c\nd\x01/über.jpg";
  const std::string line = ClassifyLine(OutputFormat::kJson, kLabels, path, HappyScores());
  EXPECT_THAT(line, StartsWith(R"({"file":"a\"b\\c\nd\u0001/über.jpg","label":"happiness",)"));
  google::protobuf::Struct object;
  std::string error;
  ASSERT_TRUE(test::ParseJsonObject(line, &object, &error)) << error << "\n" << line;
  EXPECT_EQ(test::String(object, "file"), path);
}

StreamFrame TwoFaceFrame(bool smoothed) {
  StreamFrame frame;
  frame.index = 12;
  frame.timestamp_ms = 480.0;
  StreamFace a;
  a.box = {10, 20, 64, 64};
  a.track_id = 3;
  a.scores = HappyScores();
  if (smoothed) a.raw = Scores::FromProbabilities({0.9f, 0.1f, 0, 0, 0, 0, 0});
  StreamFace b = a;
  b.box = {200, 20, 50, 50};
  b.track_id = 4;
  frame.faces = {a, b};
  return frame;
}

TEST(StreamFormatTest, CsvHasOneRowPerFaceWithFrameTimeBoxAndTrack) {
  EXPECT_EQ(StreamHeader(OutputFormat::kCsv, kLabels, false),
            "frame,timestamp_ms,face,track,x,y,width,height,label,confidence,neutral,anger,"
            "disgust,fear,happiness,sadness,surprise\n");
  const std::vector<std::string> rows =
      test::Lines(StreamLines(OutputFormat::kCsv, kLabels, TwoFaceFrame(false), false));
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0],
            "12,480.0,0,3,10,20,64,64,happiness,0.8500,0.0500,0.0100,0.0100,0.0200,"
            "0.8500,0.0300,0.0300");
  EXPECT_THAT(rows[1], StartsWith("12,480.0,1,4,200,20,50,50,happiness,"));
}

TEST(StreamFormatTest, SmoothedCsvKeepsTheRawScoresInTheirOwnColumns) {
  const std::string header = StreamHeader(OutputFormat::kCsv, kLabels, true);
  EXPECT_THAT(header, HasSubstr(",surprise,raw_label,raw_confidence,raw_neutral,"));
  const std::vector<std::string> rows =
      test::Lines(StreamLines(OutputFormat::kCsv, kLabels, TwoFaceFrame(true), true));
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_THAT(rows[0], HasSubstr(",happiness,0.8500,"));
  EXPECT_THAT(rows[0], HasSubstr(",neutral,0.9000,0.9000,0.1000,"));
  // Same column count as the header.
  EXPECT_EQ(std::count(rows[0].begin(), rows[0].end(), ','),
            std::count(header.begin(), header.end(), ','));
}

TEST(StreamFormatTest, CsvPrintsNothingForAFrameWithoutFaces) {
  StreamFrame empty;
  empty.index = 3;
  EXPECT_EQ(StreamLines(OutputFormat::kCsv, kLabels, empty, false), "");
}

TEST(StreamFormatTest, JsonIsExactlyOneLinePerFrameEvenWithoutFacesOrOnError) {
  const std::string line = StreamLines(OutputFormat::kJson, kLabels, TwoFaceFrame(true), true);
  ASSERT_EQ(test::Lines(line).size(), 1u);
  google::protobuf::Struct object;
  std::string error;
  ASSERT_TRUE(test::ParseJsonObject(line, &object, &error)) << error << "\n" << line;
  EXPECT_EQ(test::Number(object, "frame"), 12);
  EXPECT_EQ(test::Number(object, "timestamp_ms"), 480);
  const auto& faces = object.fields().at("faces").list_value();
  ASSERT_EQ(faces.values_size(), 2);
  const auto& face = faces.values(0).struct_value();
  EXPECT_EQ(test::String(face, "label"), "happiness");
  EXPECT_EQ(test::Number(face, "track"), 3);
  EXPECT_EQ(face.fields().at("box").list_value().values(2).number_value(), 64);
  EXPECT_EQ(test::String(face.fields().at("raw").struct_value(), "label"), "neutral");

  StreamFrame failed;
  failed.index = 4;
  failed.error = "INVALID_ARGUMENT: face 0: \"bad\"";
  const std::string failed_line = StreamLines(OutputFormat::kJson, kLabels, failed, false);
  ASSERT_EQ(test::Lines(failed_line).size(), 1u);
  ASSERT_TRUE(test::ParseJsonObject(failed_line, &object, &error)) << error;
  EXPECT_EQ(test::String(object, "error"), failed.error);
  EXPECT_EQ(object.fields().at("faces").list_value().values_size(), 0);
  EXPECT_EQ(StreamHeader(OutputFormat::kJson, kLabels, true), "");
}

// A broken model (or server) can answer NaN or infinite probabilities; the
// JSON lines stay JSON, with null in their place.
TEST(JsonFormatTest, NonFiniteProbabilitiesAreNullAndTheLineStaysJson) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  Scores scores;
  scores.probabilities = {nan, nan, 0.5f, inf, -inf, nan, nan};
  scores.top = 0;
  const std::string line = ClassifyLine(OutputFormat::kJson, kLabels, "face.jpg", scores);
  google::protobuf::Struct object;
  std::string error;
  ASSERT_TRUE(test::ParseJsonObject(line, &object, &error)) << error << "\n" << line;
  EXPECT_EQ(object.fields().at("confidence").kind_case(), google::protobuf::Value::kNullValue);
  const auto& probabilities = object.fields().at("probabilities").struct_value().fields();
  EXPECT_EQ(probabilities.at("neutral").kind_case(), google::protobuf::Value::kNullValue);
  EXPECT_EQ(probabilities.at("fear").kind_case(), google::protobuf::Value::kNullValue);
  EXPECT_EQ(probabilities.at("happiness").kind_case(), google::protobuf::Value::kNullValue);
  EXPECT_NEAR(probabilities.at("disgust").number_value(), 0.5, 1e-6);

  StreamFrame frame;
  frame.index = 1;
  frame.timestamp_ms = nan;
  frame.faces.push_back(StreamFace{FaceBox{1, 2, 3, 4}, 0, scores, scores});
  const std::string stream_line = StreamLines(OutputFormat::kJson, kLabels, frame, true);
  ASSERT_TRUE(test::ParseJsonObject(stream_line, &object, &error)) << error << "\n" << stream_line;
  EXPECT_EQ(object.fields().at("timestamp_ms").kind_case(), google::protobuf::Value::kNullValue);
  EXPECT_THAT(stream_line, ::testing::Not(HasSubstr("nan")));
  EXPECT_THAT(stream_line, ::testing::Not(HasSubstr("inf")));
}

}  // namespace
}  // namespace fer::client
