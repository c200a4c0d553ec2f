package io.dtmd.client;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** The helpers against a real dtmd calling real branch servers on loopback. */
class ModesIntegrationTest {
  private TestDtmd dtmd;
  private DtmClient dtm;
  private BusiServer busi;

  @BeforeEach
  void setUp() throws Exception {
    dtmd = TestDtmd.get();
    dtm = dtmd.client;
    busi = new BusiServer();
  }

  @AfterEach
  void tearDown() throws Exception {
    busi.close();
  }

  private static byte[] bytes(String s) {
    return s.getBytes();
  }

  @Test
  void sagaSucceedsCallingActionsInOrder() throws Exception {
    String gid = dtm.newGid();
    dtm.saga(gid)
        .add(busi.url("TransOut"), busi.url("TransOutRevert"), bytes("30"))
        .add(busi.url("TransIn"), busi.url("TransInRevert"), bytes("30"))
        .waitResult(true)
        .submit();
    assertEquals(List.of("TransOut/action", "TransIn/action"), busi.calls(gid));
    assertEquals("succeed", dtmd.transaction(gid).getTransaction().getStatus());
    BranchInfo first = busi.rawCalls(gid).get(0).info();
    assertEquals("saga", first.transType());
    assertEquals("01", first.branchId());
    assertEquals("30", busi.rawCalls(gid).get(1).payload());
  }

  @Test
  void sagaCompensatesInReverseOrderWhenAnActionFails() throws Exception {
    busi.answer("TransIn", Status.ABORTED.withDescription("no such account"));
    String gid = dtm.newGid();
    StatusRuntimeException e =
        assertThrows(
            StatusRuntimeException.class,
            () ->
                dtm.saga(gid)
                    .add(busi.url("TransOut"), busi.url("TransOutRevert"), bytes("30"))
                    .add(busi.url("TransIn"), busi.url("TransInRevert"), bytes("30"))
                    .waitResult(true)
                    .submit());
    assertEquals(Status.Code.ABORTED, e.getStatus().getCode());
    dtmd.awaitStatus(gid, "failed");
    assertEquals(
        List.of("TransOut/action", "TransIn/action", "TransInRevert/compensate",
            "TransOutRevert/compensate"),
        busi.calls(gid));
    assertTrue(dtmd.transaction(gid).getTransaction().getRollbackReason().contains("no such account"));
  }

  @Test
  void branchHeadersArriveAtTheBranch() throws Exception {
    String gid = dtm.newGid();
    dtm.saga(gid)
        .add(busi.url("TransOut"), "", bytes("1"))
        .branchHeader("x-request-user", "alice")
        .waitResult(true)
        .submit();
    BranchInfo info = busi.rawCalls(gid).get(0).info();
    assertEquals("alice", info.header("x-request-user"));
    assertEquals(gid, info.gid());
    assertEquals("action", info.op());
  }

  @Test
  void tccConfirmsEveryBranchInReverseOrder() throws Exception {
    String gid = dtm.newGid();
    TransOptions options = dtm.options();
    options.branchHeaders.put("x-tenant", "t1");
    dtm.tcc(
        gid,
        options,
        tcc -> {
          byte[] reply =
              tcc.callBranch(bytes("a"), busi.url("TryA"), busi.url("ConfirmA"), busi.url("CancelA"));
          assertArrayEquals(bytes("reply-TryA"), reply);
          tcc.callBranch(bytes("b"), busi.url("TryB"), busi.url("ConfirmB"), busi.url("CancelB"));
        });
    dtmd.awaitStatus(gid, "succeed");
    assertEquals(
        List.of("TryA/try", "TryB/try", "ConfirmB/confirm", "ConfirmA/confirm"), busi.calls(gid));
    BranchInfo tryB = busi.rawCalls(gid).get(1).info();
    assertEquals("tcc", tryB.transType());
    assertEquals("02", tryB.branchId());
    assertEquals(dtmd.address, tryB.dtm());
    assertEquals("t1", tryB.header("x-tenant"));
    assertEquals("b", busi.rawCalls(gid).get(2).payload());
  }

  @Test
  void tccCancelsEveryRegisteredBranchWhenATryFails() throws Exception {
    busi.answer("TryB", Status.ABORTED.withDescription("insufficient stock"));
    String gid = dtm.newGid();
    StatusRuntimeException e =
        assertThrows(
            StatusRuntimeException.class,
            () ->
                dtm.tcc(
                    gid,
                    tcc -> {
                      tcc.callBranch(
                          bytes("a"), busi.url("TryA"), busi.url("ConfirmA"), busi.url("CancelA"));
                      tcc.callBranch(
                          bytes("b"), busi.url("TryB"), busi.url("ConfirmB"), busi.url("CancelB"));
                    }));
    assertEquals(Status.Code.ABORTED, e.getStatus().getCode());
    dtmd.awaitStatus(gid, "failed");
    assertEquals(
        List.of("TryA/try", "TryB/try", "CancelB/cancel", "CancelA/cancel"), busi.calls(gid));
  }

  @Test
  void msgDeliversToActionsAndTopicSubscribers() throws Exception {
    String topic = "java-test-" + System.nanoTime();
    dtm.subscribe(topic, busi.url("Subscriber"), "test");
    StatusRuntimeException again =
        assertThrows(
            StatusRuntimeException.class, () -> dtm.subscribe(topic, busi.url("Subscriber"), ""));
    assertEquals(Status.Code.ALREADY_EXISTS, again.getStatus().getCode());

    String gid = dtm.newGid();
    dtm.msg(gid)
        .add(busi.url("Action"), bytes("points"))
        .addTopic(topic, bytes("event"))
        .doAndSubmit(busi.url("QueryPrepared"), () -> {});
    dtmd.awaitStatus(gid, "succeed");
    assertEquals(List.of("Action/action", "Subscriber/action"), busi.calls(gid));
    assertEquals("event", busi.rawCalls(gid).get(1).payload());

    dtm.unsubscribe(topic, busi.url("Subscriber"));
    StatusRuntimeException gone =
        assertThrows(StatusRuntimeException.class, () -> dtm.deleteTopic(topic));
    assertEquals(Status.Code.NOT_FOUND, gone.getStatus().getCode());
  }

  @Test
  void msgIsAbortedWhenTheLocalTransactionRefuses() throws Exception {
    String gid = dtm.newGid();
    Msg msg = dtm.msg(gid).add(busi.url("Action"), bytes("x"));
    StatusRuntimeException e =
        assertThrows(
            StatusRuntimeException.class,
            () ->
                msg.doAndSubmit(
                    busi.url("QueryPrepared"),
                    () -> {
                      throw Status.ABORTED.withDescription("out of stock").asRuntimeException();
                    }));
    assertEquals(Status.Code.ABORTED, e.getStatus().getCode());
    dtmd.awaitStatus(gid, "failed");
    assertEquals(List.of(), busi.calls(gid));
  }

  @Test
  void msgAsksQueryPreparedWhenTheLocalOutcomeIsUnknown() throws Exception {
    String gid = dtm.newGid();
    Msg msg = dtm.msg(gid).add(busi.url("Action"), bytes("x"));
    assertThrows(
        IllegalStateException.class,
        () ->
            msg.doAndSubmit(
                busi.url("QueryPrepared"),
                () -> {
                  throw new IllegalStateException("commit timed out");
                }));
    dtmd.awaitStatus(gid, "succeed");
    assertEquals(List.of("QueryPrepared/msg", "Action/action"), busi.calls(gid));
    assertEquals("00", busi.rawCalls(gid).get(0).info().branchId());
  }

  @Test
  void submitOfAnUnknownTccAbortIsNotFound() {
    StatusRuntimeException e =
        assertThrows(
            StatusRuntimeException.class,
            () ->
                dtm.stub()
                    .withDeadlineAfter(5, TimeUnit.SECONDS)
                    .abort(
                        io.dtmd.dtmgimp.DtmRequest.newBuilder()
                            .setGid("java-unknown-" + System.nanoTime())
                            .setTransType("tcc")
                            .build()));
    assertEquals(Status.Code.NOT_FOUND, e.getStatus().getCode());
  }
}
