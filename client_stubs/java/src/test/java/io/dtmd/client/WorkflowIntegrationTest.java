package io.dtmd.client;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.Empty;
import io.dtmd.admin.v1.Branch;
import io.dtmd.workflow.WorkflowData;
import io.dtmd.workflow.WorkflowGrpc;
import io.grpc.Server;
import io.grpc.ServerBuilder;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.StreamObserver;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * WorkflowClient and WorkflowService against a real dtmd: the service runs on a loopback port
 * the OS picks and is the resume URL of every workflow here.
 */
class WorkflowIntegrationTest {
  private TestDtmd dtmd;
  private DtmClient dtm;
  private Server server;
  private WorkflowClient workflows;
  private WorkflowService service;

  private final AtomicInteger handlerRuns = new AtomicInteger();
  private final AtomicInteger reserveRuns = new AtomicInteger();
  private final AtomicInteger chargeRuns = new AtomicInteger();
  /** What charge does on its next runs: null = succeed, else throw it (once). */
  private volatile RuntimeException chargeThrows;

  /** The order workflow: reserve (echoes the input), then charge. */
  private final WorkflowHandler order =
      (wf, input) -> {
        handlerRuns.incrementAndGet();
        byte[] reserved =
            wf.step(
                () -> {
                  reserveRuns.incrementAndGet();
                  return ("reserved " + new String(input, StandardCharsets.UTF_8)).getBytes();
                });
        byte[] charged =
            wf.step(
                () -> {
                  chargeRuns.incrementAndGet();
                  RuntimeException e = chargeThrows;
                  if (e != null) {
                    if (!WorkflowClient.isFailure(e)) {
                      chargeThrows = null; // an unknown error happens once
                    }
                    throw e;
                  }
                  return "charged".getBytes();
                });
        return (new String(reserved) + ", " + new String(charged)).getBytes();
      };

  @BeforeEach
  void setUp() throws Exception {
    dtmd = TestDtmd.get();
    dtm = dtmd.client;
    // The resume URL needs the port, the service needs the client: bind a forwarder first.
    WorkflowService[] holder = new WorkflowService[1];
    WorkflowGrpc.AsyncService forward =
        new WorkflowGrpc.AsyncService() {
          @Override
          public void execute(WorkflowData request, StreamObserver<Empty> responseObserver) {
            holder[0].execute(request, responseObserver);
          }
        };
    server =
        ServerBuilder.forPort(0)
            .addService(
                io.grpc.ServerInterceptors.intercept(
                    WorkflowGrpc.bindService(forward), new BranchInterceptor()))
            .build()
            .start();
    workflows =
        new WorkflowClient(
            dtm, "127.0.0.1:" + server.getPort() + "/workflow.Workflow/Execute");
    service = new WorkflowService(workflows).register("order", order);
    holder[0] = service;
  }

  @AfterEach
  void tearDown() throws Exception {
    server.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
  }

  private List<String> branches(String gid) {
    return dtmd.transaction(gid).getBranchesList().stream()
        .map(b -> b.getBranchId() + "/" + b.getOp() + "/" + b.getStatus())
        .toList();
  }

  @Test
  void succeedsRecordingEachStep() throws Exception {
    String gid = dtm.newGid();
    byte[] result = workflows.execute("order", gid, "book".getBytes(), order);
    assertEquals("reserved book, charged", new String(result));
    assertEquals("succeed", dtmd.transaction(gid).getTransaction().getStatus());
    assertEquals(1, reserveRuns.get());
    assertEquals(1, chargeRuns.get());
    List<String> recorded = branches(gid);
    assertTrue(recorded.contains("01/action/succeed"), recorded.toString());
    assertTrue(recorded.contains("02/action/succeed"), recorded.toString());
  }

  @Test
  void failsWhenAStepFails() throws Exception {
    chargeThrows = WorkflowClient.failure("card refused");
    String gid = dtm.newGid();
    StatusRuntimeException e =
        assertThrows(
            StatusRuntimeException.class,
            () -> workflows.execute("order", gid, "book".getBytes(), order));
    assertEquals(Status.Code.ABORTED, e.getStatus().getCode());
    assertEquals("card refused", e.getStatus().getDescription());
    assertEquals("failed", dtmd.transaction(gid).getTransaction().getStatus());
    assertEquals("card refused", dtmd.transaction(gid).getTransaction().getRollbackReason());
    assertTrue(branches(gid).contains("02/action/failed"), branches(gid).toString());

    // Ended: running it again answers the failure without running anything.
    StatusRuntimeException again =
        assertThrows(
            StatusRuntimeException.class,
            () -> workflows.execute("order", gid, "book".getBytes(), order));
    assertEquals(Status.Code.ABORTED, again.getStatus().getCode());
    assertEquals("card refused", again.getStatus().getDescription());
    assertEquals(1, handlerRuns.get());
    assertEquals(1, chargeRuns.get());
  }

  @Test
  void failsWhenTheHandlerFails() throws Exception {
    String gid = dtm.newGid();
    StatusRuntimeException e =
        assertThrows(
            StatusRuntimeException.class,
            () ->
                workflows.execute(
                    "check",
                    gid,
                    new byte[0],
                    (wf, input) -> {
                      wf.step(() -> "looked".getBytes());
                      throw WorkflowClient.failure("out of stock");
                    }));
    assertEquals(Status.Code.ABORTED, e.getStatus().getCode());
    assertEquals("failed", dtmd.transaction(gid).getTransaction().getStatus());
    assertEquals("out of stock", dtmd.transaction(gid).getTransaction().getRollbackReason());
  }

  @Test
  void alreadyFinishedReturnsTheStoredResult() throws Exception {
    String gid = dtm.newGid();
    byte[] first = workflows.execute("order", gid, "pen".getBytes(), order);
    byte[] second = workflows.execute("order", gid, "pen".getBytes(), order);
    assertArrayEquals(first, second);
    assertEquals("reserved pen, charged", new String(second));
    assertEquals(1, handlerRuns.get());
    assertEquals(1, reserveRuns.get());
  }

  @Test
  void unfinishedAfterAnUnknownErrorIsResumedByDtmd() throws Exception {
    chargeThrows = Status.UNAVAILABLE.withDescription("bank down").asRuntimeException();
    String gid = dtm.newGid();
    StatusRuntimeException e =
        assertThrows(
            StatusRuntimeException.class,
            () -> workflows.execute("order", gid, "lamp".getBytes(), order));
    assertEquals(Status.Code.UNAVAILABLE, e.getStatus().getCode());
    assertEquals(1, reserveRuns.get());
    assertEquals(1, chargeRuns.get());

    // dtmd calls the resume URL (the WorkflowService) until the workflow ends.
    dtmd.awaitStatus(gid, "succeed");
    assertEquals(2, handlerRuns.get());
    assertEquals(1, reserveRuns.get(), "the recorded step is replayed, not run again");
    assertEquals(2, chargeRuns.get());

    byte[] stored = workflows.execute("order", gid, "lamp".getBytes(), order);
    assertEquals("reserved lamp, charged", new String(stored));
    assertEquals(2, handlerRuns.get());
  }

  @Test
  void aStepThatThrowsSomethingElseIsNotRecorded() throws Exception {
    String gid = dtm.newGid();
    IllegalStateException e =
        assertThrows(
            IllegalStateException.class,
            () ->
                workflows.execute(
                    "other",
                    gid,
                    new byte[0],
                    (wf, input) ->
                        wf.step(
                            () -> {
                              throw new IllegalStateException("disk full");
                            })));
    assertEquals("disk full", e.getMessage());
    assertEquals("prepared", dtmd.transaction(gid).getTransaction().getStatus());
    for (Branch b : dtmd.transaction(gid).getBranchesList()) {
      assertTrue(!b.getBranchId().equals("01"), "step 01 was recorded: " + b);
    }
    // Run again (as the resume would): the unrecorded step runs again, and the workflow ends.
    byte[] result =
        workflows.execute("other", gid, new byte[0], (wf, input) -> wf.step(() -> "ok".getBytes()));
    assertEquals("ok", new String(result));
    assertEquals("succeed", dtmd.transaction(gid).getTransaction().getStatus());
  }
}
