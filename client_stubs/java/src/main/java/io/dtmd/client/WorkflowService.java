package io.dtmd.client;

import com.google.protobuf.Empty;
import io.dtmd.workflow.WorkflowData;
import io.dtmd.workflow.WorkflowGrpc;
import io.grpc.BindableService;
import io.grpc.ServerInterceptors;
import io.grpc.ServerServiceDefinition;
import io.grpc.Status;
import io.grpc.stub.StreamObserver;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The resume endpoint: a {@code workflow.Workflow} service whose Execute reads the gid
 * ({@code dtm-gid}) and the workflow's name ({@code dtm-op}) from the call's metadata and runs
 * {@link WorkflowClient#execute}(name, gid, WorkflowData.Data, the handler registered for name).
 * It answers OK when the workflow ended (succeeded or failed: nothing more to do), NOT_FOUND for
 * an unregistered name, else the error that left it unfinished (the coordinator calls again
 * after RetryInterval).
 *
 * <pre>{@code
 * WorkflowService service = new WorkflowService(workflows).register("order", order);
 * Server server = ServerBuilder.forPort(8082).addService(service).build().start();
 * }</pre>
 *
 * <p>Execute blocks a gRPC thread for the whole run. Thread-safe.
 */
public final class WorkflowService implements BindableService, WorkflowGrpc.AsyncService {
  private final WorkflowClient client;
  private final Map<String, WorkflowHandler> handlers = new ConcurrentHashMap<>();

  public WorkflowService(WorkflowClient client) {
    this.client = client;
  }

  /** Registers the handler of workflow {@code name}; returns this. */
  public WorkflowService register(String name, WorkflowHandler handler) {
    handlers.put(name, handler);
    return this;
  }

  @Override
  public void execute(WorkflowData request, StreamObserver<Empty> responseObserver) {
    BranchInfo info = BranchInfo.current();
    WorkflowHandler handler = handlers.get(info.op());
    if (handler == null) {
      responseObserver.onError(
          Status.NOT_FOUND
              .withDescription("no workflow named '" + info.op() + "' is registered")
              .asRuntimeException());
      return;
    }
    try {
      client.execute(info.op(), info.gid(), request.getData().toByteArray(), handler);
    } catch (Exception e) {
      if (!WorkflowClient.isFailure(e)) {
        Status status = Status.fromThrowable(e);
        if (status.getCode() == Status.Code.UNKNOWN && status.getDescription() == null) {
          status = status.withDescription(String.valueOf(e));
        }
        responseObserver.onError(status.asRuntimeException());
        return;
      }
      // Failed: ended, nothing more to do.
    }
    responseObserver.onNext(Empty.getDefaultInstance());
    responseObserver.onCompleted();
  }

  /** The service behind a {@link BranchInterceptor}, so that execute sees the dtm-* metadata. */
  @Override
  public ServerServiceDefinition bindService() {
    return ServerInterceptors.intercept(WorkflowGrpc.bindService(this), new BranchInterceptor());
  }
}
