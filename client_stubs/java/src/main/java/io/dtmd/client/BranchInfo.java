package io.dtmd.client;

import io.grpc.Context;
import io.grpc.Metadata;
import io.grpc.Status;

/**
 * What the coordinator tells a branch about the call: the dtm-* metadata of the request.
 * Inside a handler of a service wrapped with {@link BranchInterceptor} (every {@link
 * RawService} is), {@link #current()} returns it:
 *
 * <pre>{@code
 * BranchInfo info = BranchInfo.current();   // gid, transType, branchId, op, dtm
 * String user = info.header("x-user");      // a BranchHeaders entry
 * }</pre>
 *
 * @param gid the global transaction id ({@code dtm-gid})
 * @param transType saga, tcc, msg, xa or workflow ({@code dtm-trans_type})
 * @param branchId "01", "02", ... ({@code dtm-branch_id})
 * @param op action, compensate, try, confirm, cancel, msg, ... ({@code dtm-op})
 * @param dtm the coordinator's address; may be empty ({@code dtm-dtm})
 * @param headers all the request's metadata, BranchHeaders included; may be empty
 */
public record BranchInfo(
    String gid, String transType, String branchId, String op, String dtm, Metadata headers) {
  public static final String GID = "dtm-gid";
  public static final String TRANS_TYPE = "dtm-trans_type";
  public static final String BRANCH_ID = "dtm-branch_id";
  public static final String OP = "dtm-op";
  public static final String DTM = "dtm-dtm";

  /** Where {@link BranchInterceptor} puts the info for the handler's call. */
  public static final Context.Key<BranchInfo> CONTEXT_KEY = Context.key("dtmd-branch-info");

  public BranchInfo(String gid, String transType, String branchId, String op, String dtm) {
    this(gid, transType, branchId, op, dtm, new Metadata());
  }

  /** Reads the dtm-* entries of {@code metadata}; a missing one is "". */
  public static BranchInfo fromMetadata(Metadata metadata) {
    return new BranchInfo(
        get(metadata, GID),
        get(metadata, TRANS_TYPE),
        get(metadata, BRANCH_ID),
        get(metadata, OP),
        get(metadata, DTM),
        metadata);
  }

  /**
   * The info of the branch call being handled on this thread. Throws FAILED_PRECONDITION when
   * there is none (not inside a handler behind BranchInterceptor).
   */
  public static BranchInfo current() {
    BranchInfo info = CONTEXT_KEY.get();
    if (info == null) {
      throw Status.FAILED_PRECONDITION
          .withDescription("no branch info: the service is not wrapped with BranchInterceptor")
          .asRuntimeException();
    }
    return info;
  }

  /** A metadata entry of the call (e.g. a BranchHeaders key), or null. */
  public String header(String key) {
    return headers.get(Metadata.Key.of(key, Metadata.ASCII_STRING_MARSHALLER));
  }

  /** True when gid, trans type, branch id and op are all present (a call from a coordinator). */
  public boolean isComplete() {
    return !gid.isEmpty() && !transType.isEmpty() && !branchId.isEmpty() && !op.isEmpty();
  }

  private static String get(Metadata metadata, String key) {
    String value = metadata.get(Metadata.Key.of(key, Metadata.ASCII_STRING_MARSHALLER));
    return value == null ? "" : value;
  }
}
