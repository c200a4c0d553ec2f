#include "server/txn/outcome.h"

#include "gtest/gtest.h"

namespace dtmd::txn {
namespace {

// grpc::StatusCode numbers, spelled out so the test needs no gRPC headers.
constexpr int kOk = 0;
constexpr int kCancelled = 1;
constexpr int kUnknownCode = 2;
constexpr int kInvalidArgument = 3;
constexpr int kDeadlineExceeded = 4;
constexpr int kNotFound = 5;
constexpr int kFailedPrecondition = 9;
constexpr int kAborted = 10;
constexpr int kUnimplemented = 12;
constexpr int kInternal = 13;
constexpr int kUnavailable = 14;

TEST(ClassifyAnswerTest, OkIsSuccessWhetherOrNotFailureIsAllowed) {
  EXPECT_EQ(ClassifyAnswer(kOk, "", true), BranchOutcome::kSuccess);
  EXPECT_EQ(ClassifyAnswer(kOk, "", false), BranchOutcome::kSuccess);
  EXPECT_EQ(ClassifyAnswer(kOk, "FAILURE", true), BranchOutcome::kSuccess);
}

TEST(ClassifyAnswerTest, FailedPreconditionIsOngoing) {
  EXPECT_EQ(ClassifyAnswer(kFailedPrecondition, "", true),
            BranchOutcome::kOngoing);
  EXPECT_EQ(ClassifyAnswer(kFailedPrecondition, "anything", false),
            BranchOutcome::kOngoing);
}

TEST(ClassifyAnswerTest, AbortedWithOngoingMessageIsOngoing) {
  EXPECT_EQ(ClassifyAnswer(kAborted, "ONGOING", true), BranchOutcome::kOngoing);
  EXPECT_EQ(ClassifyAnswer(kAborted, "ONGOING", false),
            BranchOutcome::kOngoing);
}

TEST(ClassifyAnswerTest, AbortedOngoingMatchIsExact) {
  EXPECT_EQ(ClassifyAnswer(kAborted, "ongoing", true), BranchOutcome::kFailure);
  EXPECT_EQ(ClassifyAnswer(kAborted, "ONGOING ", true),
            BranchOutcome::kFailure);
}

TEST(ClassifyAnswerTest, AbortedIsFailureWhereFailureIsAllowed) {
  EXPECT_EQ(ClassifyAnswer(kAborted, "FAILURE", true), BranchOutcome::kFailure);
  EXPECT_EQ(ClassifyAnswer(kAborted, "", true), BranchOutcome::kFailure);
}

TEST(ClassifyAnswerTest, AbortedIsUnknownWhereFailureHasNoMeaning) {
  EXPECT_EQ(ClassifyAnswer(kAborted, "FAILURE", false),
            BranchOutcome::kUnknown);
  EXPECT_EQ(ClassifyAnswer(kAborted, "", false), BranchOutcome::kUnknown);
}

TEST(ClassifyAnswerTest, TransportErrorsAreUnknown) {
  EXPECT_EQ(ClassifyAnswer(kUnavailable, "connection refused", true),
            BranchOutcome::kUnknown);
  EXPECT_EQ(ClassifyAnswer(kDeadlineExceeded, "", true),
            BranchOutcome::kUnknown);
  EXPECT_EQ(ClassifyAnswer(kCancelled, "", true), BranchOutcome::kUnknown);
}

TEST(ClassifyAnswerTest, OtherCodesAreUnknownEvenWhenFailureIsAllowed) {
  for (int code :
       {kUnknownCode, kInvalidArgument, kNotFound, kUnimplemented, kInternal}) {
    EXPECT_EQ(ClassifyAnswer(code, "FAILURE", true), BranchOutcome::kUnknown)
        << "code " << code;
    EXPECT_EQ(ClassifyAnswer(code, "ONGOING", false), BranchOutcome::kUnknown)
        << "code " << code;
  }
}

TEST(ClassifyAnswerTest, CodesOutsideTheGrpcRangeAreUnknown) {
  EXPECT_EQ(ClassifyAnswer(-1, "", true), BranchOutcome::kUnknown);
  EXPECT_EQ(ClassifyAnswer(17, "", true), BranchOutcome::kUnknown);
  EXPECT_EQ(ClassifyAnswer(1000, "", true), BranchOutcome::kUnknown);
}

TEST(OutcomeNameTest, NamesEveryOutcome) {
  EXPECT_EQ(OutcomeName(BranchOutcome::kSuccess), "success");
  EXPECT_EQ(OutcomeName(BranchOutcome::kFailure), "failure");
  EXPECT_EQ(OutcomeName(BranchOutcome::kOngoing), "ongoing");
  EXPECT_EQ(OutcomeName(BranchOutcome::kUnknown), "unknown");
}

}  // namespace
}  // namespace dtmd::txn
