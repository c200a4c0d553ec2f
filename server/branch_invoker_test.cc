// BranchAnswerMessage: what dtmd keeps of a branch's status message.
#include "server/branch_invoker.h"

#include <string>

#include "gtest/gtest.h"

namespace dtmd {
namespace {

TEST(BranchAnswerMessageTest, KeepsShortValidMessagesAsTheyAre) {
  EXPECT_EQ(BranchAnswerMessage(""), "");
  EXPECT_EQ(BranchAnswerMessage("ONGOING"), "ONGOING");
  EXPECT_EQ(BranchAnswerMessage("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
            "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
  EXPECT_EQ(BranchAnswerMessage(std::string("nul\0ok", 6)),
            std::string("nul\0ok", 6));
}

TEST(BranchAnswerMessageTest, ReplacesBytesThatAreNotUtf8) {
  EXPECT_EQ(BranchAnswerMessage("a\xff"
                                "b"),
            "a?b");
  EXPECT_EQ(BranchAnswerMessage("\xc3"), "?");                 // cut sequence
  EXPECT_EQ(BranchAnswerMessage("\xc0\xaf"), "??");            // overlong '/'
  EXPECT_EQ(BranchAnswerMessage("\xe0\x80\xaf"), "???");       // overlong
  EXPECT_EQ(BranchAnswerMessage("\xed\xa0\x80"), "???");       // surrogate
  EXPECT_EQ(BranchAnswerMessage("\xf4\x90\x80\x80"), "????");  // > U+10FFFF
  EXPECT_EQ(BranchAnswerMessage("\x80x"), "?x");  // lone continuation
}

TEST(BranchAnswerMessageTest, KeepsAtMostOneKibibyteEndingOnACharacter) {
  EXPECT_EQ(BranchAnswerMessage(std::string(5000, 'e')),
            std::string(kMaxBranchAnswerMessageBytes, 'e'));
  // 1023 bytes, then a 2-byte character that would end past 1024: cut before.
  const std::string text = std::string(1023, 'e') + "\xc3\xa9";
  EXPECT_EQ(BranchAnswerMessage(text), std::string(1023, 'e'));
}

}  // namespace
}  // namespace dtmd
