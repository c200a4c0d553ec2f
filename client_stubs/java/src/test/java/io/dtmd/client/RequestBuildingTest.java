package io.dtmd.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.dtmd.dtmgimp.DtmRequest;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

/** What the helpers send, checked without a coordinator. */
class RequestBuildingTest {
  private static final DtmClient dtm = new DtmClient("127.0.0.1:1");

  @AfterAll
  static void close() {
    dtm.close();
  }

  private static byte[] bytes(String s) {
    return s.getBytes(StandardCharsets.UTF_8);
  }

  @Test
  void sagaStepsAndPayloadsInOrder() {
    DtmRequest request =
        dtm.saga("g1")
            .add("h:1/b.B/Out", "h:1/b.B/OutRevert", bytes("p0"))
            .add("h:1/b.B/In", "", bytes("p1"))
            .waitResult(true)
            .retryLimit(3)
            .branchHeader("x-user", "u")
            .buildRequest();
    assertEquals("g1", request.getGid());
    assertEquals("saga", request.getTransType());
    assertEquals(
        "[{\"action\":\"h:1/b.B/Out\",\"compensate\":\"h:1/b.B/OutRevert\"},"
            + "{\"action\":\"h:1/b.B/In\",\"compensate\":\"\"}]",
        request.getSteps());
    assertEquals("p0", request.getBinPayloads(0).toStringUtf8());
    assertEquals("p1", request.getBinPayloads(1).toStringUtf8());
    assertEquals("", request.getCustomedData());
    assertEquals(true, request.getTransOptions().getWaitResult());
    assertEquals(3, request.getTransOptions().getRetryLimit());
    assertEquals("u", request.getTransOptions().getBranchHeadersMap().get("x-user"));
  }

  @Test
  void concurrentSagaCarriesOrders() {
    DtmRequest request =
        dtm.saga("g2")
            .add("a", "", new byte[0])
            .add("b", "", new byte[0])
            .add("c", "", new byte[0])
            .enableConcurrent()
            .addBranchOrder(2, 0, 1)
            .addBranchOrder(1, 0)
            .buildRequest();
    assertEquals("{\"orders\":{\"1\":[0],\"2\":[0,1]},\"concurrent\":true}", request.getCustomedData());
  }

  @Test
  void msgCarriesQueryPreparedTopicsAndDelay() {
    Msg msg = dtm.msg("g3").add("h:1/b.B/Add", bytes("x")).addTopic("paid", bytes("y")).delay(5);
    DtmRequest request = msg.buildRequest();
    assertEquals("msg", request.getTransType());
    assertEquals(
        "[{\"action\":\"h:1/b.B/Add\"},{\"action\":\"topic://paid\"}]", request.getSteps());
    assertEquals("{\"delay\":5}", request.getCustomedData());
    assertEquals(2, request.getBinPayloadsCount());
  }

  @Test
  void jsonQuotesEscapes() {
    assertEquals("\"a\\\"b\\\\c\\n\\u0001\"", Json.quote("a\"b\\c\n\u0001"));
  }

  @Test
  void branchUrlSplitsIntoTargetAndMethod() {
    BranchCaller.Target target = BranchCaller.Target.parse("localhost:8081/busi.Busi/TransIn");
    assertEquals("localhost:8081", target.hostPort());
    assertEquals("busi.Busi/TransIn", target.method());
    StatusRuntimeException e =
        assertThrows(StatusRuntimeException.class, () -> BranchCaller.Target.parse("http://x/y"));
    assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode());
  }

  @Test
  void barrierRejectsIncompleteBranchInfo() {
    StatusRuntimeException e =
        assertThrows(
            StatusRuntimeException.class,
            () -> BranchBarrier.from(new BranchInfo("g", "saga", "", "action", "")));
    assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode());
  }
}
