package io.dtmd.client;

import io.grpc.Server;
import io.grpc.ServerBuilder;
import io.grpc.Status;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;

/**
 * A branch service "busi.Busi" on a loopback port the OS picks. Every method records its calls
 * (method, BranchInfo, payload) and answers OK unless a status was scripted for it.
 */
final class BusiServer implements AutoCloseable {
  record Call(String method, BranchInfo info, String payload) {}

  static final String[] METHODS = {
    "TransOut", "TransOutRevert", "TransIn", "TransInRevert", "TryA", "ConfirmA", "CancelA",
    "TryB", "ConfirmB", "CancelB", "Action", "Subscriber", "QueryPrepared"
  };

  private final Server server;
  private final List<Call> calls = new ArrayList<>();
  private final Map<String, Status> scripted = new ConcurrentHashMap<>();

  BusiServer() throws IOException {
    RawService service = RawService.named("busi.Busi");
    for (String method : METHODS) {
      service.method(
          method,
          payload -> {
            synchronized (calls) {
              calls.add(new Call(method, BranchInfo.current(), new String(payload)));
            }
            Status status = scripted.get(method);
            if (status != null) {
              throw status.asRuntimeException();
            }
            return ("reply-" + method).getBytes();
          });
    }
    server = ServerBuilder.forPort(0).addService(service.build()).build().start();
  }

  /** "127.0.0.1:port/busi.Busi/" + method. */
  String url(String method) {
    return "127.0.0.1:" + server.getPort() + "/busi.Busi/" + method;
  }

  void answer(String method, Status status) {
    scripted.put(method, status);
  }

  /** The calls for {@code gid} in arrival order, as "Method/op". */
  List<String> calls(String gid) {
    List<String> out = new ArrayList<>();
    synchronized (calls) {
      for (Call c : calls) {
        if (c.info().gid().equals(gid)) {
          out.add(c.method() + "/" + c.info().op());
        }
      }
    }
    return out;
  }

  List<Call> rawCalls(String gid) {
    List<Call> out = new ArrayList<>();
    synchronized (calls) {
      for (Call c : calls) {
        if (c.info().gid().equals(gid)) {
          out.add(c);
        }
      }
    }
    return out;
  }

  @Override
  public void close() throws InterruptedException {
    server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
  }
}
