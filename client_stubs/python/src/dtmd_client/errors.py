"""The two outcomes DTM's protocol tells apart, as exceptions.

A coordinator call answered with ABORTED raises Failure (the transaction
failed, or the request is one its status forbids); FAILED_PRECONDITION raises
Ongoing (a WaitResult transaction had not ended when the wait was over); any
other non-OK status raises DtmError. A branch handler raises Failure or Ongoing
to answer ABORTED or FAILED_PRECONDITION (see branch.py).
"""

from __future__ import annotations

import grpc


class DtmError(Exception):
    """A non-OK gRPC status from the coordinator or a branch."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


class Failure(DtmError):
    """ABORTED: the business refused, or the transaction failed."""

    def __init__(self, message: str = "FAILURE") -> None:
        super().__init__(grpc.StatusCode.ABORTED, message)


class Ongoing(DtmError):
    """FAILED_PRECONDITION: not done yet, ask again later."""

    def __init__(self, message: str = "ONGOING") -> None:
        super().__init__(grpc.StatusCode.FAILED_PRECONDITION, message)


class Duplicated(Failure):
    """A barrier saw a msg's local transaction run a second time for one gid."""

    def __init__(self) -> None:
        super().__init__("DUPLICATED")


def from_rpc_error(error: grpc.RpcError) -> DtmError:
    """Maps a grpc.RpcError (as raised by a stub) to Failure, Ongoing or DtmError."""
    code = error.code() if isinstance(error, grpc.Call) else grpc.StatusCode.UNKNOWN
    message = (error.details() if isinstance(error, grpc.Call) else str(error)) or ""
    if code == grpc.StatusCode.ABORTED:
        return Failure(message)
    if code == grpc.StatusCode.FAILED_PRECONDITION:
        return Ongoing(message)
    return DtmError(code, message)
