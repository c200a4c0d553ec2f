"""dtmd's Python client: DTM's gRPC protocol, with Saga / Tcc / Msg helpers,
branch serving (grpc and grpc.aio), a workflow helper and a
sub-transaction barrier."""

from dtmd_client.barrier import BranchBarrier, barrier_table_ddl, create_barrier_table
from dtmd_client.branch import (
    AsyncHandler,
    BranchContext,
    BranchServer,
    Handler,
    aio_branch_service,
    branch_service,
)
from dtmd_client.client import DtmClient, Saga, split_url
from dtmd_client.errors import DtmError, Duplicated, Failure, Ongoing
from dtmd_client.msg import Msg, delete_topic, subscribe, unsubscribe
from dtmd_client.options import TransOptions
from dtmd_client.tcc import Tcc, tcc_global_transaction
from dtmd_client.workflow import Workflow, WorkflowClient, WorkflowHandler, WorkflowServicer, workflow_service

__all__ = [
    "AsyncHandler",
    "BranchBarrier",
    "BranchContext",
    "BranchServer",
    "DtmClient",
    "DtmError",
    "Duplicated",
    "Failure",
    "Handler",
    "Msg",
    "Ongoing",
    "Saga",
    "Tcc",
    "TransOptions",
    "Workflow",
    "WorkflowClient",
    "WorkflowHandler",
    "WorkflowServicer",
    "aio_branch_service",
    "barrier_table_ddl",
    "branch_service",
    "create_barrier_table",
    "delete_topic",
    "split_url",
    "subscribe",
    "tcc_global_transaction",
    "unsubscribe",
    "workflow_service",
]
