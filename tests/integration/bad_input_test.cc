// Bad input: every malformed request gets INVALID_ARGUMENT naming the field
// (or the status docs/protocol.md section 4 gives), and dtmd keeps serving.
#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "grpcpp/generic/generic_stub.h"
#include "gtest/gtest.h"
#include "tests/integration/saga_fixture.h"

namespace dtmd::testing {
namespace {

using ::testing::HasSubstr;

class BadInputTest : public SagaFixture {
 protected:
  dtmgimp::DtmRequest ValidRequest() {
    dtmgimp::DtmRequest request;
    request.set_gid(NewTestGid());
    request.set_transtype("saga");
    request.set_steps(absl::StrCat(R"([{"action":")", Url("A"),
                                   R"(","compensate":")", Url("CA"), R"("}])"));
    request.add_binpayloads("x");
    return request;
  }

  grpc::Status Submit(const dtmgimp::DtmRequest& request) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(10));
    google::protobuf::Empty empty;
    return dtmd_->dtm()->Submit(&context, request, &empty);
  }

  void ExpectInvalid(const dtmgimp::DtmRequest& request,
                     const std::string& field) {
    grpc::Status status = Submit(request);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << status.error_message();
    EXPECT_THAT(status.error_message(), HasSubstr(field));
  }

  // A request with one step whose action is `url` (a JSON string's text).
  dtmgimp::DtmRequest WithAction(absl::string_view url) {
    dtmgimp::DtmRequest request = ValidRequest();
    request.set_steps(absl::StrCat(R"([{"action":")", url, R"("}])"));
    return request;
  }

  // A unary call of `method` with `body` as the request bytes.
  grpc::Status RawCall(const std::string& method, const std::string& body,
                       std::shared_ptr<grpc::Channel> channel = nullptr) {
    grpc::GenericStub stub(channel != nullptr ? channel : dtmd_->channel());
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(10));
    grpc::Slice slice(body);
    grpc::ByteBuffer request(&slice, 1);
    grpc::ByteBuffer response;
    grpc::Status status;
    absl::Notification done;
    stub.UnaryCall(&context, method, grpc::StubOptions(), &request, &response,
                   [&](grpc::Status s) {
                     status = std::move(s);
                     done.Notify();
                   });
    done.WaitForNotification();
    return status;
  }

  // dtmd's peak resident memory so far (VmHWM), in KiB; 0 if unknown.
  int64_t DtmdPeakRssKib() {
    std::ifstream status(absl::StrCat("/proc/", dtmd_->pid(), "/status"));
    std::string line;
    while (std::getline(status, line)) {
      if (!absl::StartsWith(line, "VmHWM:")) continue;
      std::vector<absl::string_view> parts =
          absl::StrSplit(line, ' ', absl::SkipEmpty());
      int64_t kib = 0;
      if (parts.size() >= 2 && absl::SimpleAtoi(parts[1], &kib)) return kib;
    }
    return 0;
  }

  void TearDown() override {
    // Whatever came before, dtmd still serves.
    std::string gid;
    EXPECT_TRUE(dtmd::client::NewGid(dtmd_->dtm(), &gid).ok());
  }
};

TEST_F(BadInputTest, ValidRequestIsAccepted) {
  EXPECT_TRUE(Submit(ValidRequest()).ok());
}

TEST_F(BadInputTest, EmptyGid) {
  auto r = ValidRequest();
  r.set_gid("");
  ExpectInvalid(r, "Gid");
}

TEST_F(BadInputTest, OverLongGid) {
  auto r = ValidRequest();
  r.set_gid(std::string(129, 'g'));
  ExpectInvalid(r, "Gid");
  r.set_gid(std::string(128, 'g'));
  EXPECT_TRUE(Submit(r).ok()) << "128 bytes is the limit, inclusive";
}

TEST_F(BadInputTest, NonPrintableGid) {
  auto r = ValidRequest();
  r.set_gid("has space");
  ExpectInvalid(r, "Gid");
  r.set_gid(std::string("nul\0byte", 8));
  ExpectInvalid(r, "Gid");
  r.set_gid("caf\xc3\xa9");
  ExpectInvalid(r, "Gid");
}

TEST_F(BadInputTest, UnknownTransType) {
  auto r = ValidRequest();
  r.set_transtype("sagaa");
  ExpectInvalid(r, "TransType");
  r.set_transtype("");
  ExpectInvalid(r, "TransType");
}

TEST_F(BadInputTest, StepsNotAJsonArrayOfObjects) {
  for (const char* steps : {"{", "{}", "[1,2]", "[\"a\"]", "[{\"action\":5}]",
                            "not json", "[{}, 3]"}) {
    auto r = ValidRequest();
    r.set_steps(steps);
    ExpectInvalid(r, "Steps");
  }
}

TEST_F(BadInputTest, MalformedBranchUrl) {
  for (const char* url :
       {"no-port/busi.Busi/A", "127.0.0.1:99999/busi.Busi/A", "127.0.0.1:8080",
        "127.0.0.1:8080/OnlyService", "127.0.0.1:8080/a/b/c"}) {
    auto r = ValidRequest();
    r.set_steps(absl::StrCat(R"([{"action":")", url, R"("}])"));
    ExpectInvalid(r, "Steps[0].action");
  }
}

TEST_F(BadInputTest, PayloadCountDiffersFromStepCount) {
  auto r = ValidRequest();
  r.add_binpayloads("extra");
  ExpectInvalid(r, "BinPayloads");
  r.clear_binpayloads();
  ExpectInvalid(r, "BinPayloads");
}

TEST_F(BadInputTest, OrdersNamingMissingSteps) {
  auto r = ValidRequest();
  r.set_customeddata(R"({"concurrent":true,"orders":{"0":[7]}})");
  ExpectInvalid(r, "CustomedData");
  r.set_customeddata(R"({"concurrent":true,"orders":{"5":[0]}})");
  ExpectInvalid(r, "CustomedData");
}

TEST_F(BadInputTest, OrdersFormingACycle) {
  auto r = ValidRequest();
  r.set_steps(absl::StrCat(R"([{"action":")", Url("A"), R"("},{"action":")",
                           Url("B"), R"("},{"action":")", Url("C"), R"("}])"));
  r.clear_binpayloads();
  for (int i = 0; i < 3; ++i) r.add_binpayloads("");
  r.set_customeddata(
      R"({"concurrent":true,"orders":{"1":[0],"2":[1],"0":[2]}})");
  ExpectInvalid(r, "cycle");
  r.set_customeddata(R"({"concurrent":true,"orders":{"1":[1]}})");
  ExpectInvalid(r, "CustomedData");
}

TEST_F(BadInputTest, NonJsonCustomedData) {
  auto r = ValidRequest();
  r.set_customeddata("{orders:");
  ExpectInvalid(r, "CustomedData");
}

TEST_F(BadInputTest, BadOptions) {
  auto r = ValidRequest();
  r.mutable_transoptions()->set_requesttimeout(-1);
  ExpectInvalid(r, "RequestTimeout");
  r = ValidRequest();
  r.mutable_transoptions()->set_retrylimit(-5);
  ExpectInvalid(r, "RetryLimit");
  r = ValidRequest();
  (*r.mutable_transoptions()->mutable_branchheaders())["Bad Header"] = "v";
  ExpectInvalid(r, "BranchHeaders");
  r = ValidRequest();
  (*r.mutable_transoptions()->mutable_branchheaders())["dtm-gid"] = "spoof";
  ExpectInvalid(r, "BranchHeaders");
  r = ValidRequest();
  (*r.mutable_transoptions()->mutable_branchheaders())["x-ok"] = "line\nbreak";
  ExpectInvalid(r, "BranchHeaders");
}

TEST_F(BadInputTest, BodyThatIsNotAMessageIsInvalidArgumentWithAMessage) {
  // A varint that never ends, then a field of length 100 with 1 byte.
  for (const std::string& garbage :
       {std::string("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 11),
        std::string("\x0a\x64x", 3)}) {
    for (const char* method :
         {"Submit", "Prepare", "Abort", "RegisterBranch", "PrepareWorkflow",
          "Subscribe", "Unsubscribe", "DeleteTopic", "NewGid"}) {
      SCOPED_TRACE(method);
      grpc::Status status =
          RawCall(absl::StrCat("/dtmgimp.Dtm/", method), garbage);
      EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
          << status.error_message();
      EXPECT_THAT(status.error_message(), HasSubstr("request: not a valid"));
    }
  }
  // A proto3 string that is not UTF-8 makes the whole message invalid.
  auto r = ValidRequest();
  r.set_gid("\xff\xfe");
  grpc::Status status = RawCall("/dtmgimp.Dtm/Submit", r.SerializeAsString());
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("dtmgimp.DtmRequest"));
}

TEST_F(BadInputTest, ParseErrorsFloodingInDoNotFloodTheLog) {
  // Protobuf logs an error for each string that is not UTF-8; dtmd passes
  // at most one such line a second on to its log.
  const std::string log = MakeTempDir("protobuf-log") + "/stderr";
  DtmdProcess dtmd(MakeTempDir("protobuf-log-data"), {});
  dtmd.set_stderr_file(log);
  ASSERT_TRUE(dtmd.Start().ok());
  auto r = ValidRequest();
  r.set_gid("\xff\xfe");
  const std::string body = r.SerializeAsString();
  const absl::Time start = absl::Now();
  for (int i = 0; i < 200; ++i) {
    ASSERT_EQ(RawCall("/dtmgimp.Dtm/Submit", body, dtmd.channel()).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }
  const int64_t seconds = absl::ToInt64Seconds(absl::Now() - start);
  EXPECT_EQ(dtmd.Stop(), 0);
  std::ifstream in(log);
  int lines = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.find("invalid UTF-8") != std::string::npos) ++lines;
  }
  EXPECT_GE(lines, 1);
  EXPECT_LE(lines, seconds + 2) << "of 200 parse errors";
}

TEST_F(BadInputTest, RawCallsOfValidMessagesStillWork) {
  grpc::Status status =
      RawCall("/dtmgimp.Dtm/Submit", ValidRequest().SerializeAsString());
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(RawCall("/dtmgimp.Dtm/NewGid", "").ok());
}

// One request and its first answer on the server reflection stream, raw.
std::string ReflectionAnswer(std::shared_ptr<grpc::Channel> channel,
                             const std::string& ask) {
  grpc::GenericStub stub(std::move(channel));
  grpc::CompletionQueue cq;
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(10));
  auto call = stub.PrepareCall(
      &context,
      "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
  auto step = [&cq]() {
    void* tag;
    bool ok = false;
    return cq.Next(&tag, &ok) && ok;
  };
  grpc::Slice slice(ask);
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  std::string out;
  call->StartCall(nullptr);
  if (step()) {
    call->Write(request, nullptr);
    if (step()) {
      call->Read(&response, nullptr);
      std::vector<grpc::Slice> slices;
      if (step() && response.Dump(&slices).ok()) {
        for (const grpc::Slice& s : slices) {
          out.append(reinterpret_cast<const char*>(s.begin()), s.size());
        }
      }
    }
  }
  context.TryCancel();
  grpc::Status status;
  call->Finish(&status, nullptr);
  step();
  cq.Shutdown();
  while (step()) {
  }
  return out;
}

TEST_F(BadInputTest, ReflectionStillDescribesTheRawService) {
  // ServerReflectionRequest.list_services (field 7) = "".
  EXPECT_THAT(ReflectionAnswer(dtmd_->channel(), std::string("\x3a\x00", 2)),
              HasSubstr("dtmgimp.Dtm"));
  // file_containing_symbol (field 4) = "dtmgimp.Dtm": the descriptor names
  // the methods and their message types.
  const std::string symbol = "dtmgimp.Dtm";
  const std::string file = ReflectionAnswer(
      dtmd_->channel(),
      absl::StrCat("\x22", std::string(1, static_cast<char>(symbol.size())),
                   symbol));
  EXPECT_THAT(file, HasSubstr("Submit"));
  EXPECT_THAT(file, HasSubstr("DtmRequest"));
}

TEST_F(BadInputTest, NulControlSpaceOrNonAsciiByteInBranchUrl) {
  // As JSON escapes inside Steps, so only the URL rules can refuse them. A
  // NUL in the method made dtmd call /busi.Busi/A instead.
  const std::string base = Url("A");
  for (const std::string& url :
       {base + R"(\u0000B)", base + R"(\u0001)", base + R"(\u00e9)",
        base + " x",
        absl::StrCat(R"(127.0.0.1\u0000:)", branches_->port(), "/busi.Busi/A"),
        absl::StrCat("127.0.0.1:", branches_->port(), R"(/busi.Bu\tsi/A)")}) {
    SCOPED_TRACE(url);
    ExpectInvalid(WithAction(url), "Steps[0].action");
  }
}

TEST_F(BadInputTest, BranchHostThatIsNotADnsNameOrIpAddress) {
  for (const char* url :
       {"unix-abstract:dtmd:1/busi.Busi/A", "unix:dtmd.sock:1/busi.Busi/A",
        "unix:///tmp/dtmd.sock:1/busi.Busi/A", "vsock:2:1/busi.Busi/A",
        "xds:busi:1/busi.Busi/A", "dns:///127.0.0.1:1/busi.Busi/A",
        "ipv4:127.0.0.1:1/busi.Busi/A", "::1:8080/busi.Busi/A",
        "[fe80::1%eth0]:8080/busi.Busi/A", "127.1:8080/busi.Busi/A"}) {
    SCOPED_TRACE(url);
    ExpectInvalid(WithAction(url), "Steps[0].action");
  }
  // Compensations too, and in Prepare.
  auto r = ValidRequest();
  r.set_steps(R"([{"compensate":"unix-abstract:x:1/busi.Busi/C"}])");
  grpc::ClientContext context;
  google::protobuf::Empty empty;
  grpc::Status prepare = dtmd_->dtm()->Prepare(&context, r, &empty);
  EXPECT_EQ(prepare.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(prepare.error_message(), HasSubstr("Steps[0].compensate"));
}

TEST_F(BadInputTest, MalformedHttpBranchUrlNamesTheField) {
  ExpectInvalid(WithAction("http://127.0.0.1:0/api/busi/TransOut"),
                "Steps[0].action: URL port must be a number");
  ExpectInvalid(WithAction("http://user@127.0.0.1:8081/api"),
                "Steps[0].action: URL must not carry user info");
}

TEST_F(BadInputTest, BranchHeadersLargerThanGrpcMetadataAllows) {
  // gRPC peers refuse more than 8 KiB of metadata: this saga could never
  // finish (every call fails with "received initial metadata size exceeds
  // limit").
  auto r = ValidRequest();
  (*r.mutable_transoptions()->mutable_branchheaders())["x-big"] =
      std::string(20000, 'v');
  ExpectInvalid(r, "TransOptions.BranchHeaders: 20037 bytes");
  // Many entries that add up count too, with 32 bytes each.
  r = ValidRequest();
  for (int i = 0; i < 40; ++i) {
    (*r.mutable_transoptions()
          ->mutable_branchheaders())[absl::StrCat("x-h", i)] =
        std::string(80, 'v');
  }
  ExpectInvalid(r, "TransOptions.BranchHeaders");
  // Within the default 4096 bytes: accepted.
  r = ValidRequest();
  (*r.mutable_transoptions()->mutable_branchheaders())["x-ok"] =
      std::string(4000, 'v');
  EXPECT_TRUE(Submit(r).ok());
}

TEST_F(BadInputTest, RequestTimeoutAboveTheCap) {
  auto r = ValidRequest();
  r.mutable_transoptions()->set_requesttimeout(301);
  ExpectInvalid(r, "TransOptions.RequestTimeout: 301 seconds");
  r.mutable_transoptions()->set_requesttimeout(300);
  EXPECT_TRUE(Submit(r).ok()) << "300 s is the default cap, inclusive";
}

TEST_F(BadInputTest, HugeTimingsAreRefused) {
  const int64_t over = (int64_t{1} << 30) + 1;
  auto r = ValidRequest();
  r.mutable_transoptions()->set_timeouttofail(over);
  ExpectInvalid(r, "TransOptions.TimeoutToFail");
  r = ValidRequest();
  r.mutable_transoptions()->set_retryinterval(over);
  ExpectInvalid(r, "TransOptions.RetryInterval");
  r = ValidRequest();
  r.mutable_transoptions()->set_requesttimeout(INT64_MAX);
  ExpectInvalid(r, "TransOptions.RequestTimeout");
}

TEST_F(BadInputTest, SixteenMebibytesOfEmptyStepsAreRefusedWhileReading) {
  auto r = ValidRequest();
  std::string steps = "[";
  steps.reserve(16 << 20);
  while (steps.size() < (16u << 20) - 4096) steps += "{},";
  steps += "{}]";
  r.set_steps(std::move(steps));
  ExpectInvalid(r, "Steps: more than the limit of 1000 steps");
  // A DOM of 5.6 million objects took about 500 MiB; the reader keeps the
  // URLs of 1000 steps. The bound leaves room for the sanitizer build.
  const int64_t peak_kib = DtmdPeakRssKib();
  EXPECT_GT(peak_kib, 0);
  EXPECT_LT(peak_kib, 400 * 1024) << "dtmd peak RSS " << peak_kib << " KiB";
}

TEST_F(BadInputTest, StepsNestedTooDeep) {
  auto r = ValidRequest();
  r.set_steps(absl::StrCat(R"([{"action":")", Url("A"), R"(","note":)",
                           std::string(100, '['), std::string(100, ']'), "}]"));
  ExpectInvalid(r, "Steps: nested deeper than");
}

TEST_F(BadInputTest, OrdersOverTheEntryCap) {
  // 200 steps, each after every earlier one: 19900 entries (cap: 10000).
  auto r = ValidRequest();
  std::string steps = "[";
  std::string orders = R"({"concurrent":true,"orders":{)";
  r.clear_binpayloads();
  for (int i = 0; i < 200; ++i) {
    absl::StrAppend(&steps, i ? "," : "", R"({"action":")", Url("A"), "\"}");
    r.add_binpayloads("");
    if (i == 0) continue;
    absl::StrAppend(&orders, i > 1 ? "," : "", "\"", i, "\":[");
    for (int j = 0; j < i; ++j) absl::StrAppend(&orders, j ? "," : "", j);
    orders += "]";
  }
  r.set_steps(steps + "]");
  r.set_customeddata(orders + "}}");
  ExpectInvalid(r, "CustomedData.orders: more than the limit of 10000");
}

TEST_F(BadInputTest, BranchAnswerMessageThatIsHugeAndNotUtf8IsKeptShort) {
  // Stored as is, a message that is not UTF-8 made the saga's records
  // unreadable (proto3 strings), and a long one was rewritten on each retry.
  const std::string method = Method("HugeNonUtf8Failure");
  branches_->SetScript(method,
                       {{grpc::StatusCode::ABORTED,
                         "bad \xff\xfe answer " + std::string(5000, 'x')}});
  auto r = ValidRequest();
  r.set_steps(absl::StrCat(R"([{"action":")", branches_->Url(method), "\"}]"));
  ASSERT_TRUE(Submit(r).ok());
  auto reply = dtmd_->WaitForStatus(r.gid(), {"failed"}, absl::Seconds(30));
  ASSERT_TRUE(reply.ok()) << reply.status();
  const std::string& reason = reply->transaction().rollback_reason();
  EXPECT_EQ(reason.size(), 1024u);
  EXPECT_TRUE(absl::StartsWith(reason, "bad ?? answer xxx")) << reason;
  for (const auto& branch : reply->branches()) {
    EXPECT_LE(branch.last_error().size(), 1024u);
  }
}

TEST_F(BadInputTest, GidReusedWithAnotherTransType) {
  auto r = ValidRequest();
  ASSERT_TRUE(Submit(r).ok());
  r.set_transtype("tcc");
  r.set_steps("null");  // a well-formed tcc request for the same gid.
  r.clear_binpayloads();
  ExpectInvalid(r, "TransType");
  grpc::ClientContext context;
  google::protobuf::Empty empty;
  grpc::Status prepare = dtmd_->dtm()->Prepare(&context, r, &empty);
  EXPECT_EQ(prepare.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(BadInputTest, StepsAreRefusedForModesThatTakeNone) {
  for (const char* type : {"tcc", "xa"}) {
    auto r = ValidRequest();
    r.set_transtype(type);
    ExpectInvalid(r, "Steps");
  }
}

TEST_F(BadInputTest, RequestsAreNotRecordedWhenRejected) {
  auto r = ValidRequest();
  r.set_customeddata("{bad");
  ExpectInvalid(r, "CustomedData");
  auto reply = dtmd_->GetTransaction(r.gid());
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kNotFound);
  // The gid is still free to use correctly.
  r.set_customeddata("");
  EXPECT_TRUE(Submit(r).ok());
}

}  // namespace
}  // namespace dtmd::testing
