// sweep-health-probe: calls the standard gRPC health service (grpc.health.v1.Health/Check) of
// a server and exits 0 only when the reply is SERVING. Container health checks use it because
// Debian 12 packages no grpc_health_probe or grpcurl.
//
// Debian's gRPC packages ship no generated code for health.proto, so the probe sends the call
// through the generic stub and encodes the two one-field messages by hand:
//   HealthCheckRequest  { string service = 1; }
//   HealthCheckResponse { ServingStatus status = 1; }  UNKNOWN 0, SERVING 1, NOT_SERVING 2,
//                                                      SERVICE_UNKNOWN 3
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/wire_format_lite.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdint>
#include <future>
#include <iostream>
#include <optional>
#include <string>

#include "CLI/CLI.hpp"

namespace {

using google::protobuf::internal::WireFormatLite;

constexpr char kCheckMethod[] = "/grpc.health.v1.Health/Check";
constexpr int kServing = 1;

// Exit codes, so a script can tell a server that is down from one that is up but unwell.
constexpr int kExitServing = 0;
constexpr int kExitNotServing = 1;
constexpr int kExitUsage = 2;
constexpr int kExitCallFailed = 3;

std::string EncodeRequest(const std::string& service) {
  std::string bytes;
  if (service.empty()) return bytes;
  google::protobuf::io::StringOutputStream stream(&bytes);
  google::protobuf::io::CodedOutputStream output(&stream);
  output.WriteTag(WireFormatLite::MakeTag(1, WireFormatLite::WIRETYPE_LENGTH_DELIMITED));
  output.WriteVarint32(static_cast<uint32_t>(service.size()));
  output.WriteString(service);
  return bytes;
}

// Returns the status field of a HealthCheckResponse (0, UNKNOWN, when the field is absent),
// or nothing when the bytes are not a valid message.
std::optional<uint32_t> DecodeStatus(const std::string& bytes) {
  google::protobuf::io::CodedInputStream input(reinterpret_cast<const uint8_t*>(bytes.data()),
                                               static_cast<int>(bytes.size()));
  uint32_t status = 0;
  while (const uint32_t tag = input.ReadTag()) {
    const bool is_status = WireFormatLite::GetTagFieldNumber(tag) == 1 &&
                           WireFormatLite::GetTagWireType(tag) == WireFormatLite::WIRETYPE_VARINT;
    if (is_status) {
      if (!input.ReadVarint32(&status)) return std::nullopt;
    } else if (!WireFormatLite::SkipField(&input, tag)) {
      return std::nullopt;
    }
  }
  if (!input.ConsumedEntireMessage()) return std::nullopt;
  return status;
}

std::string ToString(const grpc::ByteBuffer& buffer) {
  grpc::Slice slice;
  if (!buffer.DumpToSingleSlice(&slice).ok()) return "";
  return std::string(reinterpret_cast<const char*>(slice.begin()), slice.size());
}

}  // namespace

int main(int argc, char** argv) {
  std::string address = "127.0.0.1:50051";
  std::string service;
  double timeout_seconds = 3;
  CLI::App app{"sweep-health-probe: exits 0 when a gRPC server's health service reports SERVING"};
  app.add_option("--address", address, "server address as HOST:PORT")->capture_default_str();
  app.add_option("--service", service,
                 "service name to check; empty checks the server as a whole");
  app.add_option("--timeout", timeout_seconds, "deadline of the call, in seconds")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    return app.exit(error) == 0 ? kExitServing : kExitUsage;
  }

  grpc::GenericStub stub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::milliseconds(static_cast<int64_t>(timeout_seconds * 1000)));
  const std::string request_bytes = EncodeRequest(service);
  grpc::Slice request_slice(request_bytes);
  grpc::ByteBuffer request(&request_slice, 1);
  grpc::ByteBuffer response;
  std::promise<grpc::Status> done;
  stub.UnaryCall(&context, kCheckMethod, grpc::StubOptions(), &request, &response,
                 [&done](grpc::Status status) { done.set_value(std::move(status)); });
  const grpc::Status status = done.get_future().get();

  if (!status.ok()) {
    std::cerr << "sweep-health-probe: health check of " << address << " failed: "
              << status.error_message() << " (gRPC code " << status.error_code() << ")\n";
    return kExitCallFailed;
  }
  const std::optional<uint32_t> serving_status = DecodeStatus(ToString(response));
  if (!serving_status.has_value()) {
    std::cerr << "sweep-health-probe: " << address << " sent an invalid HealthCheckResponse\n";
    return kExitNotServing;
  }
  if (*serving_status != kServing) {
    std::cerr << "sweep-health-probe: " << address << " reports status " << *serving_status
              << ", not SERVING (1)\n";
    return kExitNotServing;
  }
  std::cout << "SERVING\n";
  return kExitServing;
}
