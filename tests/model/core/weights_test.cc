#include "model/core/weights.h"

#include <caffe2/serialize/in_memory_adapter.h>
#include <caffe2/serialize/inline_container.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>

#include "model/core/engine.h"
#include "model/core/torch_file.h"
#include "tests/support/temp_dir.h"

namespace fer {
namespace {

namespace fs = std::filesystem;

class WeightsTest : public ::testing::Test {
 protected:
  std::string Path(const std::string& name) const { return (dir_ / name).string(); }

  const test_support::TempDir scratch_{"fer_weights_test_"};
  const fs::path dir_ = scratch_.path();
};

void ExpectSameState(LlaNet a, LlaNet b, double tolerance = 0) {
  auto pa = a->named_parameters();
  auto ba = a->named_buffers();
  for (const auto& item : pa) {
    const torch::Tensor other = b->named_parameters()[item.key()];
    EXPECT_TRUE(torch::allclose(item.value(), other, 0, tolerance)) << item.key();
  }
  for (const auto& item : ba) {
    EXPECT_TRUE(torch::equal(item.value().to(torch::kFloat64),
                             b->named_buffers()[item.key()].to(torch::kFloat64)))
        << item.key();
  }
}

TEST_F(WeightsTest, RoundTripKeepsEveryTensorAndTheMeta) {
  torch::manual_seed(5);
  LlaNet net;
  {
    torch::NoGradGuard no_grad;
    for (auto& b : net->named_buffers()) {
      if (b.key().find("running_mean") != std::string::npos) b.value().normal_();
    }
  }
  ModelMeta meta = DefaultMeta();
  meta.input_size = 96;
  meta.mean = {0.1f, 0.2f, 0.3f};
  meta.std = {0.4f, 0.5f, 0.6f};
  meta.color = "rgb";
  meta.input_blur = 0.05;
  meta.trained_on = "unit test";
  meta.version = "v-test";
  meta.metrics = {{"val_accuracy", 0.5}};
  ASSERT_TRUE(SaveWeightFile(Path("w.pt"), net, meta).ok());

  auto loaded = LoadWeightFile(Path("w.pt"));
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ExpectSameState(net, loaded->net);
  const ModelMeta& m = loaded->meta;
  EXPECT_EQ(m.input_size, 96);
  EXPECT_EQ(m.mean, meta.mean);
  EXPECT_EQ(m.std, meta.std);
  EXPECT_EQ(m.color, "rgb");
  EXPECT_DOUBLE_EQ(m.input_blur, 0.05);
  EXPECT_EQ(m.trained_on, "unit test");
  EXPECT_EQ(m.version, "v-test");
  EXPECT_EQ(m.labels, meta.labels);
  EXPECT_DOUBLE_EQ(m.metrics.at("val_accuracy"), 0.5);
  EXPECT_FALSE(m.untrained());
}

TEST_F(WeightsTest, HalfPrecisionFileHalvesTheSizeAndLoadsAsFloat32) {
  torch::manual_seed(6);
  LlaNet net;
  ASSERT_TRUE(SaveWeightFile(Path("full.pt"), net, DefaultMeta()).ok());
  ASSERT_TRUE(SaveWeightFile(Path("half.pt"), net, DefaultMeta(), StoredPrecision::kFloat16).ok());
  EXPECT_LT(fs::file_size(Path("half.pt")), fs::file_size(Path("full.pt")) * 0.55);
  auto loaded = LoadWeightFile(Path("half.pt"));
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->net->conv1->weight.scalar_type(), torch::kFloat32);
  ExpectSameState(net, loaded->net, /*tolerance=*/1e-3);
}

TEST_F(WeightsTest, ArchitectureMismatchNamesTheFirstOffendingTensor) {
  // Kernel-1 attention weights under a meta that promises kernel 3.
  ASSERT_TRUE(SaveWeightFile(Path("k1.pt"), LlaNet(ArchOptions{7, 1, true}), DefaultMeta()).ok());
  auto status = LoadWeightFile(Path("k1.pt")).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(
      status.message().find("llam.conv.weight has shape [64, 128, 1, 1], expected [64, 128, 3, 3]"),
      std::string::npos)
      << status;

  // A plain ResNet-18 file read as LLA-Net: the attention weights are missing.
  ASSERT_TRUE(
      SaveWeightFile(Path("plain.pt"), LlaNet(ArchOptions{7, 3, false}), DefaultMeta()).ok());
  status = LoadWeightFile(Path("plain.pt")).status();
  EXPECT_NE(status.message().find("missing layer1.0.llam.conv.weight"), std::string::npos)
      << status;

  // LLA-Net weights under a meta that says attention is off: unexpected names.
  ASSERT_TRUE(
      SaveWeightFile(Path("extra.pt"), LlaNet(), DefaultMeta(ArchOptions{7, 3, false})).ok());
  status = LoadWeightFile(Path("extra.pt")).status();
  EXPECT_NE(status.message().find("unexpected layer"), std::string::npos) << status;
}

TEST_F(WeightsTest, MissingTruncatedAndForeignFilesAreClearErrors) {
  EXPECT_EQ(LoadWeightFile(Path("absent.pt")).status().code(), absl::StatusCode::kNotFound);

  ASSERT_TRUE(SaveWeightFile(Path("w.pt"), LlaNet(), DefaultMeta()).ok());
  std::ifstream in(Path("w.pt"), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (size_t length : {size_t{0}, size_t{10}, bytes.size() / 2, bytes.size() - 100}) {
    std::ofstream(Path("cut.pt"), std::ios::binary).write(bytes.data(), length);
    auto status = LoadWeightFile(Path("cut.pt")).status();
    EXPECT_FALSE(status.ok()) << "length " << length;
    EXPECT_NE(status.message().find("cut.pt"), std::string::npos) << status;
    EXPECT_NE(status.message().find(length == 0 ? "is empty" : "truncated"), std::string::npos)
        << status;
  }

  std::mt19937 rng(1);
  std::string noise(4096, '\0');
  for (char& c : noise) c = static_cast<char>(rng());
  std::ofstream(Path("noise.pt"), std::ios::binary) << noise;
  EXPECT_EQ(LoadWeightFile(Path("noise.pt")).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(LoadWeightFile(Path("noise.pt")).status().message().find("not a PyTorch file"),
            std::string::npos);

  // A valid pickle that is not an LLA-Net weight file.
  std::vector<char> tensor_file = torch::pickle_save(torch::ones({2, 2}));
  std::ofstream(Path("tensor.pt"), std::ios::binary).write(tensor_file.data(), tensor_file.size());
  auto status = LoadWeightFile(Path("tensor.pt")).status();
  EXPECT_NE(status.message().find("not an LLA-Net weight file"), std::string::npos) << status;
}

TEST_F(WeightsTest, FoldersFifosAndUnreadableSpecialFilesAreClearErrors) {
  for (const std::string& path :
       {dir_.string(), std::string("/proc/self/mem"), std::string("/dev/zero")}) {
    SCOPED_TRACE(path);
    auto status = LoadWeightFile(path).status();
    EXPECT_FALSE(status.ok());
    EXPECT_NE(status.message().find("cannot read weight file " + path), std::string::npos)
        << status;
  }
}

TEST_F(WeightsTest, NonFiniteWeightsAreRefusedNamingTheFirstSuchTensor) {
  struct Case {
    std::string tensor;
    float value;
  };
  for (const Case& c : {Case{"layer2.0.conv1.weight", std::nanf("")}, Case{"fc.bias", -HUGE_VALF},
                        Case{"bn1.running_var", HUGE_VALF}}) {
    SCOPED_TRACE(c.tensor);
    LlaNet net;
    {
      torch::NoGradGuard no_grad;
      torch::Tensor target;
      for (const auto& item : net->named_parameters()) {
        if (item.key() == c.tensor) target = item.value();
      }
      for (const auto& item : net->named_buffers()) {
        if (item.key() == c.tensor) target = item.value();
      }
      ASSERT_TRUE(target.defined());
      target.view(-1)[target.numel() / 2] = c.value;
    }
    ASSERT_TRUE(SaveWeightFile(Path("bad.pt"), net, DefaultMeta()).ok());
    auto status = LoadWeightFile(Path("bad.pt")).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
    EXPECT_NE(status.message().find(c.tensor + " holds NaN or infinite values"), std::string::npos)
        << status;
    EXPECT_NE(status.message().find("bad.pt"), std::string::npos) << status;
  }
}

// Python's torch.load reads our files and torch.save writes files we read.
TEST_F(WeightsTest, PythonTorchReadsAndWritesTheSameFormat) {
#ifndef FER_PYTHON_TORCH
  GTEST_SKIP() << "no python3 with torch found at configure time";
#else
  torch::manual_seed(7);
  LlaNet net;
  ASSERT_TRUE(SaveWeightFile(Path("cpp.pt"), net, DefaultMeta()).ok());
  const std::string script = Path("roundtrip.py");
  std::ofstream(script) << R"(import sys, torch
d = torch.load(sys.argv[1])
assert d["format"] == "lla-net/1", d["format"]
sd = d["state_dict"]
assert len(sd) == 122 + 16, len(sd)
assert tuple(sd["layer4.1.llam.conv.weight"].shape) == (512, 1024, 3, 3)
assert d["meta"]["labels"][4] == "happiness"
assert sum(v.numel() for k, v in sd.items() if "running" not in k and "num_batches" not in k) == 23715783
sd["fc.bias"] = sd["fc.bias"] + 1.0
d["meta"]["version"] = "from-python"
torch.save(d, sys.argv[2])
)";
  const std::string command =
      std::string(FER_PYTHON_TORCH) + " " + script + " " + Path("cpp.pt") + " " + Path("py.pt");
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
  auto loaded = LoadWeightFile(Path("py.pt"));
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->meta.version, "from-python");
  EXPECT_TRUE(torch::allclose(loaded->net->fc->bias, net->fc->bias + 1.0));
  EXPECT_TRUE(torch::equal(loaded->net->conv1->weight, net->conv1->weight));
#endif
}

// A torch.save zip holding data.pkl = pickle and the given other records.
std::vector<char> TorchZip(const std::string& pickle,
                           const std::vector<std::pair<std::string, std::string>>& records = {}) {
  std::vector<char> out;
  caffe2::serialize::PyTorchStreamWriter writer([&out](const void* data, size_t size) {
    out.insert(out.end(), static_cast<const char*>(data), static_cast<const char*>(data) + size);
    return size;
  });
  writer.writeRecord("data.pkl", pickle.data(), pickle.size());
  for (const auto& [name, bytes] : records) writer.writeRecord(name, bytes.data(), bytes.size());
  writer.writeEndOfFile();
  return out;
}

// Pickles as Python writes them, which LibTorch 1.13's own unpickler refuses
// or misreads: APPEND for a one-element list, an OrderedDict with its
// attributes (state_dict()'s _metadata), and calls of foreign functions.
TEST(TorchFileTest, ReadsPythonPicklesOfPlainDataAndRefusesForeignCalls) {
  using namespace std::string_literals;  // literals with NUL bytes inside
  auto list =
      ReadTorchFile(TorchZip("\x80\x02]q\x00K\x07"
                             "a."s));
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_TRUE(list->isList());
  ASSERT_EQ(list->toListRef().size(), 1u);
  EXPECT_EQ(list->toListRef()[0].toInt(), 7);

  const std::string ordered_dict =
      "\x80\x02"
      "ccollections\nOrderedDict\nq\x00)Rq\x01"
      "X\x01\x00\x00\x00"
      "aK\x05s}q\x02X\x09\x00\x00\x00_metadataq\x03}sb."s;
  auto dict = ReadTorchFile(TorchZip(ordered_dict));
  ASSERT_TRUE(dict.ok()) << dict.status();
  ASSERT_TRUE(dict->isGenericDict());
  EXPECT_EQ(dict->toGenericDict().size(), 1u);
  EXPECT_EQ(dict->toGenericDict().at("a").toInt(), 5);

  auto call =
      ReadTorchFile(TorchZip("\x80\x02"
                             "cos\nsystem\nX\x02\x00\x00\x00ls\x85R."s));
  EXPECT_FALSE(call.ok());
  EXPECT_NE(call.status().message().find("os.system"), std::string::npos) << call.status();

  std::string deep = "\x80\x02" + std::string(100000, ']') + std::string(99999, 'a') + ".";
  auto nested = ReadTorchFile(TorchZip(deep));
  EXPECT_FALSE(nested.ok());
  EXPECT_NE(nested.status().message().find("deeper than"), std::string::npos) << nested.status();
}

// Random damage to the pickle inside an intact zip (whose checksums are then
// right) never crashes the reader: every outcome is a value or an error.
TEST(TorchFileTest, DamagedPicklesAreErrorsNeverCrashes) {
  c10::impl::GenericDict file(c10::StringType::get(), c10::AnyType::get());
  file.insert("format", std::string("lla-net/1"));
  c10::Dict<std::string, torch::Tensor> state;
  state.insert("a", torch::rand({2, 3}));
  state.insert("b", torch::arange(4));
  file.insert("state_dict", state);
  c10::List<double> mean({0.5, 0.5, 0.5});
  file.insert("mean", mean);
  file.insert("labels", c10::List<std::string>({"x", "y"}));
  const std::vector<char> saved = torch::pickle_save(file);
  caffe2::serialize::PyTorchStreamReader reader(
      std::make_shared<caffe2::serialize::MemoryReadAdapter>(saved.data(), saved.size()));
  auto record = [&reader](const std::string& name) {
    auto [data, size] = reader.getRecord(name);
    return std::string(static_cast<const char*>(data.get()), size);
  };
  const std::string pickle = record("data.pkl");
  std::vector<std::pair<std::string, std::string>> tensors;
  for (const std::string& name : reader.getAllRecords()) {
    if (name.rfind("data/", 0) == 0) tensors.emplace_back(name, record(name));
  }
  auto intact = ReadTorchFile(TorchZip(pickle, tensors));
  ASSERT_TRUE(intact.ok()) << intact.status();
  EXPECT_TRUE(torch::equal(
      intact->toGenericDict().at("state_dict").toGenericDict().at("a").toTensor(), state.at("a")));

  std::mt19937 rng(11);
  int errors = 0;
  for (int round = 0; round < 3000; ++round) {
    std::string damaged = pickle;
    if (round % 10 == 0) damaged.resize(rng() % pickle.size());
    for (int i = 0, n = 1 + rng() % 4; i < n && !damaged.empty(); ++i) {
      damaged[rng() % damaged.size()] = static_cast<char>(rng());
    }
    auto result = ReadTorchFile(TorchZip(damaged, tensors));
    if (!result.ok()) {
      ++errors;
      EXPECT_FALSE(result.status().message().empty());
    }
  }
  EXPECT_GT(errors, 1000);
}

#ifdef FER_PYTHON_TORCH
// Runs a Python script with scripts/ (lla_net.py) importable; true on exit 0.
bool RunPython(const std::string& script_path, const std::string& text,
               const std::vector<std::string>& args) {
  std::ofstream(script_path) << "import sys\nsys.path.insert(0, \"" FER_SOURCE_DIR "/scripts\")\n"
                             << text;
  std::string command = std::string(FER_PYTHON_TORCH) + " " + script_path;
  for (const std::string& arg : args) command += " '" + arg + "'";
  return std::system(command.c_str()) == 0;
}
#endif

// The user's path: a file from C++ (as fer-model init writes it) is trained a
// step in PyTorch with scripts/lla_net.py, saved the ordinary way (an
// OrderedDict state_dict, tuples and one-element lists in the meta, the zip
// format), read back by the C++ loader with the same outputs, edited and
// written from C++, and read again in PyTorch with the same outputs.
TEST_F(WeightsTest, PyTorchTrainedFileRoundTripsWithTheSameOutputs) {
#ifndef FER_PYTHON_TORCH
  GTEST_SKIP() << "no python3 with torch found at configure time";
#else
  torch::manual_seed(8);
  ASSERT_TRUE(SaveWeightFile(Path("init.pt"), LlaNet(), DefaultMeta()).ok());
  ASSERT_TRUE(RunPython(Path("train.py"), R"(import collections, torch, lla_net
src, dst, io = sys.argv[1:4]
torch.manual_seed(0)
model, meta = lla_net.load_weight_file(src)
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
model.train()
loss = torch.nn.functional.cross_entropy(model(torch.randn(4, 3, 112, 112)),
                                         torch.tensor([0, 1, 4, 6]))
loss.backward()
opt.step()
model.eval()
with torch.no_grad():
    model.fc.weight *= 20  # an edit; also spreads the probabilities compared below
    probe = torch.rand(3, 3, 112, 112)
    logits = model(probe)
state = model.state_dict()
assert type(state) is collections.OrderedDict, type(state)
meta.update(version="trained-in-python", trained_on="one SGD step", notes=["one element"],
            mean=(0.5, 0.5, 0.5), metrics={"loss": loss.item()})
torch.save({"format": "lla-net/1", "state_dict": state, "meta": meta}, dst)
# Faces as fer-server's engine takes them: 8-bit grey, input_size square.
faces = torch.randint(0, 256, (3, 112, 112), dtype=torch.uint8)
x = (faces.float() / 255).unsqueeze(1).repeat(1, 3, 1, 1)
x = (x - torch.tensor(meta["mean"]).view(1, 3, 1, 1)) / torch.tensor(meta["std"]).view(1, 3, 1, 1)
with torch.no_grad():
    probabilities = torch.softmax(model(x), 1)
torch.save({"probe": probe, "logits": logits, "faces": faces, "probabilities": probabilities}, io)
)",
                        {Path("init.pt"), Path("py.pt"), Path("io.pt")}));

  auto loaded = LoadWeightFile(Path("py.pt"));
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->meta.version, "trained-in-python");
  EXPECT_EQ(loaded->meta.trained_on, "one SGD step");
  EXPECT_GT(loaded->meta.metrics.at("loss"), 0);
  std::ifstream in(Path("io.pt"), std::ios::binary);
  std::vector<char> io_bytes((std::istreambuf_iterator<char>(in)),
                             std::istreambuf_iterator<char>());
  auto io = ReadTorchFile(io_bytes);
  ASSERT_TRUE(io.ok()) << io.status();
  const torch::Tensor probe = io->toGenericDict().at("probe").toTensor();
  const torch::Tensor py_logits = io->toGenericDict().at("logits").toTensor();
  torch::NoGradGuard no_grad;
  LlaNet net = loaded->net;
  net->eval();
  const torch::Tensor logits = net->forward(probe);
  // Same network, same library version, maybe other kernels: agreement to
  // float rounding, far below the logits' own spread.
  const double scale = py_logits.abs().max().item<double>();
  const double error = (logits - py_logits).abs().max().item<double>();
  std::cout << "C++ vs PyTorch logits: max error " << error << " of " << scale << "\n";
  EXPECT_GT(scale, 0);
  EXPECT_LE(error, 1e-3 * scale);
  // What fer-server computes: the engine (BatchNorm folded, channels-last)
  // on the same 8-bit faces gives PyTorch's probabilities.
  auto engine = Engine::Load(Path("py.pt"), EngineOptions{"cpu", "fp32", 0});
  ASSERT_TRUE(engine.ok()) << engine.status();
  const torch::Tensor faces = io->toGenericDict().at("faces").toTensor().contiguous();
  const torch::Tensor py_probabilities = io->toGenericDict().at("probabilities").toTensor();
  torch::Tensor probabilities = torch::zeros_like(py_probabilities);
  ASSERT_TRUE((*engine)
                  ->NewRunner()
                  ->Classify(faces.data_ptr<uint8_t>(), 3, probabilities.data_ptr<float>())
                  .ok());
  const double served_error = (probabilities - py_probabilities).abs().max().item<double>();
  std::cout << "engine vs PyTorch probabilities: max error " << served_error << "\n";
  EXPECT_LE(served_error, 1e-4);

  // The training step moved the weights: C++ did not just reload init.pt.
  auto init = LoadWeightFile(Path("init.pt"));
  ASSERT_TRUE(init.ok());
  EXPECT_FALSE(torch::equal(init->net->fc->weight, net->fc->weight));

  net->fc->bias.add_(0.5);
  ASSERT_TRUE(SaveWeightFile(Path("back.pt"), net, loaded->meta).ok());
  c10::Dict<std::string, torch::Tensor> expected;
  expected.insert("logits", net->forward(probe));
  std::vector<char> expected_bytes = torch::pickle_save(expected);
  std::ofstream(Path("cpp_logits.pt"), std::ios::binary)
      .write(expected_bytes.data(), expected_bytes.size());
  EXPECT_TRUE(RunPython(Path("check.py"), R"(import torch, lla_net
model, meta = lla_net.load_weight_file(sys.argv[1])
probe = torch.load(sys.argv[2])["probe"]
expected = torch.load(sys.argv[3])["logits"]
assert meta["version"] == "trained-in-python", meta["version"]
with torch.no_grad():
    got = model.eval()(probe)
err = (got - expected).abs().max().item()
assert err <= 1e-3 * expected.abs().max().item(), err
)",
                        {Path("back.pt"), Path("io.pt"), Path("cpp_logits.pt")}));
#endif
}

// Files a PyTorch user may hand over by mistake: each refusal says what the
// file is and what to do.
TEST_F(WeightsTest, PyTorchFilesThatAreNotWeightFilesAreRefusedSayingWhy) {
#ifndef FER_PYTHON_TORCH
  GTEST_SKIP() << "no python3 with torch found at configure time";
#else
  ASSERT_TRUE(RunPython(Path("write.py"), R"(import os, zipfile, torch, lla_net
out = sys.argv[1]
model = lla_net.LlaNet()
good = {"format": "lla-net/1", "state_dict": model.state_dict(), "meta": lla_net.default_meta()}
torch.save(good, os.path.join(out, "legacy.pt"), _use_new_zipfile_serialization=False)
torch.save(model.state_dict(), os.path.join(out, "bare_state.pt"))
torch.save({"format": "lla-net/1", "meta": good["meta"]}, os.path.join(out, "no_state.pt"))
torch.save({"format": "other/2", "state_dict": {}}, os.path.join(out, "other.pt"))
torch.save([torch.ones(2)], os.path.join(out, "list.pt"))
torch.save({"format": "lla-net/1", "state_dict": {}, "meta": {}, "x": model.fc},
           os.path.join(out, "module.pt"))
torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), os.path.join(out, "script.pt"))
with zipfile.ZipFile(os.path.join(out, "plain.zip"), "w") as z:
    z.writestr("notes/readme.txt", "hello")
)",
                        {dir_.string()}));
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"legacy.pt", "legacy PyTorch format"},
      {"bare_state.pt", "bare state_dict"},
      {"no_state.pt", "no \"state_dict\" key"},
      {"other.pt", "\"format\" is \"other/2\", expected \"lla-net/1\""},
      {"list.pt", "it holds a list"},
      {"module.pt", "torch.nn.modules.linear.Linear"},
      {"script.pt", "TorchScript module"},
      {"plain.zip", "a zip file, but not one torch.save wrote"},
  };
  for (const auto& [name, expected] : cases) {
    auto status = LoadWeightFile(Path(name)).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << name << ": " << status;
    EXPECT_NE(status.message().find(expected), std::string::npos) << name << ": " << status;
    EXPECT_EQ(status.message().find("truncated or foreign"), std::string::npos) << status;
  }
#endif
}

}  // namespace
}  // namespace fer
