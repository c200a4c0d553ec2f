package io.dtmd.client;

import io.dtmd.dtmgimp.DtmGrpc;
import io.dtmd.dtmgimp.DtmProgressesReply;
import io.dtmd.dtmgimp.DtmRequest;
import io.dtmd.dtmgimp.DtmTransaction;
import io.grpc.Channel;
import io.grpc.Status;
import io.grpc.StatusException;
import io.grpc.StatusRuntimeException;
import java.util.Base64;
import java.util.concurrent.TimeUnit;

/**
 * Starts and resumes workflows (TransType "workflow"): a function whose steps' outcomes the
 * coordinator records, so that a run interrupted anywhere (crash, timeout, unknown answer)
 * resumes later where it stopped, replaying the recorded steps instead of running them again.
 *
 * <pre>{@code
 * WorkflowClient workflows =
 *     new WorkflowClient(dtm, "localhost:8082/workflow.Workflow/Execute");
 * WorkflowHandler order = (wf, input) -> {
 *   byte[] reserved = wf.step(() -> reserve(input));
 *   return wf.step(() -> charge(reserved));   // throw WorkflowClient.failure("...") to fail
 * };
 * byte[] result = workflows.execute("order", dtm.newGid(), input, order);
 * }</pre>
 *
 * <p>Outcomes, as in DTM: a step or handler that throws ABORTED (a {@link StatusRuntimeException}
 * or {@link StatusException} with that code; {@link #failure} makes one) fails: that is final, and
 * the workflow ends failed with the exception's description as rollback reason. Any other
 * exception leaves the workflow unfinished: nothing is recorded for that step, and the
 * coordinator later calls the resume URL (op = the workflow's name, a {@code WorkflowData}
 * payload), where a {@link WorkflowService} runs {@link #execute} again with the same name, gid
 * and input.
 *
 * <p>Minimal: no phase-2 callbacks (DTM's OnCommit/OnRollback) and no recorded gRPC/HTTP
 * interceptors; a step is a function returning bytes. Thread-safe (no mutable state).
 */
public final class WorkflowClient {
  private final DtmGrpc.DtmBlockingStub stub;
  private final String resumeUrl;
  private final TransOptions options;

  /**
   * {@code resumeUrl}: "host:port/workflow.Workflow/Execute" where this program serves a {@link
   * WorkflowService}, sent as QueryPrepared with every PrepareWorkflow (the coordinator checks it
   * each time, also when resuming). {@code options} apply to every workflow (TimeoutToFail plays
   * no part: the coordinator re-drives an unfinished workflow every RetryInterval); it is copied.
   */
  public WorkflowClient(DtmGrpc.DtmBlockingStub stub, String resumeUrl, TransOptions options) {
    this.stub = stub;
    this.resumeUrl = resumeUrl;
    this.options = options.copy();
  }

  public WorkflowClient(DtmGrpc.DtmBlockingStub stub, String resumeUrl) {
    this(stub, resumeUrl, new TransOptions());
  }

  /** Over a channel to the coordinator (not owned: the caller closes it). */
  public WorkflowClient(Channel channel, String resumeUrl) {
    this(DtmGrpc.newBlockingStub(channel), resumeUrl, new TransOptions());
  }

  public WorkflowClient(DtmClient dtm, String resumeUrl, TransOptions options) {
    this(dtm.stub(), resumeUrl, options);
  }

  public WorkflowClient(DtmClient dtm, String resumeUrl) {
    this(dtm.stub(), resumeUrl, dtm.options());
  }

  /** An ABORTED exception: thrown by a step or handler, it makes the workflow fail. */
  public static StatusRuntimeException failure(String reason) {
    return Status.ABORTED.withDescription(reason).asRuntimeException();
  }

  /** True for an ABORTED {@link StatusRuntimeException} or {@link StatusException}. */
  public static boolean isFailure(Throwable e) {
    Status status = null;
    if (e instanceof StatusRuntimeException s) {
      status = s.getStatus();
    } else if (e instanceof StatusException s) {
      status = s.getStatus();
    }
    return status != null && status.getCode() == Status.Code.ABORTED;
  }

  static String failureMessage(Throwable e) {
    String description = Status.fromThrowable(e).getDescription();
    return description == null ? "" : description;
  }

  /**
   * Runs workflow {@code name} with {@code gid}: PrepareWorkflow (TransType "workflow", Steps
   * "null", CustomedData {"name": name, "data": base64(input)}, QueryPrepared the resume URL)
   * creates it or returns its recorded progress. Already succeeded: returns its stored result
   * (handler not run). Already failed: throws ABORTED with its rollback reason. Otherwise runs
   * {@code handler}; when it returns, Submit with ReqExtra {"status": "succeed",
   * "rollback_reason": "", "result": base64(result)} and returns the result; when it throws
   * ABORTED, Submit with status "failed" and the description as rollback reason, then rethrows.
   * Submit's own error is thrown instead. Any other exception from the handler is rethrown as it
   * is, with the workflow left unfinished.
   */
  public byte[] execute(String name, String gid, byte[] input, WorkflowHandler handler)
      throws Exception {
    DtmRequest request =
        DtmRequest.newBuilder()
            .setGid(gid)
            .setTransType(Workflow.TRANS_TYPE)
            .setSteps("null")
            .setTransOptions(options.toProto())
            .setCustomedData(
                "{\"name\":"
                    + Json.quote(name)
                    + ",\"data\":"
                    + Json.quote(Base64.getEncoder().encodeToString(input))
                    + "}")
            .setQueryPrepared(resumeUrl)
            .build();
    DtmProgressesReply reply = stub().prepareWorkflow(request);

    DtmTransaction stored = reply.getTransaction();
    if (stored.getStatus().equals(Workflow.SUCCEED)) {
      try {
        return Base64.getDecoder().decode(stored.getResult());
      } catch (IllegalArgumentException e) {
        throw Status.INTERNAL
            .withDescription("workflow " + gid + " succeeded with a result that is not base64")
            .asRuntimeException();
      }
    }
    if (stored.getStatus().equals(Workflow.FAILED)) {
      throw failure(stored.getRollbackReason());
    }

    Workflow wf = new Workflow(this, name, gid, input, reply.getProgressesList());
    byte[] result;
    Exception failure = null;
    try {
      result = handler.run(wf, input.clone());
      if (result == null) {
        result = new byte[0];
      }
    } catch (Exception e) {
      if (!isFailure(e)) {
        throw e; // Resumed later.
      }
      failure = e;
      result = new byte[0];
    }
    stub()
        .submit(
            request.toBuilder()
                .putReqExtra("status", failure == null ? Workflow.SUCCEED : Workflow.FAILED)
                .putReqExtra("rollback_reason", failure == null ? "" : failureMessage(failure))
                .putReqExtra(
                    "result", failure == null ? Base64.getEncoder().encodeToString(result) : "")
                .build());
    if (failure != null) {
      throw failure;
    }
    return result;
  }

  /** The stub with the call timeout as deadline. */
  DtmGrpc.DtmBlockingStub stub() {
    return stub.withDeadlineAfter(options.callTimeout.toMillis(), TimeUnit.MILLISECONDS);
  }
}
