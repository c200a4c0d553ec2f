"""Transaction options shared by the Saga, Tcc and Msg helpers."""

from __future__ import annotations

import dataclasses

from dtmd_client._proto import dtmgimp_pb2

# The client-side deadline of a coordinator call, in seconds, when none is given.
DEFAULT_CALL_TIMEOUT = 30.0


@dataclasses.dataclass
class TransOptions:
    """Becomes the request's DtmTransOptions, except the client-side fields at the end.

    Times are in seconds; 0 means the coordinator's default.
    """

    # With True, Submit returns when the transaction ended (Failure with the
    # rollback reason when it failed) or, when it has not ended after the
    # coordinator's first round of branch calls, raises Ongoing.
    wait_result: bool = False
    timeout_to_fail: int = 0
    retry_interval: int = 0
    request_timeout: int = 0
    # Saga only: retried action calls after which the saga compensates (0: no limit).
    retry_limit: int = 0
    # Metadata the coordinator adds to every branch call (and the client to the
    # TCC Try calls it makes itself). Keys must be lower-case gRPC metadata keys.
    branch_headers: dict[str, str] = dataclasses.field(default_factory=dict)
    # Client side: the deadline of each coordinator call; with wait_result it
    # must cover the coordinator's wait.
    call_timeout: float = DEFAULT_CALL_TIMEOUT
    # Client side: the coordinator's address as branches should see it, sent as
    # dtm-dtm on the branch calls the client makes itself. May be empty.
    dtm_address: str = ""

    def to_proto(self) -> dtmgimp_pb2.DtmTransOptions:
        return dtmgimp_pb2.DtmTransOptions(
            WaitResult=self.wait_result,
            TimeoutToFail=self.timeout_to_fail,
            RetryInterval=self.retry_interval,
            RequestTimeout=self.request_timeout,
            RetryLimit=self.retry_limit,
            BranchHeaders=self.branch_headers,
        )
