"""Serving branch handlers: the calls dtmd makes to a service.

dtmd calls a branch URL "host:port/pkg.Service/Method" with the raw payload
bytes as the request body and the dtm-* metadata. A handler here receives
those bytes and a BranchContext, and answers by how it ends:

  returns (bytes, str or None)  -> OK (the reply body; dtmd ignores it)
  raises Failure                -> ABORTED (the business refused)
  raises Ongoing                -> FAILED_PRECONDITION (ask again later)
  raises anything else          -> INTERNAL (unknown: dtmd retries with backoff)

    server = grpc.server(ThreadPoolExecutor(8))
    server.add_generic_rpc_handlers([branch_service("busi.Busi", {"TransOut": trans_out})])
    port = server.add_insecure_port("127.0.0.1:0")

branch_service serves synchronous handlers on a grpc.Server; aio_branch_service
serves coroutine handlers on a grpc.aio.Server. BranchServer is a small sync
server on a loopback port with its services, for tests and examples.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Iterable, Mapping
from concurrent import futures
from typing import Any, Callable, Union

import grpc
import grpc.aio

from dtmd_client.errors import DtmError

Reply = Union[bytes, str, None]


@dataclasses.dataclass(frozen=True)
class BranchContext:
    """What dtmd says about the call: the dtm-* metadata and every other header."""

    gid: str
    trans_type: str
    branch_id: str
    op: str
    dtm: str
    method: str
    headers: Mapping[str, str]

    @staticmethod
    def from_metadata(metadata: Iterable[tuple[str, Any]] | None, method: str = "") -> BranchContext:
        headers = {str(key): value if isinstance(value, str) else value.decode("latin-1") for key, value in metadata or ()}
        return BranchContext(
            gid=headers.get("dtm-gid", ""),
            trans_type=headers.get("dtm-trans_type", ""),
            branch_id=headers.get("dtm-branch_id", ""),
            op=headers.get("dtm-op", ""),
            dtm=headers.get("dtm-dtm", ""),
            method=method,
            headers=headers,
        )


Handler = Callable[[bytes, BranchContext], Reply]
AsyncHandler = Callable[[bytes, BranchContext], Awaitable[Reply]]

_log = logging.getLogger("dtmd_client.branch")


def _body(reply: Reply) -> bytes:
    if reply is None:
        return b""
    return reply.encode() if isinstance(reply, str) else bytes(reply)


def _status_of(error: BaseException) -> tuple[grpc.StatusCode, str]:
    if isinstance(error, DtmError):
        return error.code, error.message
    _log.exception("branch handler raised")
    return grpc.StatusCode.INTERNAL, f"{type(error).__name__}: {error}"


def branch_service(service: str, handlers: Mapping[str, Handler]) -> grpc.GenericRpcHandler[bytes, bytes]:
    """A generic handler serving `service` ("pkg.Service") with one handler per method name."""

    def wrap(method: str, handler: Handler) -> grpc.RpcMethodHandler[bytes, bytes]:
        full_name = f"/{service}/{method}"

        def serve(request: bytes, context: grpc.ServicerContext) -> bytes:
            branch = BranchContext.from_metadata(context.invocation_metadata(), full_name)
            try:
                return _body(handler(request, branch))
            except Exception as error:  # noqa: BLE001 - every error becomes a status
                code, message = _status_of(error)
            context.abort(code, message)
            raise AssertionError("unreachable")  # context.abort raises

        return grpc.unary_unary_rpc_method_handler(serve)

    return grpc.method_handlers_generic_handler(
        service, {method: wrap(method, handler) for method, handler in handlers.items()}
    )


def aio_branch_service(service: str, handlers: Mapping[str, AsyncHandler]) -> grpc.GenericRpcHandler[bytes, bytes]:
    """The same for a grpc.aio.Server, with coroutine handlers."""

    def wrap(method: str, handler: AsyncHandler) -> grpc.RpcMethodHandler[bytes, bytes]:
        full_name = f"/{service}/{method}"

        async def serve(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
            branch = BranchContext.from_metadata(context.invocation_metadata(), full_name)
            try:
                return _body(await handler(request, branch))
            except Exception as error:  # noqa: BLE001 - every error becomes a status
                code, message = _status_of(error)
            await context.abort(code, message)
            raise AssertionError("unreachable")

        return grpc.unary_unary_rpc_method_handler(serve)

    return grpc.method_handlers_generic_handler(
        service, {method: wrap(method, handler) for method, handler in handlers.items()}
    )


class BranchServer:
    """A synchronous gRPC server on host:0 (the OS picks the port) serving branch handlers.

        server = BranchServer()
        server.add_service("busi.Busi", {"TransOut": trans_out})
        server.start()
        saga.add(server.url("busi.Busi/TransOut"), ...)
    """

    def __init__(self, host: str = "127.0.0.1", max_workers: int = 16) -> None:
        self.host = host
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers))
        self.port = self._server.add_insecure_port(f"{host}:0")

    def add_service(self, service: str, handlers: Mapping[str, Handler]) -> BranchServer:
        self._server.add_generic_rpc_handlers([branch_service(service, handlers)])
        return self

    def add_handler(self, handler: grpc.GenericRpcHandler[Any, Any]) -> BranchServer:
        """Serves any generic handler too (e.g. workflow_service); call before start."""
        self._server.add_generic_rpc_handlers([handler])
        return self

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def url(self, method: str) -> str:
        """The branch URL of "pkg.Service/Method" on this server."""
        return f"{self.address}/{method.lstrip('/')}"

    def start(self) -> BranchServer:
        self._server.start()
        return self

    def stop(self, grace: float | None = None) -> None:
        self._server.stop(grace).wait()

    def __enter__(self) -> BranchServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
