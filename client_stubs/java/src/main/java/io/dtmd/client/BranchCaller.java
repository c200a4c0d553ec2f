package io.dtmd.client;

import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.ClientInterceptors;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.Status;
import io.grpc.stub.ClientCalls;
import io.grpc.stub.MetadataUtils;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;

/**
 * Makes the branch calls that the client does itself (TCC Try, msg QueryPrepared) the way the
 * coordinator makes the others: a unary call of "/package.Service/Method" on host:port whose body
 * is the raw payload, with the dtm-* metadata. One plain-text channel per host:port, kept until
 * {@link #close}. Thread-safe.
 */
final class BranchCaller implements AutoCloseable {
  private final Map<String, ManagedChannel> channels = new ConcurrentHashMap<>();

  /** The parts of a branch URL "host:port/package.Service/Method". */
  record Target(String hostPort, String method) {
    static Target parse(String url) {
      int slash = url.indexOf('/');
      if (slash <= 0 || slash == url.length() - 1 || url.contains("://")) {
        throw Status.INVALID_ARGUMENT
            .withDescription("branch URL is not host:port/package.Service/Method: " + url)
            .asRuntimeException();
      }
      return new Target(url.substring(0, slash), url.substring(slash + 1));
    }
  }

  /**
   * Calls {@code url} with {@code payload} and returns the reply body; a status other than OK is
   * thrown as a StatusRuntimeException.
   */
  byte[] call(
      String url,
      byte[] payload,
      BranchInfo info,
      Map<String, String> headers,
      Duration timeout) {
    Target target = Target.parse(url);
    ManagedChannel channel =
        channels.computeIfAbsent(
            target.hostPort(), t -> ManagedChannelBuilder.forTarget(t).usePlaintext().build());
    MethodDescriptor<byte[], byte[]> method =
        MethodDescriptor.<byte[], byte[]>newBuilder()
            .setType(MethodDescriptor.MethodType.UNARY)
            .setFullMethodName(target.method())
            .setRequestMarshaller(RawMarshaller.INSTANCE)
            .setResponseMarshaller(RawMarshaller.INSTANCE)
            .build();
    Metadata metadata = new Metadata();
    put(metadata, BranchInfo.GID, info.gid());
    put(metadata, BranchInfo.TRANS_TYPE, info.transType());
    put(metadata, BranchInfo.BRANCH_ID, info.branchId());
    put(metadata, BranchInfo.OP, info.op());
    put(metadata, BranchInfo.DTM, info.dtm());
    headers.forEach((k, v) -> put(metadata, k, v));
    CallOptions options =
        CallOptions.DEFAULT.withDeadlineAfter(timeout.toMillis(), TimeUnit.MILLISECONDS);
    Channel withMetadata =
        ClientInterceptors.intercept(channel, MetadataUtils.newAttachHeadersInterceptor(metadata));
    return ClientCalls.blockingUnaryCall(withMetadata, method, options, payload);
  }

  private static void put(Metadata metadata, String key, String value) {
    metadata.put(Metadata.Key.of(key, Metadata.ASCII_STRING_MARSHALLER), value);
  }

  @Override
  public void close() {
    channels.values().forEach(ManagedChannel::shutdownNow);
    channels.clear();
  }
}
