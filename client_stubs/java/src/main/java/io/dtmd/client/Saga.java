package io.dtmd.client;

import com.google.protobuf.ByteString;
import io.dtmd.dtmgimp.DtmRequest;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * Builds and submits one saga (get one from {@link DtmClient#saga}).
 *
 * <p>Steps run in the order they were added, or per {@link #addBranchOrder} when {@link
 * #enableConcurrent} is set. Each step has an action URL and a compensation URL ("" means nothing
 * to call), both "host:port/package.Service/Method", and the payload bytes sent as the body of
 * both calls. When an action fails (its branch answers ABORTED) the coordinator compensates, in
 * reverse order, every step that ran or may have run.
 *
 * <p>Not thread-safe: one per transaction. Errors are thrown as StatusRuntimeException (see
 * {@link DtmClient}).
 */
public final class Saga {
  private record Step(String action, String compensate, byte[] payload) {}

  private final DtmClient dtm;
  private final String gid;
  private final TransOptions options;
  private final List<Step> steps = new ArrayList<>();
  private final Map<Integer, List<Integer>> orders = new TreeMap<>();
  private boolean concurrent;

  Saga(DtmClient dtm, String gid, TransOptions options) {
    this.dtm = dtm;
    this.gid = gid;
    this.options = options;
  }

  /** Appends a step; step indices (for addBranchOrder) are 0-based in the order of add calls. */
  public Saga add(String actionUrl, String compensateUrl, byte[] payload) {
    steps.add(new Step(actionUrl, compensateUrl, payload));
    return this;
  }

  /**
   * Step {@code step} runs only after every step in {@code after} succeeded (with
   * enableConcurrent). A repeated call for the same step replaces its predecessors; the
   * coordinator rejects bad indices with INVALID_ARGUMENT.
   */
  public Saga addBranchOrder(int step, int... after) {
    List<Integer> list = new ArrayList<>();
    for (int a : after) {
      list.add(a);
    }
    orders.put(step, list);
    return this;
  }

  /** Runs the steps concurrently, constrained only by addBranchOrder. */
  public Saga enableConcurrent() {
    concurrent = true;
    return this;
  }

  public Saga waitResult(boolean waitResult) {
    options.waitResult = waitResult;
    return this;
  }

  public Saga timeoutToFail(long seconds) {
    options.timeoutToFail = seconds;
    return this;
  }

  public Saga retryInterval(long seconds) {
    options.retryInterval = seconds;
    return this;
  }

  public Saga requestTimeout(long seconds) {
    options.requestTimeout = seconds;
    return this;
  }

  /** Retried action calls after which the saga gives up and compensates (0 = no limit). */
  public Saga retryLimit(long retryLimit) {
    options.retryLimit = retryLimit;
    return this;
  }

  /** Metadata the coordinator adds to every branch call of this saga. */
  public Saga branchHeader(String key, String value) {
    options.branchHeaders.put(key, value);
    return this;
  }

  /** The options this saga is sent with; changes apply to the next submit or prepare. */
  public TransOptions options() {
    return options;
  }

  public String gid() {
    return gid;
  }

  /**
   * The request submit and prepare send: TransType "saga", Steps a JSON array of {"action",
   * "compensate"} objects, BinPayloads in step order, CustomedData {"orders":...,"concurrent":...}
   * when concurrency or orders were set, else empty.
   */
  public DtmRequest buildRequest() {
    StringBuilder stepsJson = new StringBuilder("[");
    DtmRequest.Builder request =
        DtmRequest.newBuilder()
            .setGid(gid)
            .setTransType("saga")
            .setTransOptions(options.toProto());
    for (int i = 0; i < steps.size(); i++) {
      Step step = steps.get(i);
      if (i > 0) {
        stepsJson.append(',');
      }
      stepsJson
          .append("{\"action\":")
          .append(Json.quote(step.action()))
          .append(",\"compensate\":")
          .append(Json.quote(step.compensate()))
          .append('}');
      request.addBinPayloads(ByteString.copyFrom(step.payload()));
    }
    request.setSteps(stepsJson.append(']').toString());
    if (concurrent || !orders.isEmpty()) {
      StringBuilder custom = new StringBuilder("{\"orders\":{");
      boolean first = true;
      for (Map.Entry<Integer, List<Integer>> e : orders.entrySet()) {
        if (!first) {
          custom.append(',');
        }
        first = false;
        custom.append('"').append(e.getKey()).append("\":[");
        for (int j = 0; j < e.getValue().size(); j++) {
          custom.append(j > 0 ? "," : "").append(e.getValue().get(j));
        }
        custom.append(']');
      }
      custom.append("},\"concurrent\":").append(concurrent).append('}');
      request.setCustomedData(custom.toString());
    }
    return request.build();
  }

  /** Submits the saga: the coordinator runs it (and, with waitResult, answers its outcome). */
  public void submit() {
    dtm.withDeadline(options.callTimeout).submit(buildRequest());
  }

  /** Stores the saga as prepared without running it; a later submit of the gid runs it. */
  public void prepare() {
    dtm.withDeadline(options.callTimeout).prepare(buildRequest());
  }
}
