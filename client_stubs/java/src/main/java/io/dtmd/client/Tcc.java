package io.dtmd.client;

import com.google.protobuf.ByteString;
import io.dtmd.dtmgimp.DtmBranchRequest;
import io.dtmd.dtmgimp.DtmRequest;
import io.grpc.StatusRuntimeException;

/**
 * A TCC (try-confirm-cancel) global transaction.
 *
 * <pre>{@code
 * dtm.tcc(dtm.newGid(), tcc -> {
 *   tcc.callBranch(payload, busi + "/busi.Busi/TryPay", busi + "/busi.Busi/ConfirmPay",
 *                  busi + "/busi.Busi/CancelPay");
 *   tcc.callBranch(...);   // a throw here aborts: every registered branch is cancelled
 * });
 * }</pre>
 *
 * <p>The client drives the first phase: it prepares the transaction, registers each branch with
 * the coordinator and then calls its Try URL itself. The coordinator runs the second phase:
 * Confirm of every registered branch after Submit, Cancel after Abort, in reverse registration
 * order, retried until they succeed. Registering before Try means a Try whose answer is lost is
 * still cancelled. Not thread-safe: call callBranch from the body's thread only.
 */
public final class Tcc {
  /** The body of a TCC transaction: calls its branches; a throw aborts the transaction. */
  @FunctionalInterface
  public interface Body {
    void run(Tcc tcc) throws Exception;
  }

  private final DtmClient dtm;
  private final String gid;
  private final TransOptions options;
  private int lastBranch;

  private Tcc(DtmClient dtm, String gid, TransOptions options) {
    this.dtm = dtm;
    this.gid = gid;
    this.options = options;
  }

  /**
   * Runs one TCC transaction with gid {@code gid}: Prepare (TransType "tcc", Steps "null"), then
   * {@code body}. When body returns, Submit (the coordinator confirms every branch; with
   * options.waitResult Submit answers the outcome). When body throws, Abort with its message as
   * rollback reason (the coordinator cancels every registered branch) and rethrow body's
   * exception; Abort's own failure is added to it as suppressed (a prepared TCC is aborted by the
   * coordinator at TimeoutToFail anyway). When Prepare fails, body does not run.
   */
  public static void globalTransaction(
      DtmClient dtm, String gid, TransOptions options, Body body) throws Exception {
    DtmRequest request =
        DtmRequest.newBuilder()
            .setGid(gid)
            .setTransType("tcc")
            .setSteps("null")
            .setTransOptions(options.toProto())
            .build();
    dtm.withDeadline(options.callTimeout).prepare(request);
    try {
      body.run(new Tcc(dtm, gid, options));
    } catch (Exception e) {
      try {
        dtm.withDeadline(options.callTimeout)
            .abort(request.toBuilder().setRollbackReason(String.valueOf(e.getMessage())).build());
      } catch (StatusRuntimeException abortError) {
        e.addSuppressed(abortError);
      }
      throw e;
    }
    dtm.withDeadline(options.callTimeout).submit(request);
  }

  /**
   * Adds a branch: takes the next branch id ("01", "02", ...), registers it (Data {"confirm",
   * "cancel"}, BusiPayload {@code payload}), then calls {@code tryUrl} with {@code payload} as
   * the raw body and the metadata dtm-gid, dtm-trans_type "tcc", dtm-branch_id, dtm-op "try",
   * dtm-dtm and the branch headers, with the deadline RequestTimeout, else the call timeout.
   * Confirm and Cancel get the same payload. Returns Try's reply body; throws RegisterBranch's
   * error (Try is then not called) or Try's status.
   */
  public byte[] callBranch(byte[] payload, String tryUrl, String confirmUrl, String cancelUrl) {
    String branchId = String.format("%02d", ++lastBranch);
    dtm.withDeadline(options.callTimeout)
        .registerBranch(
            DtmBranchRequest.newBuilder()
                .setGid(gid)
                .setTransType("tcc")
                .setBranchID(branchId)
                .setOp("try")
                .putData("confirm", confirmUrl)
                .putData("cancel", cancelUrl)
                .setBusiPayload(ByteString.copyFrom(payload))
                .build());
    return dtm.branches()
        .call(
            tryUrl,
            payload,
            new BranchInfo(gid, "tcc", branchId, "try", options.dtmAddress),
            options.branchHeaders,
            options.branchCallTimeout());
  }

  public String gid() {
    return gid;
  }
}
