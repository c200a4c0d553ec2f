// Bad input: every malformed request gets INVALID_ARGUMENT naming the field
// (or the status docs/protocol.md section 4 gives), and dtmd keeps serving.
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
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

TEST_F(BadInputTest, GidReusedWithAnotherTransType) {
  auto r = ValidRequest();
  ASSERT_TRUE(Submit(r).ok());
  r.set_transtype("tcc");
  ExpectInvalid(r, "TransType");
  grpc::ClientContext context;
  google::protobuf::Empty empty;
  grpc::Status prepare = dtmd_->dtm()->Prepare(&context, r, &empty);
  EXPECT_EQ(prepare.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(BadInputTest, NotYetSupportedModesSayUnimplemented) {
  auto r = ValidRequest();
  r.set_transtype("msg");
  EXPECT_EQ(Submit(r).error_code(), grpc::StatusCode::UNIMPLEMENTED);
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
