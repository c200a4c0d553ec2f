package io.dtmd.client;

import io.dtmd.dtmgimp.DtmGrpc;
import io.dtmd.dtmgimp.DtmTopicRequest;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.StatusRuntimeException;
import com.google.protobuf.Empty;
import java.time.Duration;
import java.util.concurrent.TimeUnit;

/**
 * A connection to the coordinator (dtmd or DTM, gRPC port 36790 by default) and the entry point
 * to the helpers: {@link #newGid}, {@link #saga}, {@link #msg}, {@link #tcc} and topics.
 *
 * <pre>{@code
 * try (DtmClient dtm = new DtmClient("localhost:36790")) {
 *   dtm.saga(dtm.newGid())
 *       .add(busi + "/busi.Busi/TransOut", busi + "/busi.Busi/TransOutRevert", payload)
 *       .add(busi + "/busi.Busi/TransIn", busi + "/busi.Busi/TransInRevert", payload)
 *       .waitResult(true)
 *       .submit();
 * }
 * }</pre>
 *
 * <p>Thread-safe; one per process is enough. Every call that fails throws the gRPC {@link
 * StatusRuntimeException}: ABORTED for a transaction that failed (with waitResult) or a request
 * its status forbids, FAILED_PRECONDITION for a waitResult transaction still running when the
 * wait ended, INVALID_ARGUMENT for a malformed request. Nothing is retried here: a failed
 * Submit may be repeated with the same gid.
 */
public final class DtmClient implements AutoCloseable {
  private final ManagedChannel channel;
  private final boolean ownsChannel;
  private final DtmGrpc.DtmBlockingStub stub;
  private final String address;
  private final BranchCaller branches = new BranchCaller();

  /** Connects (lazily, in plain text) to {@code target}, e.g. "localhost:36790". */
  public DtmClient(String target) {
    this(ManagedChannelBuilder.forTarget(target).usePlaintext().build(), true, target);
  }

  /** Uses a channel the caller owns (and closes). */
  public DtmClient(ManagedChannel channel) {
    this(channel, false, channel.authority());
  }

  private DtmClient(ManagedChannel channel, boolean ownsChannel, String address) {
    this.channel = channel;
    this.ownsChannel = ownsChannel;
    this.stub = DtmGrpc.newBlockingStub(channel);
    this.address = address;
  }

  /** The generated stub, for what the helpers do not cover. */
  public DtmGrpc.DtmBlockingStub stub() {
    return stub;
  }

  /** The coordinator's address as given; the default {@code dtm-dtm} of client-made calls. */
  public String address() {
    return address;
  }

  /** Fresh transaction options whose dtmAddress is this coordinator. */
  public TransOptions options() {
    TransOptions o = new TransOptions();
    o.dtmAddress = address;
    return o;
  }

  /** Asks the coordinator for a fresh, unique gid. */
  public String newGid() {
    return withDeadline(Duration.ofSeconds(30)).newGid(Empty.getDefaultInstance()).getGid();
  }

  public Saga saga(String gid) {
    return new Saga(this, gid, options());
  }

  public Msg msg(String gid) {
    return new Msg(this, gid, options());
  }

  /** Runs one TCC transaction; see {@link Tcc#globalTransaction}. */
  public void tcc(String gid, TransOptions options, Tcc.Body body) throws Exception {
    Tcc.globalTransaction(this, gid, options, body);
  }

  public void tcc(String gid, Tcc.Body body) throws Exception {
    Tcc.globalTransaction(this, gid, options(), body);
  }

  /**
   * Subscribes {@code url} to {@code topic}: a msg step "topic://NAME" goes to every subscriber.
   * ALREADY_EXISTS when the URL is subscribed already.
   */
  public void subscribe(String topic, String url, String remark) {
    withDeadline(Duration.ofSeconds(30))
        .subscribe(
            DtmTopicRequest.newBuilder().setTopic(topic).setURL(url).setRemark(remark).build());
  }

  /** NOT_FOUND for an unknown topic or subscription. */
  public void unsubscribe(String topic, String url) {
    withDeadline(Duration.ofSeconds(30))
        .unsubscribe(DtmTopicRequest.newBuilder().setTopic(topic).setURL(url).build());
  }

  /** NOT_FOUND for an unknown topic. */
  public void deleteTopic(String topic) {
    withDeadline(Duration.ofSeconds(30))
        .deleteTopic(DtmTopicRequest.newBuilder().setTopic(topic).build());
  }

  DtmGrpc.DtmBlockingStub withDeadline(Duration timeout) {
    return stub.withDeadlineAfter(timeout.toMillis(), TimeUnit.MILLISECONDS);
  }

  BranchCaller branches() {
    return branches;
  }

  @Override
  public void close() {
    branches.close();
    if (ownsChannel) {
      channel.shutdown();
      try {
        channel.awaitTermination(5, TimeUnit.SECONDS);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
  }
}
