package io.dtmd.client;

import io.dtmd.dtmgimp.DtmTransOptions;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Options of one transaction, shared by {@link Saga}, {@link Tcc} and {@link Msg}. All but the
 * last two become the request's {@code DtmTransOptions}; times are in seconds and 0 means the
 * coordinator's default. Mutable and not thread-safe: fill one in, then hand it to one helper.
 */
public final class TransOptions {
  /**
   * With true, Submit returns when the transaction ended (OK when it succeeded, ABORTED with the
   * rollback reason when it failed) or, if it has not ended after the coordinator's first round
   * of branch calls, FAILED_PRECONDITION.
   */
  public boolean waitResult;

  public long timeoutToFail;
  public long retryInterval;
  public long requestTimeout;
  /** Saga only: retried action calls after which the saga compensates (0 = no limit). */
  public long retryLimit;
  /**
   * Metadata the coordinator adds to every branch call of the transaction; the client adds it to
   * the branch calls it makes itself (TCC Try, msg QueryPrepared). Keys are lower-case gRPC
   * metadata keys.
   */
  public final Map<String, String> branchHeaders = new LinkedHashMap<>();

  /**
   * Client side: the deadline of each call to the coordinator. With waitResult it must cover the
   * coordinator's wait (RequestTimeout + 2 s per round in DTM).
   */
  public Duration callTimeout = Duration.ofSeconds(30);
  /**
   * Client side: the coordinator's address as the branches should see it, sent as {@code dtm-dtm}
   * on the branch calls the client makes itself. May be empty.
   */
  public String dtmAddress = "";

  public TransOptions copy() {
    TransOptions o = new TransOptions();
    o.waitResult = waitResult;
    o.timeoutToFail = timeoutToFail;
    o.retryInterval = retryInterval;
    o.requestTimeout = requestTimeout;
    o.retryLimit = retryLimit;
    o.branchHeaders.putAll(branchHeaders);
    o.callTimeout = callTimeout;
    o.dtmAddress = dtmAddress;
    return o;
  }

  DtmTransOptions toProto() {
    return DtmTransOptions.newBuilder()
        .setWaitResult(waitResult)
        .setTimeoutToFail(timeoutToFail)
        .setRetryInterval(retryInterval)
        .setRequestTimeout(requestTimeout)
        .setRetryLimit(retryLimit)
        .putAllBranchHeaders(branchHeaders)
        .build();
  }

  /** The deadline of a branch call the client makes itself: RequestTimeout, else callTimeout. */
  Duration branchCallTimeout() {
    return requestTimeout > 0 ? Duration.ofSeconds(requestTimeout) : callTimeout;
  }
}
