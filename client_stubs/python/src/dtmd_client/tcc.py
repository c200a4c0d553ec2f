"""TCC (try-confirm-cancel) global transactions.

    def body(tcc: Tcc) -> None:
        tcc.call_branch(payload, f"{busi}/busi.Busi/TryPay",
                        f"{busi}/busi.Busi/ConfirmPay", f"{busi}/busi.Busi/CancelPay")
        tcc.call_branch(...)   # an exception here aborts: the coordinator cancels

    tcc_global_transaction(dtm, gid, body)

The client drives the first phase: Prepare, then for each branch RegisterBranch
and the Try call. The coordinator runs the second phase (Confirm after Submit,
Cancel after Abort, in reverse registration order, retried until they
succeed). Registering before Try means a Try whose answer is lost is still
cancelled.
"""

from __future__ import annotations

from typing import Callable, TypeVar

from dtmd_client._proto import dtmgimp_pb2
from dtmd_client.client import DtmClient, branch_metadata
from dtmd_client.options import TransOptions

T = TypeVar("T")


class Tcc:
    """The transaction handed to tcc_global_transaction's body; not thread-safe."""

    def __init__(self, dtm: DtmClient, gid: str, options: TransOptions) -> None:
        self.dtm = dtm
        self.gid = gid
        self.options = options
        self._next_branch = 0

    def call_branch(self, payload: bytes | str, try_url: str, confirm_url: str, cancel_url: str) -> bytes:
        """Registers the next branch ("01", "02", ...), then calls its Try; returns Try's reply.

        Raises RegisterBranch's error (Try is then not called) or Try's
        (Failure when the branch answered ABORTED). Confirm and Cancel receive
        the same payload. Try's deadline is RequestTimeout, else call_timeout.
        """
        data = payload.encode() if isinstance(payload, str) else bytes(payload)
        self._next_branch += 1
        branch_id = f"{self._next_branch:02d}"
        self.dtm.call(
            "RegisterBranch",
            dtmgimp_pb2.DtmBranchRequest(
                Gid=self.gid,
                TransType="tcc",
                BranchID=branch_id,
                Op="try",
                Data={"confirm": confirm_url, "cancel": cancel_url},
                BusiPayload=data,
            ),
            self.options.call_timeout,
        )
        timeout = float(self.options.request_timeout or self.options.call_timeout)
        metadata = branch_metadata(self.gid, "tcc", branch_id, "try", self.options)
        return self.dtm.branches.call(try_url, data, metadata, timeout)


def tcc_global_transaction(
    dtm: DtmClient, gid: str, body: Callable[[Tcc], T], options: TransOptions | None = None
) -> T:
    """Runs one TCC transaction: Prepare, body, then Submit (body returned) or Abort (body raised).

    Returns body's result after Submit succeeded (with wait_result: after the
    transaction succeeded; Failure/Ongoing otherwise). When body raises, the
    transaction is aborted with the exception's text as rollback reason and the
    exception is re-raised; Abort's own error is not reported (the coordinator
    aborts a prepared TCC at TimeoutToFail anyway). When Prepare fails, body
    does not run.
    """
    opts = dtm.options(options)
    request = dtmgimp_pb2.DtmRequest(Gid=gid, TransType="tcc", TransOptions=opts.to_proto(), Steps="null")
    dtm.call("Prepare", request, opts.call_timeout)
    try:
        result = body(Tcc(dtm, gid, opts))
    except BaseException as error:
        request.RollbackReason = str(error)[:1024]
        try:
            dtm.call("Abort", request, opts.call_timeout)
        except Exception:  # noqa: BLE001 - the timeout aborts it anyway
            pass
        raise
    dtm.call("Submit", request, opts.call_timeout)
    return result
