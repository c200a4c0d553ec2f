"""Reliable messages (TransType "msg") and their topics.

A msg is a list of actions the coordinator calls, in order, once the msg is
submitted, retrying each until it succeeds: a msg never rolls back. The usual
use ties it to a local transaction with do_and_submit:

    msg = dtm.msg(gid).add(f"{busi}/busi.Busi/AddPoints", payload)
    msg.add("topic://order-paid", payload)   # one branch per subscriber
    msg.do_and_submit(f"{busi}/busi.Busi/QueryPrepared", commit_local_order)
"""

from __future__ import annotations

import json
from typing import Callable, TypeVar

from dtmd_client._proto import dtmgimp_pb2
from dtmd_client.client import DtmClient, branch_metadata
from dtmd_client.errors import DtmError, Failure
from dtmd_client.options import TransOptions

T = TypeVar("T")


class Msg:
    """Builds, prepares and submits one msg; not thread-safe."""

    def __init__(self, dtm: DtmClient, gid: str, options: TransOptions | None = None) -> None:
        self.dtm = dtm
        self.gid = gid
        self.options = dtm.options(options)
        self._steps: list[tuple[str, bytes]] = []
        self._delay = 0
        self._query_prepared = ""

    def add(self, action_url: str, payload: bytes | str = b"") -> Msg:
        """Appends an action: a branch URL, or "topic://NAME" (one action per subscriber at Submit)."""
        data = payload.encode() if isinstance(payload, str) else bytes(payload)
        self._steps.append((action_url, data))
        return self

    def add_topic(self, topic: str, payload: bytes | str = b"") -> Msg:
        return self.add(f"topic://{topic}", payload)

    def set_delay(self, seconds: int) -> Msg:
        """The coordinator waits this long after Submit before its first action call."""
        self._delay = seconds
        return self

    def build_request(self) -> dtmgimp_pb2.DtmRequest:
        return dtmgimp_pb2.DtmRequest(
            Gid=self.gid,
            TransType="msg",
            TransOptions=self.options.to_proto(),
            Steps=json.dumps([{"action": url} for url, _ in self._steps], separators=(",", ":")),
            BinPayloads=[payload for _, payload in self._steps],
            QueryPrepared=self._query_prepared,
            CustomedData=json.dumps({"delay": self._delay}) if self._delay else "",
        )

    def prepare(self, query_prepared_url: str = "") -> None:
        """Stores the msg as prepared; the coordinator asks query_prepared_url if it stays prepared."""
        if query_prepared_url:
            self._query_prepared = query_prepared_url
        self.dtm.call("Prepare", self.build_request(), self.options.call_timeout)

    def submit(self) -> None:
        """Submits the msg (prepared or not): the coordinator calls the actions."""
        self.dtm.call("Submit", self.build_request(), self.options.call_timeout)

    def abort(self, reason: str = "") -> None:
        """Aborts a prepared msg: it ends failed and no action is called."""
        request = self.build_request()
        request.RollbackReason = reason
        self.dtm.call("Abort", request, self.options.call_timeout)

    def do_and_submit(self, query_prepared_url: str, busi: Callable[[], T]) -> T:
        """Prepare, run busi (the local transaction), then Submit or Abort.

        busi returns: Submit, return busi's result. busi raises Failure (the
        business refused): Abort, re-raise. Any other exception (busi's outcome
        unknown): ask query_prepared_url at once as the coordinator would later
        (OK: Submit; ABORTED: Abort; else leave the msg prepared for the
        coordinator's own check), then re-raise. The QueryPrepared handler must
        tell from its own records whether busi committed
        (BranchBarrier.query_prepared does this).
        """
        self.prepare(query_prepared_url)
        try:
            result = busi()
        except Failure as error:
            self._abort_quietly(str(error))
            raise
        except Exception:
            self._resolve_from_query_prepared()
            raise
        self.submit()
        return result

    def _resolve_from_query_prepared(self) -> None:
        metadata = branch_metadata(self.gid, "msg", "00", "msg", self.options)
        timeout = float(self.options.request_timeout or self.options.call_timeout)
        try:
            self.dtm.branches.call(self._query_prepared, b"", metadata, timeout)
        except Failure as error:
            self._abort_quietly(str(error))
            return
        except DtmError:
            return
        try:
            self.submit()
        except DtmError:
            pass

    def _abort_quietly(self, reason: str) -> None:
        try:
            self.abort(reason)
        except DtmError:
            pass


def _topic_call(dtm: DtmClient, method: str, topic: str, url: str, remark: str, timeout: float) -> None:
    dtm.call(method, dtmgimp_pb2.DtmTopicRequest(Topic=topic, URL=url, Remark=remark), timeout)


def subscribe(dtm: DtmClient, topic: str, url: str, remark: str = "", timeout: float = 30.0) -> None:
    """Subscribes url to topic (DtmError ALREADY_EXISTS when it already is)."""
    _topic_call(dtm, "Subscribe", topic, url, remark, timeout)


def unsubscribe(dtm: DtmClient, topic: str, url: str, timeout: float = 30.0) -> None:
    """Removes one subscription (DtmError NOT_FOUND when unknown)."""
    _topic_call(dtm, "Unsubscribe", topic, url, "", timeout)


def delete_topic(dtm: DtmClient, topic: str, timeout: float = 30.0) -> None:
    """Drops a topic and its subscriptions (DtmError NOT_FOUND when unknown)."""
    _topic_call(dtm, "DeleteTopic", topic, "", "", timeout)


__all__ = ["Msg", "delete_topic", "subscribe", "unsubscribe"]
