package io.dtmd.client;

import com.google.protobuf.ByteString;
import io.dtmd.dtmgimp.DtmRequest;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.util.ArrayList;
import java.util.List;

/**
 * A reliable message (TransType "msg"): actions the coordinator calls, in order, once the msg is
 * submitted, retrying each until it succeeds; a msg never rolls back. Get one from {@link
 * DtmClient#msg}. The usual use ties it to a local transaction:
 *
 * <pre>{@code
 * dtm.msg(gid)
 *     .add(busi + "/busi.Busi/AddPoints", payload)
 *     .add("topic://order-paid", payload)       // one branch per subscriber
 *     .doAndSubmit(busi + "/busi.Busi/QueryPrepared", () -> commitLocalOrder(gid));
 * }</pre>
 *
 * <p>Prepare stores the msg with the URL the coordinator asks (op "msg", branch id "00") when a
 * prepared msg stays unsubmitted past TimeoutToFail: OK submits it, ABORTED makes it fail,
 * FAILED_PRECONDITION asks again later. Not thread-safe; errors are StatusRuntimeException.
 */
public final class Msg {
  /** The local transaction of doAndSubmit. */
  @FunctionalInterface
  public interface Busi {
    void run() throws Exception;
  }

  private record Step(String action, byte[] payload) {}

  private final DtmClient dtm;
  private final String gid;
  private final TransOptions options;
  private final List<Step> steps = new ArrayList<>();
  private long delaySeconds;
  private String queryPrepared = "";

  Msg(DtmClient dtm, String gid, TransOptions options) {
    this.dtm = dtm;
    this.gid = gid;
    this.options = options;
  }

  /**
   * Appends an action: a URL "host:port/package.Service/Method" called with {@code payload}, or
   * "topic://NAME", which the coordinator expands at Submit to one action per subscriber of NAME
   * (NOT_FOUND when it has none). Branch ids are "01", "02", ... in the order of add calls.
   */
  public Msg add(String actionUrl, byte[] payload) {
    steps.add(new Step(actionUrl, payload));
    return this;
  }

  /** The same as add("topic://" + topic, payload). */
  public Msg addTopic(String topic, byte[] payload) {
    return add("topic://" + topic, payload);
  }

  /** Seconds the coordinator waits after Submit before its first action call (0: none). */
  public Msg delay(long seconds) {
    delaySeconds = seconds;
    return this;
  }

  public TransOptions options() {
    return options;
  }

  public String gid() {
    return gid;
  }

  /**
   * The request prepare, submit and abort send: TransType "msg", Steps a JSON array of {"action"}
   * objects, BinPayloads in step order, QueryPrepared as given to prepare, CustomedData
   * {"delay":N} when a delay was set.
   */
  public DtmRequest buildRequest() {
    StringBuilder stepsJson = new StringBuilder("[");
    DtmRequest.Builder request =
        DtmRequest.newBuilder()
            .setGid(gid)
            .setTransType("msg")
            .setTransOptions(options.toProto())
            .setQueryPrepared(queryPrepared);
    for (int i = 0; i < steps.size(); i++) {
      stepsJson.append(i > 0 ? "," : "").append("{\"action\":")
          .append(Json.quote(steps.get(i).action())).append('}');
      request.addBinPayloads(ByteString.copyFrom(steps.get(i).payload()));
    }
    request.setSteps(stepsJson.append(']').toString());
    if (delaySeconds > 0) {
      request.setCustomedData("{\"delay\":" + delaySeconds + "}");
    }
    return request.build();
  }

  /** Stores the msg as prepared; "" keeps the QueryPrepared URL given before. */
  public void prepare(String queryPreparedUrl) {
    if (!queryPreparedUrl.isEmpty()) {
      queryPrepared = queryPreparedUrl;
    }
    dtm.withDeadline(options.callTimeout).prepare(buildRequest());
  }

  /** Submits the msg (prepared or not): the coordinator calls the actions. */
  public void submit() {
    dtm.withDeadline(options.callTimeout).submit(buildRequest());
  }

  /** Aborts a prepared msg: it ends failed and no action is called. */
  public void abort() {
    dtm.withDeadline(options.callTimeout).abort(buildRequest());
  }

  /**
   * Prepare, then {@code busi} (the local transaction), then, as DTM's DoAndSubmit:
   *
   * <ul>
   *   <li>busi returns: Submit;
   *   <li>busi throws ABORTED (the business refused): Abort, and rethrow;
   *   <li>busi throws anything else (its outcome is unknown): ask queryPreparedUrl at once, as
   *       the coordinator would later: OK - Submit, ABORTED - Abort, anything else - leave the
   *       msg prepared for the coordinator's own check; rethrow busi's exception.
   * </ul>
   *
   * When Prepare fails busi does not run. The QueryPrepared handler must tell from its own
   * records whether busi committed ({@link BranchBarrier#queryPrepared} does).
   */
  public void doAndSubmit(String queryPreparedUrl, Busi busi) throws Exception {
    prepare(queryPreparedUrl);
    try {
      busi.run();
    } catch (Exception e) {
      if (Status.fromThrowable(e).getCode() == Status.Code.ABORTED) {
        abortQuietly(e);
        throw e;
      }
      try {
        dtm.branches()
            .call(
                queryPrepared,
                new byte[0],
                new BranchInfo(gid, "msg", "00", "msg", options.dtmAddress),
                options.branchHeaders,
                options.branchCallTimeout());
        submit();
      } catch (StatusRuntimeException check) {
        if (check.getStatus().getCode() == Status.Code.ABORTED) {
          abortQuietly(e);
        } else {
          e.addSuppressed(check);
        }
      }
      throw e;
    }
    submit();
  }

  private void abortQuietly(Exception cause) {
    try {
      abort();
    } catch (StatusRuntimeException abortError) {
      cause.addSuppressed(abortError);
    }
  }
}
