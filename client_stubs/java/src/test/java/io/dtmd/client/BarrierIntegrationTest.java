package io.dtmd.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.Server;
import io.grpc.ServerBuilder;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.Statement;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The barrier keeping a saga exactly-once against PostgreSQL (JDBC URL in the system property
 * dtmd.pg.url) while every branch call is delivered twice and its first answer is lost, so dtmd
 * calls it yet again; and reordered calls (compensation before action) made directly.
 */
class BarrierIntegrationTest {
  private static String url;
  private static TestDtmd dtmd;
  private static Server bank;
  /** (gid, method) pairs whose first answer was "lost" (UNAVAILABLE after the work committed). */
  private static final Set<String> answered = ConcurrentHashMap.newKeySet();
  private static final Map<String, AtomicInteger> deliveries = new ConcurrentHashMap<>();

  @BeforeAll
  static void start() throws Exception {
    url = System.getProperty("dtmd.pg.url", "");
    Assumptions.assumeTrue(!url.isEmpty(), "set -Ddtmd.pg.url to run the barrier tests");
    dtmd = TestDtmd.get();
    try (Connection c = DriverManager.getConnection(url)) {
      BranchBarrier.createTable(c);
      try (Statement s = c.createStatement()) {
        s.execute("create table if not exists java_account(id int primary key, balance int)");
      }
    }
    bank =
        ServerBuilder.forPort(0)
            .addService(
                RawService.named("bank.Bank")
                    .method("TransOut", p -> handle("TransOut", 1, -amount(p), p))
                    .method("TransOutRevert", p -> handle("TransOutRevert", 1, amount(p), p))
                    .method("TransIn", p -> handle("TransIn", 2, amount(p), p))
                    .method("TransInRevert", p -> handle("TransInRevert", 2, -amount(p), p))
                    .build())
            .build()
            .start();
  }

  @AfterAll
  static void stop() throws InterruptedException {
    if (bank != null) {
      bank.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }
  }

  @BeforeEach
  void resetAccounts() throws Exception {
    try (Connection c = DriverManager.getConnection(url);
        Statement s = c.createStatement()) {
      s.execute("delete from java_account");
      s.execute("insert into java_account values (1, 100), (2, 0)");
    }
  }

  private static int amount(byte[] payload) {
    return Integer.parseInt(new String(payload).split(":")[0]);
  }

  /**
   * Applies {@code delta} to account {@code id} behind the barrier, twice (a duplicate delivery),
   * and loses the first answer of each (gid, method) so that dtmd calls again. A payload
   * "N:refuse" makes TransIn refuse (ABORTED) after its update, which the barrier rolls back.
   */
  private static byte[] handle(String method, int id, int delta, byte[] payload) throws Exception {
    BranchInfo info = BranchInfo.current();
    deliveries.computeIfAbsent(info.gid() + "/" + method, k -> new AtomicInteger()).incrementAndGet();
    boolean refuse = method.equals("TransIn") && new String(payload).endsWith(":refuse");
    for (int delivery = 0; delivery < 2; delivery++) {
      try (Connection c = DriverManager.getConnection(url)) {
        BranchBarrier.from(info)
            .call(
                c,
                conn -> {
                  try (PreparedStatement update =
                      conn.prepareStatement(
                          "update java_account set balance = balance + ? where id = ?")) {
                    update.setInt(1, delta);
                    update.setInt(2, id);
                    update.executeUpdate();
                  }
                  if (refuse) {
                    throw Status.ABORTED.withDescription("account frozen").asRuntimeException();
                  }
                });
      }
    }
    if (answered.add(info.gid() + "/" + method)) {
      throw Status.UNAVAILABLE.withDescription("answer lost").asRuntimeException();
    }
    return new byte[0];
  }

  private static int balance(int id) throws Exception {
    try (Connection c = DriverManager.getConnection(url);
        PreparedStatement q = c.prepareStatement("select balance from java_account where id = ?")) {
      q.setInt(1, id);
      try (ResultSet r = q.executeQuery()) {
        r.next();
        return r.getInt(1);
      }
    }
  }

  private String bankUrl(String method) {
    return "127.0.0.1:" + bank.getPort() + "/bank.Bank/" + method;
  }

  @Test
  void sagaMovesMoneyExactlyOnceDespiteRepeatedCalls() throws Exception {
    String gid = dtmd.client.newGid();
    dtmd.client
        .saga(gid)
        .add(bankUrl("TransOut"), bankUrl("TransOutRevert"), "30".getBytes())
        .add(bankUrl("TransIn"), bankUrl("TransInRevert"), "30".getBytes())
        .submit();
    dtmd.awaitStatus(gid, "succeed");
    assertEquals(70, balance(1));
    assertEquals(30, balance(2));
    assertTrue(deliveries.get(gid + "/TransOut").get() >= 2, "dtmd called TransOut again");
  }

  @Test
  void failedSagaRestoresBalancesWithNullCompensation() throws Exception {
    String gid = dtmd.client.newGid();
    dtmd.client
        .saga(gid)
        .add(bankUrl("TransOut"), bankUrl("TransOutRevert"), "30".getBytes())
        .add(bankUrl("TransIn"), bankUrl("TransInRevert"), "30:refuse".getBytes())
        .submit();
    dtmd.awaitStatus(gid, "failed");
    // TransIn's update was rolled back, so TransInRevert must not run its work (null
    // compensation); TransOutRevert gives the money back once.
    assertEquals(100, balance(1));
    assertEquals(0, balance(2));
    assertTrue(deliveries.get(gid + "/TransInRevert").get() >= 1);
  }

  @Test
  void actionArrivingAfterItsCompensationDoesNothing() throws Exception {
    String gid = "java-hanging-" + System.nanoTime();
    AtomicInteger work = new AtomicInteger();
    try (Connection c = DriverManager.getConnection(url)) {
      // The compensation arrives first: null compensation, its work is skipped.
      assertFalse(
          BranchBarrier.of("saga", gid, "01", "compensate").call(c, conn -> work.incrementAndGet()));
      // The action arrives late: hanging prevention, skipped too.
      assertFalse(
          BranchBarrier.of("saga", gid, "01", "action").call(c, conn -> work.incrementAndGet()));
      // A repeated compensation is still a no-op.
      assertFalse(
          BranchBarrier.of("saga", gid, "01", "compensate").call(c, conn -> work.incrementAndGet()));
      assertTrue(c.getAutoCommit(), "auto-commit restored");
    }
    assertEquals(0, work.get());
  }

  @Test
  void tccTryThenCancelRunsBothOnceAndRepeatsAreNoOps() throws Exception {
    String gid = "java-tcc-" + System.nanoTime();
    AtomicInteger tries = new AtomicInteger();
    AtomicInteger cancels = new AtomicInteger();
    try (Connection c = DriverManager.getConnection(url)) {
      assertTrue(BranchBarrier.of("tcc", gid, "01", "try").call(c, conn -> tries.incrementAndGet()));
      assertFalse(BranchBarrier.of("tcc", gid, "01", "try").call(c, conn -> tries.incrementAndGet()));
      assertTrue(
          BranchBarrier.of("tcc", gid, "01", "cancel").call(c, conn -> cancels.incrementAndGet()));
      assertFalse(
          BranchBarrier.of("tcc", gid, "01", "cancel").call(c, conn -> cancels.incrementAndGet()));
    }
    assertEquals(1, tries.get());
    assertEquals(1, cancels.get());
  }

  @Test
  void queryPreparedTellsCommittedFromRolledBack() throws Exception {
    String committed = "java-msg-ok-" + System.nanoTime();
    String lost = "java-msg-lost-" + System.nanoTime();
    try (Connection c = DriverManager.getConnection(url)) {
      assertTrue(BranchBarrier.of("msg", committed, "00", "msg").call(c, conn -> {}));
      StatusRuntimeException dup =
          assertThrows(
              StatusRuntimeException.class,
              () -> BranchBarrier.of("msg", committed, "00", "msg").call(c, conn -> {}));
      assertEquals(Status.Code.ALREADY_EXISTS, dup.getStatus().getCode());
      BranchBarrier.of("msg", committed, "00", "msg").queryPrepared(c);

      StatusRuntimeException rolledBack =
          assertThrows(
              StatusRuntimeException.class,
              () -> BranchBarrier.of("msg", lost, "00", "msg").queryPrepared(c));
      assertEquals(Status.Code.ABORTED, rolledBack.getStatus().getCode());
      // The local transaction arriving late cannot commit any more.
      assertThrows(
          StatusRuntimeException.class,
          () -> BranchBarrier.of("msg", lost, "00", "msg").call(c, conn -> {}));
    }
  }

  @Test
  void barrierRowsUseDtmsLayout() throws Exception {
    String gid = "java-layout-" + System.nanoTime();
    try (Connection c = DriverManager.getConnection(url)) {
      BranchBarrier.of("saga", gid, "01", "compensate").call(c, conn -> {});
      try (PreparedStatement q =
          c.prepareStatement(
              "select trans_type, branch_id, op, barrier_id, reason from dtm_barrier.barrier"
                  + " where gid = ? order by id")) {
        q.setString(1, gid);
        try (ResultSet r = q.executeQuery()) {
          assertTrue(r.next());
          assertEquals("saga|01|action|01|compensate", row(r));
          assertTrue(r.next());
          assertEquals("saga|01|compensate|01|compensate", row(r));
          assertFalse(r.next());
        }
      }
    }
  }

  private static String row(ResultSet r) throws Exception {
    return String.join(
        "|", r.getString(1), r.getString(2), r.getString(3), r.getString(4), r.getString(5));
  }
}
