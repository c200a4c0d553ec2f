// Topics end to end: Subscribe, Unsubscribe and DeleteTopic against a real
// dtmd, their success and error codes (PROTOCOL.md section 4), the input
// rules (INVALID_ARGUMENT naming the field), and subscriptions surviving a
// restart (SIGTERM) and a crash (SIGKILL) of dtmd.
#include <chrono>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/empty.pb.h"
#include "gtest/gtest.h"
#include "tests/integration/dtmd_process.h"

namespace dtmd::testing {
namespace {

using ::testing::HasSubstr;

constexpr char kUrlA[] = "localhost:50001/busi.Busi/TransIn";
constexpr char kUrlB[] = "localhost:50002/busi.Busi/TransIn";

class TopicsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dtmd_ = std::make_unique<DtmdProcess>(MakeTempDir("topics"),
                                          std::vector<std::string>{});
    ASSERT_TRUE(dtmd_->Start().ok());
  }

  enum class Method { kSubscribe, kUnsubscribe, kDeleteTopic };

  grpc::Status Call(Method method, const std::string& topic,
                    const std::string& url = "",
                    const std::string& remark = "") {
    dtmgimp::DtmTopicRequest request;
    request.set_topic(topic);
    request.set_url(url);
    request.set_remark(remark);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(10));
    google::protobuf::Empty empty;
    switch (method) {
      case Method::kSubscribe:
        return dtmd_->dtm()->Subscribe(&context, request, &empty);
      case Method::kUnsubscribe:
        return dtmd_->dtm()->Unsubscribe(&context, request, &empty);
      case Method::kDeleteTopic:
        return dtmd_->dtm()->DeleteTopic(&context, request, &empty);
    }
    return grpc::Status(grpc::StatusCode::INTERNAL, "unknown method");
  }
  grpc::Status Subscribe(const std::string& topic, const std::string& url,
                         const std::string& remark = "") {
    return Call(Method::kSubscribe, topic, url, remark);
  }
  grpc::Status Unsubscribe(const std::string& topic, const std::string& url) {
    return Call(Method::kUnsubscribe, topic, url);
  }
  grpc::Status DeleteTopic(const std::string& topic) {
    return Call(Method::kDeleteTopic, topic);
  }

  void ExpectInvalid(const grpc::Status& status, const std::string& field) {
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << status.error_message();
    EXPECT_THAT(status.error_message(), HasSubstr(field));
  }

  std::unique_ptr<DtmdProcess> dtmd_;
};

TEST_F(TopicsTest, SubscribeIsOkOnceAndAlreadyExistsForTheSameUrl) {
  ASSERT_TRUE(Subscribe("orders", kUrlA, "inventory").ok());
  grpc::Status again = Subscribe("orders", kUrlA, "inventory");
  EXPECT_EQ(again.error_code(), grpc::StatusCode::ALREADY_EXISTS)
      << again.error_message();
  EXPECT_TRUE(Subscribe("orders", kUrlB).ok());
  EXPECT_TRUE(Subscribe("payments", kUrlA).ok());
}

TEST_F(TopicsTest, UnsubscribeOfUnknownTopicOrUrlIsNotFound) {
  grpc::Status status = Unsubscribe("orders", kUrlA);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND)
      << status.error_message();
  ASSERT_TRUE(Subscribe("orders", kUrlA).ok());
  ASSERT_TRUE(Subscribe("orders", kUrlB).ok());
  status = Unsubscribe("orders", "localhost:50003/busi.Busi/TransIn");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND)
      << status.error_message();
  EXPECT_TRUE(Unsubscribe("orders", kUrlA).ok());
  EXPECT_EQ(Unsubscribe("orders", kUrlA).error_code(),
            grpc::StatusCode::NOT_FOUND);
  // The topic goes with its last subscriber.
  EXPECT_TRUE(Unsubscribe("orders", kUrlB).ok());
  EXPECT_EQ(DeleteTopic("orders").error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(TopicsTest, DeleteTopicDropsItsSubscribersAndUnknownIsNotFound) {
  EXPECT_EQ(DeleteTopic("orders").error_code(), grpc::StatusCode::NOT_FOUND);
  ASSERT_TRUE(Subscribe("orders", kUrlA).ok());
  ASSERT_TRUE(Subscribe("orders", kUrlB).ok());
  EXPECT_TRUE(DeleteTopic("orders").ok());
  EXPECT_EQ(DeleteTopic("orders").error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Unsubscribe("orders", kUrlA).error_code(),
            grpc::StatusCode::NOT_FOUND);
  // Subscribing again starts the topic afresh.
  EXPECT_TRUE(Subscribe("orders", kUrlA).ok());
}

TEST_F(TopicsTest, BadInputIsInvalidArgumentNamingTheField) {
  for (Method method :
       {Method::kSubscribe, Method::kUnsubscribe, Method::kDeleteTopic}) {
    SCOPED_TRACE(static_cast<int>(method));
    ExpectInvalid(Call(method, "", kUrlA), "Topic: must not be empty");
    ExpectInvalid(Call(method, "a\tb", kUrlA), "Topic: only printable ASCII");
    ExpectInvalid(Call(method, "a b", kUrlA), "Topic: only printable ASCII");
    ExpectInvalid(Call(method, std::string(129, 't'), kUrlA),
                  "Topic: 129 bytes");
  }
  ExpectInvalid(Subscribe("t", ""), "URL: must not be empty");
  ExpectInvalid(Unsubscribe("t", ""), "URL: must not be empty");
  ExpectInvalid(Subscribe("t", "no-port/busi.Busi/TransIn"), "URL: ");
  ExpectInvalid(Subscribe("t", "unix:/tmp/sock/busi.Busi/TransIn"), "URL: ");
  ExpectInvalid(Subscribe("t", "http://localhost:0/api/busi"),
                "URL: URL port must be a number");
  ExpectInvalid(Subscribe("t", kUrlA, std::string(1025, 'r')),
                "Remark: 1025 bytes");
  EXPECT_TRUE(Subscribe("t", kUrlA, std::string(1024, 'r')).ok());
  // A Remark that is not UTF-8 makes the message invalid.
  ExpectInvalid(Subscribe("u", kUrlA, "\xff\xfe"),
                "request: not a valid dtmgimp.DtmTopicRequest");
  // Nothing refused was stored.
  EXPECT_EQ(DeleteTopic("u").error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(TopicsTest, SubscriptionsSurviveARestartAndACrash) {
  ASSERT_TRUE(Subscribe("orders", kUrlA, "inventory").ok());
  ASSERT_TRUE(Subscribe("orders", kUrlB).ok());
  ASSERT_TRUE(Subscribe("refunds", kUrlA).ok());
  ASSERT_TRUE(Subscribe("gone", kUrlA).ok());
  ASSERT_TRUE(Unsubscribe("refunds", kUrlA).ok());  // the topic goes too.
  ASSERT_TRUE(DeleteTopic("gone").ok());
  ASSERT_EQ(dtmd_->Stop(), 0);
  ASSERT_TRUE(dtmd_->Start().ok());

  EXPECT_EQ(Subscribe("orders", kUrlA).error_code(),
            grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(Subscribe("orders", kUrlB).error_code(),
            grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(DeleteTopic("refunds").error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(DeleteTopic("gone").error_code(), grpc::StatusCode::NOT_FOUND);

  // An acknowledged subscription is on disk: it survives kill -9.
  ASSERT_TRUE(Subscribe("payments", kUrlB).ok());
  ASSERT_TRUE(Unsubscribe("orders", kUrlA).ok());
  dtmd_->Kill();
  ASSERT_TRUE(dtmd_->Start().ok());
  EXPECT_EQ(Subscribe("payments", kUrlB).error_code(),
            grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(Unsubscribe("orders", kUrlA).error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_TRUE(Unsubscribe("orders", kUrlB).ok());
  EXPECT_TRUE(DeleteTopic("payments").ok());
}

}  // namespace
}  // namespace dtmd::testing
