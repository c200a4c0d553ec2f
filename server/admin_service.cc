#include "server/admin_service.h"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/grpc_status.h"
#include "server/request_validation.h"
#include "server/retry_alert.h"

namespace dtmd {

namespace admin_v1 = ::dtmd::admin::v1;

namespace {

void CopyTransaction(const storage::v1::TransRecord& trans,
                     admin_v1::Transaction* t) {
  t->set_gid(trans.gid());
  t->set_trans_type(trans.trans_type());
  t->set_status(trans.status());
  t->set_rollback_reason(trans.rollback_reason());
  t->set_create_time_ms(trans.create_time_ms());
  t->set_update_time_ms(trans.update_time_ms());
  t->set_finish_time_ms(trans.finish_time_ms());
  t->set_next_cron_time_ms(trans.next_cron_time_ms());
  t->set_next_cron_interval_s(trans.next_cron_interval_s());
  t->set_retry_count(trans.retry_count());
  t->set_customed_data(trans.customed_data());
  t->set_last_query_error(trans.last_query_error());
  t->set_last_query_code(StatusCodeName(trans.last_query_code()));
  t->set_last_query_code_number(trans.last_query_code());
}

absl::Status InvalidPageSize(int page_size) {
  return absl::InvalidArgumentError(absl::StrCat(
      "page_size: must be between 0 (", AdminService::kDefaultPageSize,
      ") and ", AdminService::kMaxPageSize, ", got ", page_size));
}

absl::Status InvalidPageToken() {
  return absl::InvalidArgumentError(
      "page_token: not a next_page_token of ListTransactions");
}

// A reactor that finishes with `status` once the engine answers.
ReplyCallback FinishWith(grpc::ServerUnaryReactor* reactor) {
  return
      [reactor](absl::Status status) { reactor->Finish(ToGrpcStatus(status)); };
}

// Finishes a reactor exactly once: with Finish(), or, when the closure that
// holds it is dropped unrun (a pool stopping), with UNAVAILABLE.
class FinishOnce {
 public:
  explicit FinishOnce(grpc::ServerUnaryReactor* reactor) : reactor_(reactor) {}
  ~FinishOnce() {
    if (reactor_ != nullptr) {
      reactor_->Finish(
          grpc::Status(grpc::StatusCode::UNAVAILABLE, "dtmd is shutting down"));
    }
  }
  FinishOnce(const FinishOnce&) = delete;
  FinishOnce& operator=(const FinishOnce&) = delete;
  void Finish(const grpc::Status& status) {
    std::exchange(reactor_, nullptr)->Finish(status);
  }

 private:
  grpc::ServerUnaryReactor* reactor_;
};

}  // namespace

std::string AdminService::EncodePageToken(const storage::TransCursor& cursor) {
  return absl::WebSafeBase64Escape(
      absl::StrCat(cursor.create_time_ms, ":", cursor.gid));
}

absl::StatusOr<storage::TransCursor> AdminService::DecodePageToken(
    const std::string& token) {
  std::string text;
  if (!absl::WebSafeBase64Unescape(token, &text)) return InvalidPageToken();
  const size_t colon = text.find(':');
  storage::TransCursor cursor;
  if (colon == std::string::npos ||
      !absl::SimpleAtoi(absl::string_view(text).substr(0, colon),
                        &cursor.create_time_ms)) {
    return InvalidPageToken();
  }
  cursor.gid = text.substr(colon + 1);
  return cursor;
}

grpc::ServerUnaryReactor* AdminService::GetTransaction(
    grpc::CallbackServerContext* context,
    const admin_v1::GetTransactionRequest* request,
    admin_v1::GetTransactionReply* reply) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (absl::Status s = CheckCaller(auth_, *context); !s.ok()) {
    reactor->Finish(ToGrpcStatus(s));
    return reactor;
  }
  absl::Status status = ValidateGid(request->gid(), 1 << 20);
  absl::StatusOr<storage::v1::TransRecord> trans =
      status.ok() ? store_->GetTransaction(request->gid())
                  : absl::StatusOr<storage::v1::TransRecord>(status);
  absl::StatusOr<std::vector<storage::v1::BranchRecord>> branches =
      trans.ok() ? store_->GetBranches(request->gid())
                 : absl::StatusOr<std::vector<storage::v1::BranchRecord>>(
                       trans.status());
  if (!branches.ok()) {
    reactor->Finish(ToGrpcStatus(branches.status()));
    return reactor;
  }
  CopyTransaction(*trans, reply->mutable_transaction());
  for (const storage::v1::BranchRecord& b : *branches) {
    admin_v1::Branch* out = reply->add_branches();
    out->set_branch_id(b.branch_id());
    out->set_op(b.op());
    out->set_url(b.url());
    out->set_status(b.status());
    out->set_last_error(b.last_error());
    out->set_call_count(b.call_count());
    out->set_finish_time_ms(b.finish_time_ms());
    out->set_last_code(StatusCodeName(b.last_code()));
    out->set_last_code_number(b.last_code());
  }
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* AdminService::ListTransactions(
    grpc::CallbackServerContext* context,
    const admin_v1::ListTransactionsRequest* request,
    admin_v1::ListTransactionsReply* reply) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (absl::Status s = CheckCaller(auth_, *context); !s.ok()) {
    reactor->Finish(ToGrpcStatus(s));
    return reactor;
  }
  if (request->page_size() < 0 || request->page_size() > kMaxPageSize) {
    reactor->Finish(ToGrpcStatus(InvalidPageSize(request->page_size())));
    return reactor;
  }
  std::optional<storage::TransCursor> after;
  if (!request->page_token().empty()) {
    absl::StatusOr<storage::TransCursor> cursor =
        DecodePageToken(request->page_token());
    if (!cursor.ok()) {
      reactor->Finish(ToGrpcStatus(cursor.status()));
      return reactor;
    }
    after = *std::move(cursor);
  }
  storage::TransFilter filter;
  filter.status = request->status();
  filter.trans_type = request->trans_type();
  filter.gid_prefix = request->gid_prefix();
  filter.created_after_ms = request->created_after_ms();
  filter.created_before_ms = request->created_before_ms();
  const int limit =
      request->page_size() == 0 ? kDefaultPageSize : request->page_size();
  // A scan may read the whole store: never on a gRPC thread.
  auto finish = std::make_shared<FinishOnce>(reactor);
  engine_->pool()->Post([this, finish, reply, filter = std::move(filter),
                         after = std::move(after), limit] {
    absl::StatusOr<storage::TransPage> page =
        store_->ListTransactions(filter, after, limit);
    if (!page.ok()) {
      finish->Finish(ToGrpcStatus(page.status()));
      return;
    }
    for (const storage::v1::TransRecord& trans : page->transactions) {
      CopyTransaction(trans, reply->add_transactions());
    }
    if (page->next.has_value()) {
      reply->set_next_page_token(EncodePageToken(*page->next));
    }
    finish->Finish(grpc::Status::OK);
  });
  return reactor;
}

grpc::ServerUnaryReactor* AdminService::RetryNow(
    grpc::CallbackServerContext* context,
    const admin_v1::RetryNowRequest* request, admin_v1::RetryNowReply*) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (absl::Status s = CheckCaller(auth_, *context); !s.ok()) {
    reactor->Finish(ToGrpcStatus(s));
    return reactor;
  }
  if (absl::Status s = ValidateGid(request->gid(), 1 << 20); !s.ok()) {
    reactor->Finish(ToGrpcStatus(s));
    return reactor;
  }
  engine_->RetryNow(request->gid(), FinishWith(reactor));
  return reactor;
}

grpc::ServerUnaryReactor* AdminService::ForceStop(
    grpc::CallbackServerContext* context,
    const admin_v1::ForceStopRequest* request, admin_v1::ForceStopReply*) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (absl::Status s = CheckCaller(auth_, *context); !s.ok()) {
    reactor->Finish(ToGrpcStatus(s));
    return reactor;
  }
  if (absl::Status s = ValidateGid(request->gid(), 1 << 20); !s.ok()) {
    reactor->Finish(ToGrpcStatus(s));
    return reactor;
  }
  if (request->reason().size() > kMaxReasonBytes) {
    reactor->Finish(ToGrpcStatus(absl::InvalidArgumentError(
        absl::StrCat("reason: longer than ", kMaxReasonBytes, " bytes"))));
    return reactor;
  }
  engine_->ForceStop(request->gid(), request->reason(), FinishWith(reactor));
  return reactor;
}

grpc::ServerUnaryReactor* AdminService::ListTopics(
    grpc::CallbackServerContext* context,
    const admin_v1::ListTopicsRequest* request,
    admin_v1::ListTopicsReply* reply) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (request->page_size() < 0 || request->page_size() > kMaxPageSize) {
    reactor->Finish(ToGrpcStatus(InvalidPageSize(request->page_size())));
    return reactor;
  }
  // The token is the last name listed: the next page starts after it.
  std::string after;
  if (!absl::WebSafeBase64Unescape(request->page_token(), &after)) {
    reactor->Finish(ToGrpcStatus(absl::InvalidArgumentError(
        "page_token: not a next_page_token of ListTopics")));
    return reactor;
  }
  const size_t limit = static_cast<size_t>(
      request->page_size() == 0 ? kDefaultPageSize : request->page_size());
  auto finish = std::make_shared<FinishOnce>(reactor);
  engine_->pool()->Post([this, finish, reply, after = std::move(after), limit] {
    absl::StatusOr<std::vector<std::string>> names = store_->ListTopics();
    if (!names.ok()) {
      finish->Finish(ToGrpcStatus(names.status()));
      return;
    }
    auto it = after.empty()
                  ? names->begin()
                  : std::upper_bound(names->begin(), names->end(), after);
    for (; it != names->end(); ++it) {
      if (static_cast<size_t>(reply->topics_size()) == limit) {
        reply->set_next_page_token(
            absl::WebSafeBase64Escape(reply->topics().rbegin()->name()));
        break;
      }
      absl::StatusOr<std::vector<storage::Subscriber>> subscribers =
          store_->GetTopic(*it);
      if (absl::IsNotFound(subscribers.status())) continue;  // deleted since.
      if (!subscribers.ok()) {
        finish->Finish(ToGrpcStatus(subscribers.status()));
        return;
      }
      admin_v1::Topic* topic = reply->add_topics();
      topic->set_name(*it);
      for (const storage::Subscriber& s : *subscribers) {
        admin_v1::Subscriber* out = topic->add_subscribers();
        out->set_url(s.url);
        out->set_remark(s.remark);
      }
    }
    finish->Finish(grpc::Status::OK);
  });
  return reactor;
}

grpc::ServerUnaryReactor* AdminService::Version(
    grpc::CallbackServerContext* context, const admin_v1::VersionRequest*,
    admin_v1::VersionReply* reply) {
  reply->set_version(DTMD_VERSION);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (absl::Status s = CheckCaller(auth_, *context); !s.ok()) {
    reactor->Finish(ToGrpcStatus(s));
    return reactor;
  }
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace dtmd
