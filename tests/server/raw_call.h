// Calls of fer.v1.ExpressionClassifier with arbitrary bytes as the messages,
// through gRPC's generic stub: what a client with a broken (or hostile)
// serializer sends. Used by the tests of malformed and oversized messages.
#ifndef FER_TESTS_SERVER_RAW_CALL_H_
#define FER_TESTS_SERVER_RAW_CALL_H_

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>
#include <grpcpp/completion_queue.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/support/byte_buffer.h>

#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <vector>

namespace fer {
namespace test_util {

inline constexpr char kClassifyMethod[] = "/fer.v1.ExpressionClassifier/Classify";
inline constexpr char kClassifyStreamMethod[] = "/fer.v1.ExpressionClassifier/ClassifyStream";

inline grpc::ByteBuffer ToByteBuffer(const std::string& bytes) {
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

inline std::string FromByteBuffer(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  std::string bytes;
  if (!buffer.Dump(&slices).ok()) return bytes;
  for (const grpc::Slice& slice : slices) {
    bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  }
  return bytes;
}

// One unary call of method with request as its message bytes; the answer's
// bytes in *response.
inline grpc::Status RawUnary(const std::shared_ptr<grpc::Channel>& channel,
                             const std::string& method, const std::string& request,
                             std::string* response, std::chrono::seconds deadline) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + deadline);
  const grpc::ByteBuffer request_buffer = ToByteBuffer(request);
  grpc::ByteBuffer response_buffer;
  std::promise<grpc::Status> done;
  stub.UnaryCall(&context, method, grpc::StubOptions(), &request_buffer, &response_buffer,
                 [&done](grpc::Status status) { done.set_value(std::move(status)); });
  grpc::Status status = done.get_future().get();
  *response = FromByteBuffer(response_buffer);
  return status;
}

// A bidirectional stream of method with byte messages, driven one operation
// at a time (the generic stub's asynchronous API behind a blocking face).
class RawStream {
 public:
  RawStream(const std::shared_ptr<grpc::Channel>& channel, const std::string& method,
            std::chrono::seconds deadline)
      : stub_(channel) {
    context_.set_deadline(std::chrono::system_clock::now() + deadline);
    call_ = stub_.PrepareCall(&context_, method, &queue_);
    call_->StartCall(this);
    started_ = Wait();
  }
  ~RawStream() {
    queue_.Shutdown();
    void* tag;
    bool ok;
    while (queue_.Next(&tag, &ok)) {
    }
  }
  RawStream(const RawStream&) = delete;
  RawStream& operator=(const RawStream&) = delete;

  bool Write(const std::string& bytes) {
    if (!started_) return false;
    call_->Write(ToByteBuffer(bytes), this);
    return Wait();
  }
  bool WritesDone() {
    if (!started_) return false;
    call_->WritesDone(this);
    return Wait();
  }
  // The next message's bytes; false once the server has ended the stream.
  bool Read(std::string* bytes) {
    if (!started_) return false;
    grpc::ByteBuffer buffer;
    call_->Read(&buffer, this);
    if (!Wait()) return false;
    *bytes = FromByteBuffer(buffer);
    return true;
  }
  grpc::Status Finish() {
    if (!started_) return grpc::Status(grpc::StatusCode::UNKNOWN, "the stream did not start");
    grpc::Status status;
    call_->Finish(&status, this);
    Wait();
    return status;
  }

 private:
  // Each operation above is the only one outstanding, so the next event is
  // its completion.
  bool Wait() {
    void* tag = nullptr;
    bool ok = false;
    return queue_.Next(&tag, &ok) && ok;
  }

  grpc::GenericStub stub_;
  grpc::ClientContext context_;
  grpc::CompletionQueue queue_;
  std::unique_ptr<grpc::GenericClientAsyncReaderWriter> call_;
  bool started_ = false;
};

}  // namespace test_util
}  // namespace fer

#endif  // FER_TESTS_SERVER_RAW_CALL_H_
