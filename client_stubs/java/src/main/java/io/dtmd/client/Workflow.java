package io.dtmd.client;

import com.google.protobuf.ByteString;
import io.dtmd.dtmgimp.DtmBranchRequest;
import io.dtmd.dtmgimp.DtmProgress;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.util.HashMap;
import java.util.Map;

/**
 * One run of a workflow, handed to its {@link WorkflowHandler}. Its {@link #step} runs a step
 * once across every run of the workflow: the coordinator records each step's outcome, and a
 * resumed run replays the recorded outcomes instead of running those steps again.
 *
 * <p>Steps must be deterministic in order: the n-th step of a run is branch "0n" in every run.
 * Not thread-safe: call step from the handler's thread only.
 */
public final class Workflow {
  /** A step's body: its result, or a throw (ABORTED = a failure, final; else unknown). */
  @FunctionalInterface
  public interface Step {
    byte[] run() throws Exception;
  }

  static final String TRANS_TYPE = "workflow";
  static final String OP_ACTION = "action";
  static final String SUCCEED = "succeed";
  static final String FAILED = "failed";

  private final WorkflowClient client;
  private final String name;
  private final String gid;
  private final byte[] input;
  /** Recorded outcomes of op "action" by branch id. */
  private final Map<String, DtmProgress> progresses = new HashMap<>();
  private int lastBranch;

  Workflow(
      WorkflowClient client,
      String name,
      String gid,
      byte[] input,
      Iterable<DtmProgress> recorded) {
    this.client = client;
    this.name = name;
    this.gid = gid;
    this.input = input;
    for (DtmProgress p : recorded) {
      if (p.getOp().equals(OP_ACTION)
          && (p.getStatus().equals(SUCCEED) || p.getStatus().equals(FAILED))) {
        progresses.put(p.getBranchID(), p);
      }
    }
  }

  /**
   * Runs the next step (branch id "01", "02", ... in the order of step calls; op "action").
   *
   * <p>If an earlier run recorded its outcome, returns that outcome without calling {@code step}:
   * the result bytes for "succeed", a throw of ABORTED with the recorded message for "failed".
   * Otherwise calls {@code step} and, when it returns or throws ABORTED, records the outcome with
   * RegisterBranch (Data {"op": "action", "status": "succeed" | "failed"}, BusiPayload the result
   * or the error's description), then returns the result or rethrows the ABORTED exception. Any
   * other exception is rethrown unrecorded: the step runs again when the workflow is resumed.
   * RegisterBranch's own error is thrown; ABORTED from it (the workflow is no longer prepared)
   * becomes FAILED_PRECONDITION so that it does not read as the step's failure.
   */
  public byte[] step(Step step) throws Exception {
    if (lastBranch >= 99) {
      throw Status.RESOURCE_EXHAUSTED
          .withDescription("a workflow has at most 99 steps (ids 01 to 99)")
          .asRuntimeException();
    }
    String branchId = String.format("%02d", ++lastBranch);
    DtmProgress recorded = progresses.get(branchId);
    if (recorded != null) {
      if (recorded.getStatus().equals(SUCCEED)) {
        return recorded.getBinData().toByteArray();
      }
      throw WorkflowClient.failure(recorded.getBinData().toStringUtf8());
    }

    byte[] result;
    Exception failure = null;
    try {
      result = step.run();
      if (result == null) {
        result = new byte[0];
      }
    } catch (Exception e) {
      if (!WorkflowClient.isFailure(e)) {
        throw e; // Unknown: runs again on resume.
      }
      failure = e;
      result = WorkflowClient.failureMessage(e).getBytes(java.nio.charset.StandardCharsets.UTF_8);
    }
    try {
      client
          .stub()
          .registerBranch(
              DtmBranchRequest.newBuilder()
                  .setGid(gid)
                  .setTransType(TRANS_TYPE)
                  .setBranchID(branchId)
                  .putData("op", OP_ACTION)
                  .putData("status", failure == null ? SUCCEED : FAILED)
                  .setBusiPayload(ByteString.copyFrom(result))
                  .build());
    } catch (StatusRuntimeException e) {
      if (e.getStatus().getCode() == Status.Code.ABORTED) {
        throw Status.FAILED_PRECONDITION
            .withDescription(e.getStatus().getDescription())
            .withCause(e)
            .asRuntimeException();
      }
      throw e;
    }
    if (failure != null) {
      throw failure;
    }
    return result;
  }

  public String name() {
    return name;
  }

  public String gid() {
    return gid;
  }

  /** The bytes the workflow was started with. */
  public byte[] input() {
    return input.clone();
  }
}
