#include "tests/integration/grpc_probes.h"

#include <chrono>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "google/protobuf/unknown_field_set.h"
#include "grpcpp/generic/generic_stub.h"

namespace dtmd::testing {
namespace {

using google::protobuf::UnknownField;
using google::protobuf::UnknownFieldSet;

constexpr std::chrono::seconds kProbeDeadline{5};

absl::Status FromGrpc(const grpc::Status& status) {
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      status.error_message());
}

std::string Flatten(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  std::string out;
  if (!buffer.Dump(&slices).ok()) return out;
  for (const grpc::Slice& s : slices) {
    out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  return out;
}

grpc::ByteBuffer ToBuffer(const std::string& bytes) {
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

// Waits for the completion-queue event of `tag`; false if the operation
// failed or another tag came.
bool Await(grpc::CompletionQueue* cq, void* tag) {
  void* got = nullptr;
  bool ok = false;
  return cq->Next(&got, &ok) && ok && got == tag;
}

// The bytes of every length-delimited field numbered `number` of `fields`
// (submessages, strings), in order.
std::vector<std::string> LengthDelimited(const UnknownFieldSet& fields,
                                         int number) {
  std::vector<std::string> out;
  for (int i = 0; i < fields.field_count(); ++i) {
    const UnknownField& field = fields.field(i);
    if (field.number() == number &&
        field.type() == UnknownField::TYPE_LENGTH_DELIMITED) {
      out.push_back(field.length_delimited());
    }
  }
  return out;
}

// Field `number` of the message `bytes`, as a string ("" if absent).
std::string StringField(const std::string& bytes, int number) {
  UnknownFieldSet fields;
  if (!fields.ParseFromString(bytes)) return "";
  std::vector<std::string> values = LengthDelimited(fields, number);
  return values.empty() ? "" : values.front();
}

}  // namespace

absl::StatusOr<grpc::health::v1::HealthCheckResponse::ServingStatus>
CheckHealth(const std::shared_ptr<grpc::Channel>& channel) {
  grpc::GenericStub stub(channel);
  grpc::ByteBuffer request =
      ToBuffer(grpc::health::v1::HealthCheckRequest().SerializeAsString());
  grpc::ByteBuffer response;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + kProbeDeadline);
  absl::Notification done;
  grpc::Status status;
  stub.UnaryCall(&context, "/grpc.health.v1.Health/Check", grpc::StubOptions(),
                 &request, &response, [&](grpc::Status s) {
                   status = std::move(s);
                   done.Notify();
                 });
  done.WaitForNotification();
  if (!status.ok()) return FromGrpc(status);
  grpc::health::v1::HealthCheckResponse reply;
  if (!reply.ParseFromString(Flatten(response))) {
    return absl::DataLossError("unparsable HealthCheckResponse");
  }
  return reply.status();
}

absl::StatusOr<std::vector<std::string>> ListServicesByReflection(
    const std::shared_ptr<grpc::Channel>& channel) {
  // ServerReflectionRequest { string list_services = 7; }: "*" lists all.
  // Field 7, wire type 2 (length-delimited): tag byte (7 << 3) | 2.
  const std::string request_bytes = std::string("\x3a\x01*", 3);
  grpc::GenericStub stub(channel);
  grpc::CompletionQueue cq;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + kProbeDeadline);
  std::unique_ptr<grpc::GenericClientAsyncReaderWriter> call = stub.PrepareCall(
      &context,
      "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
  grpc::ByteBuffer request = ToBuffer(request_bytes);
  grpc::ByteBuffer response;
  // Each step's tag is its own address; a step runs only if the one before
  // it completed.
  int tags[5];
  call->StartCall(&tags[0]);
  bool exchanged = Await(&cq, &tags[0]);
  if (exchanged) {
    call->Write(request, &tags[1]);
    exchanged = Await(&cq, &tags[1]);
  }
  if (exchanged) {
    call->WritesDone(&tags[2]);
    exchanged = Await(&cq, &tags[2]);
  }
  if (exchanged) {
    call->Read(&response, &tags[3]);
    exchanged = Await(&cq, &tags[3]);
  }
  grpc::Status status;
  call->Finish(&status, &tags[4]);
  Await(&cq, &tags[4]);
  cq.Shutdown();
  void* ignored_tag;
  bool ignored_ok;
  while (cq.Next(&ignored_tag, &ignored_ok)) {
  }
  if (!status.ok()) return FromGrpc(status);
  if (!exchanged) return absl::UnknownError("reflection stream broke off");

  // ServerReflectionResponse { ListServiceResponse list_services_response = 6;
  //   ErrorResponse error_response = 7; }, ListServiceResponse {
  //   repeated ServiceResponse service = 1; }, ServiceResponse {
  //   string name = 1; }, ErrorResponse { string error_message = 2; }.
  UnknownFieldSet reply;
  if (!reply.ParseFromString(Flatten(response))) {
    return absl::DataLossError("unparsable ServerReflectionResponse");
  }
  std::vector<std::string> errors = LengthDelimited(reply, 7);
  if (!errors.empty()) {
    return absl::UnknownError(
        absl::StrCat("reflection error: ", StringField(errors[0], 2)));
  }
  std::vector<std::string> names;
  for (const std::string& list : LengthDelimited(reply, 6)) {
    UnknownFieldSet services;
    if (!services.ParseFromString(list)) {
      return absl::DataLossError("unparsable ListServiceResponse");
    }
    for (const std::string& service : LengthDelimited(services, 1)) {
      names.push_back(StringField(service, 1));
    }
  }
  return names;
}

}  // namespace dtmd::testing
