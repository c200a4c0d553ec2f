"""The coordinator connection and the Saga builder.

    dtm = DtmClient("127.0.0.1:36790")
    saga = dtm.saga(dtm.new_gid())
    saga.add(f"{busi}/busi.Busi/TransOut", f"{busi}/busi.Busi/TransOutRevert", payload)
    saga.add(...).set_wait_result(True)
    saga.submit()  # raises Failure when the saga failed

Helpers speak DTM's gRPC protocol, so they work against dtmd and DTM. They make
one unary call per operation and never retry: a failed Submit may be repeated
with the same gid. A DtmClient is thread-safe (it wraps one gRPC channel); a
Saga, Tcc or Msg is not.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Callable, TypeVar

import grpc
from google.protobuf import empty_pb2

from dtmd_client._proto import dtmgimp_pb2, dtmgimp_pb2_grpc
from dtmd_client.errors import DtmError, from_rpc_error
from dtmd_client.options import TransOptions

if TYPE_CHECKING:
    from dtmd_client.msg import Msg

T = TypeVar("T")


def split_url(url: str) -> tuple[str, str]:
    """Splits "host:port/pkg.Service/Method" into ("host:port", "/pkg.Service/Method")."""
    slash = url.find("/")
    if slash <= 0 or url.count("/") < 2:
        raise ValueError(f"branch URL must be host:port/package.Service/Method: {url!r}")
    return url[:slash], url[slash:]


def _call(fn: Callable[[], T]) -> T:
    try:
        return fn()
    except grpc.RpcError as error:
        raise from_rpc_error(error) from None


class DtmClient:
    """A connection to the coordinator (a target such as "127.0.0.1:36790", or a channel)."""

    def __init__(self, target: str | grpc.Channel, dtm_address: str = "") -> None:
        if isinstance(target, str):
            self._channel: grpc.Channel = grpc.insecure_channel(target)
            self._owns_channel = True
            self.address = dtm_address or target
        else:
            self._channel = target
            self._owns_channel = False
            self.address = dtm_address
        self.stub = dtmgimp_pb2_grpc.DtmStub(self._channel)
        self.branches = BranchCaller()

    def close(self) -> None:
        if self._owns_channel:
            self._channel.close()
        self.branches.close()

    def __enter__(self) -> DtmClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def new_gid(self, timeout: float = 30.0) -> str:
        reply = _call(lambda: self.stub.NewGid(empty_pb2.Empty(), timeout=timeout))
        return str(reply.Gid)

    def saga(self, gid: str, options: TransOptions | None = None) -> Saga:
        return Saga(self, gid, options)

    def msg(self, gid: str, options: TransOptions | None = None) -> Msg:
        from dtmd_client.msg import Msg

        return Msg(self, gid, options)

    def options(self, options: TransOptions | None) -> TransOptions:
        """A copy of `options` (or the defaults) with dtm_address filled in."""
        result = TransOptions(**vars(options)) if options else TransOptions()
        result.branch_headers = dict(result.branch_headers)
        if not result.dtm_address:
            result.dtm_address = self.address
        return result

    def call(self, method: str, request: Any, timeout: float) -> Any:
        """Calls the Dtm service's `method`; raises Failure, Ongoing or DtmError."""
        return _call(lambda: getattr(self.stub, method)(request, timeout=timeout))


class BranchCaller:
    """Calls branch URLs with raw payloads (the TCC Try, msg QueryPrepared); one channel per host."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._channels: dict[str, grpc.Channel] = {}

    def call(self, url: str, payload: bytes, metadata: Sequence[tuple[str, str]], timeout: float) -> bytes:
        """Returns the reply body; raises Failure, Ongoing or DtmError for a non-OK status."""
        host, method = split_url(url)
        with self._lock:
            channel = self._channels.get(host)
            if channel is None:
                channel = self._channels[host] = grpc.insecure_channel(host)
        stub = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
        reply = _call(lambda: stub(payload, metadata=tuple(metadata), timeout=timeout))
        return bytes(reply)

    def close(self) -> None:
        with self._lock:
            for channel in self._channels.values():
                channel.close()
            self._channels.clear()


def branch_metadata(
    gid: str, trans_type: str, branch_id: str, op: str, options: TransOptions
) -> list[tuple[str, str]]:
    """The metadata a branch receives: dtm-* plus the branch headers."""
    metadata = [
        ("dtm-gid", gid),
        ("dtm-trans_type", trans_type),
        ("dtm-branch_id", branch_id),
        ("dtm-op", op),
        ("dtm-dtm", options.dtm_address),
    ]
    metadata.extend(options.branch_headers.items())
    return metadata


class Saga:
    """Builds and submits one saga.

    Steps run in the order they were added (or per add_branch_order when
    concurrent); each has an action URL, a compensation URL (either may be
    empty: nothing to call) and the payload sent as the body of both calls.
    """

    def __init__(self, dtm: DtmClient, gid: str, options: TransOptions | None = None) -> None:
        self.dtm = dtm
        self.gid = gid
        self.options = dtm.options(options)
        self._steps: list[tuple[str, str, bytes]] = []
        self._orders: dict[int, list[int]] = {}
        self._concurrent = False

    def add(self, action_url: str, compensate_url: str, payload: bytes | str = b"") -> Saga:
        """Appends a step; step indices (for add_branch_order) are 0-based in add order."""
        data = payload.encode() if isinstance(payload, str) else bytes(payload)
        self._steps.append((action_url, compensate_url, data))
        return self

    def add_branch_order(self, step: int, after: Sequence[int]) -> Saga:
        """Step `step` runs only after every step in `after` succeeded (with concurrency)."""
        self._orders[step] = list(after)
        return self

    def enable_concurrent(self) -> Saga:
        self._concurrent = True
        return self

    def set_wait_result(self, wait_result: bool) -> Saga:
        self.options.wait_result = wait_result
        return self

    def set_timeout_to_fail(self, seconds: int) -> Saga:
        self.options.timeout_to_fail = seconds
        return self

    def set_retry_interval(self, seconds: int) -> Saga:
        self.options.retry_interval = seconds
        return self

    def set_request_timeout(self, seconds: int) -> Saga:
        self.options.request_timeout = seconds
        return self

    def set_retry_limit(self, retry_limit: int) -> Saga:
        self.options.retry_limit = retry_limit
        return self

    def add_branch_header(self, key: str, value: str) -> Saga:
        self.options.branch_headers[key] = value
        return self

    def build_request(self) -> dtmgimp_pb2.DtmRequest:
        """The request Submit and Prepare send (Steps JSON, BinPayloads, CustomedData)."""
        steps = [{"action": action, "compensate": compensate} for action, compensate, _ in self._steps]
        custom = ""
        if self._concurrent or self._orders:
            orders = {str(step): after for step, after in sorted(self._orders.items())}
            custom = json.dumps({"orders": orders, "concurrent": self._concurrent}, separators=(",", ":"))
        return dtmgimp_pb2.DtmRequest(
            Gid=self.gid,
            TransType="saga",
            TransOptions=self.options.to_proto(),
            Steps=json.dumps(steps, separators=(",", ":")),
            BinPayloads=[payload for _, _, payload in self._steps],
            CustomedData=custom,
        )

    def submit(self) -> None:
        """Submits the saga; with wait_result raises Failure/Ongoing per its outcome."""
        self.dtm.call("Submit", self.build_request(), self.options.call_timeout)

    def prepare(self) -> None:
        """Stores the saga as prepared without running it; a later submit runs it."""
        self.dtm.call("Prepare", self.build_request(), self.options.call_timeout)


__all__ = ["BranchCaller", "DtmClient", "DtmError", "Saga", "branch_metadata", "split_url"]
