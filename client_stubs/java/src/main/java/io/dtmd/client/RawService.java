package io.dtmd.client;

import io.grpc.MethodDescriptor;
import io.grpc.ServerInterceptors;
import io.grpc.ServerServiceDefinition;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.ServerCalls;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * A branch service without a .proto: unary methods that take and return the raw payload bytes,
 * as the coordinator sends them. The built service is wrapped with {@link BranchInterceptor}, so
 * handlers may call {@link BranchInfo#current()}.
 *
 * <pre>{@code
 * Server server = ServerBuilder.forPort(0)
 *     .addService(RawService.named("busi.Busi")
 *         .method("TransOut", payload -> { ...; return new byte[0]; })
 *         .method("TransOutRevert", payload -> { ...; return new byte[0]; })
 *         .build())
 *     .build().start();
 * }</pre>
 *
 * <p>A handler answers with its return value (OK) or by throwing: a {@link
 * StatusRuntimeException} is the call's status (ABORTED = the business refused, FAILED_PRECONDITION
 * = not done yet, ask again); any other exception becomes INTERNAL, which the coordinator retries.
 */
public final class RawService {
  /** One method's handler. */
  @FunctionalInterface
  public interface Handler {
    byte[] handle(byte[] payload) throws Exception;
  }

  private final String serviceName;
  private final Map<String, Handler> methods = new LinkedHashMap<>();

  private RawService(String serviceName) {
    this.serviceName = serviceName;
  }

  /** Starts a service named {@code serviceName}, e.g. "busi.Busi". */
  public static RawService named(String serviceName) {
    return new RawService(serviceName);
  }

  public RawService method(String name, Handler handler) {
    methods.put(name, handler);
    return this;
  }

  public ServerServiceDefinition build() {
    ServerServiceDefinition.Builder service = ServerServiceDefinition.builder(serviceName);
    methods.forEach(
        (name, handler) -> {
          MethodDescriptor<byte[], byte[]> method =
              MethodDescriptor.<byte[], byte[]>newBuilder()
                  .setType(MethodDescriptor.MethodType.UNARY)
                  .setFullMethodName(MethodDescriptor.generateFullMethodName(serviceName, name))
                  .setRequestMarshaller(RawMarshaller.INSTANCE)
                  .setResponseMarshaller(RawMarshaller.INSTANCE)
                  .build();
          service.addMethod(
              method,
              ServerCalls.asyncUnaryCall(
                  (request, observer) -> {
                    byte[] reply;
                    try {
                      reply = handler.handle(request);
                    } catch (StatusRuntimeException e) {
                      observer.onError(e);
                      return;
                    } catch (Exception e) {
                      observer.onError(
                          Status.INTERNAL.withDescription(String.valueOf(e)).asRuntimeException());
                      return;
                    }
                    observer.onNext(reply == null ? new byte[0] : reply);
                    observer.onCompleted();
                  }));
        });
    return ServerInterceptors.intercept(service.build(), new BranchInterceptor());
  }
}
