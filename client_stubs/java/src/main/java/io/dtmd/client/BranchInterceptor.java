package io.dtmd.client;

import io.grpc.Context;
import io.grpc.Contexts;
import io.grpc.Metadata;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;

/**
 * Puts the dtm-* metadata of each incoming call into the gRPC {@link Context} under {@link
 * BranchInfo#CONTEXT_KEY}, so that handlers read it with {@link BranchInfo#current()}. Wrap a
 * branch service with {@code ServerInterceptors.intercept(service, new BranchInterceptor())}.
 * Stateless and thread-safe.
 */
public final class BranchInterceptor implements ServerInterceptor {
  @Override
  public <ReqT, RespT> ServerCall.Listener<ReqT> interceptCall(
      ServerCall<ReqT, RespT> call, Metadata headers, ServerCallHandler<ReqT, RespT> next) {
    Context context =
        Context.current().withValue(BranchInfo.CONTEXT_KEY, BranchInfo.fromMetadata(headers));
    return Contexts.interceptCall(context, call, headers, next);
  }
}
