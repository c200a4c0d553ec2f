package io.dtmd.client;

import io.grpc.Status;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;

/**
 * The sub-transaction barrier over JDBC (PostgreSQL): runs a branch's local work at most once
 * per (gid, branch id, op), whatever order and however often the coordinator's calls arrive.
 *
 * <ul>
 *   <li>Idempotency: a repeated call finds its own barrier row and does nothing.
 *   <li>Null compensation: a compensate/cancel/rollback whose action/try never ran inserts the
 *       action's row first and does nothing.
 *   <li>Hanging prevention: an action/try arriving after its compensation finds the row that
 *       compensation inserted and does nothing.
 * </ul>
 *
 * Rows go to DTM's table {@code dtm_barrier.barrier} (see {@link #createTable}), so services
 * moving from DTM keep their table. In a handler:
 *
 * <pre>{@code
 * BranchBarrier.from(BranchInfo.current()).call(connection, conn -> {
 *   // the business's SQL on conn; throw to roll back (ABORTED: the business refused)
 * });
 * }</pre>
 *
 * <p>One barrier per branch call; not thread-safe. Several call()s on one barrier get barrier ids
 * "01", "02", ... as DTM's do.
 */
public final class BranchBarrier {
  public static final String DEFAULT_TABLE = "dtm_barrier.barrier";

  /** The local work, run in the barrier's database transaction. */
  @FunctionalInterface
  public interface Work {
    void run(Connection connection) throws Exception;
  }

  private final String transType;
  private final String gid;
  private final String branchId;
  private final String op;
  private String table = DEFAULT_TABLE;
  private int barrierId;

  private BranchBarrier(String transType, String gid, String branchId, String op) {
    this.transType = transType;
    this.gid = gid;
    this.branchId = branchId;
    this.op = op;
  }

  /** INVALID_ARGUMENT when a field is empty (a call that did not come from a coordinator). */
  public static BranchBarrier of(String transType, String gid, String branchId, String op) {
    if (transType.isEmpty() || gid.isEmpty() || branchId.isEmpty() || op.isEmpty()) {
      throw Status.INVALID_ARGUMENT
          .withDescription(
              String.format(
                  "barrier: incomplete branch info trans_type=%s gid=%s branch_id=%s op=%s",
                  transType, gid, branchId, op))
          .asRuntimeException();
    }
    return new BranchBarrier(transType, gid, branchId, op);
  }

  public static BranchBarrier from(BranchInfo info) {
    return of(info.transType(), info.gid(), info.branchId(), info.op());
  }

  /** Uses another table of the same layout (schema.table; its unique constraint uniq_barrier). */
  public BranchBarrier table(String table) {
    this.table = table;
    return this;
  }

  /**
   * Runs {@code work} on {@code connection} in one database transaction with the barrier rows,
   * unless the barrier says this call is a repeat, a null compensation or a hanging action;
   * commits, or rolls back and rethrows when work throws. Returns whether work ran. For the op
   * "msg" (DoAndSubmit's local transaction) a repeat throws ALREADY_EXISTS instead. The
   * connection's auto-commit setting is restored afterwards.
   */
  public boolean call(Connection connection, Work work) throws Exception {
    String bid = String.format("%02d", ++barrierId);
    String originOp =
        switch (op) {
          case "cancel" -> "try";
          case "compensate", "rollback" -> "action";
          default -> "";
        };
    boolean autoCommit = connection.getAutoCommit();
    connection.setAutoCommit(false);
    try {
      int originInserted = originOp.isEmpty() ? 0 : insert(connection, branchId, originOp, bid, op);
      int currentInserted = insert(connection, branchId, op, bid, op);
      boolean ran = false;
      if (op.equals("msg") && currentInserted == 0) {
        throw Status.ALREADY_EXISTS
            .withDescription("barrier: duplicated msg " + gid)
            .asRuntimeException();
      }
      boolean nullCompensation = !originOp.isEmpty() && originInserted > 0;
      if (!nullCompensation && currentInserted > 0) {
        work.run(connection);
        ran = true;
      }
      connection.commit();
      return ran;
    } catch (Exception e) {
      try {
        connection.rollback();
      } catch (SQLException rollbackError) {
        e.addSuppressed(rollbackError);
      }
      throw e;
    } finally {
      connection.setAutoCommit(autoCommit);
    }
  }

  /**
   * The answer of a msg's QueryPrepared handler: returns when DoAndSubmit's local transaction
   * committed; throws ABORTED when it did not (and makes sure it never will, by inserting the
   * row it would insert, with reason "rollback"). Uses auto-commit statements on {@code
   * connection}.
   */
  public void queryPrepared(Connection connection) throws SQLException {
    boolean autoCommit = connection.getAutoCommit();
    connection.setAutoCommit(true);
    try {
      insert(connection, "00", "msg", "01", "rollback");
      try (PreparedStatement select =
          connection.prepareStatement(
              "select reason from "
                  + table
                  + " where gid=? and branch_id=? and op=? and barrier_id=?")) {
        select.setString(1, gid);
        select.setString(2, "00");
        select.setString(3, "msg");
        select.setString(4, "01");
        try (ResultSet rows = select.executeQuery()) {
          if (rows.next() && "rollback".equals(rows.getString(1))) {
            throw Status.ABORTED.withDescription("FAILURE").asRuntimeException();
          }
        }
      }
    } finally {
      connection.setAutoCommit(autoCommit);
    }
  }

  private int insert(Connection connection, String branch, String rowOp, String bid, String reason)
      throws SQLException {
    try (PreparedStatement insert =
        connection.prepareStatement(
            "insert into "
                + table
                + "(trans_type, gid, branch_id, op, barrier_id, reason) values(?,?,?,?,?,?)"
                + " on conflict on constraint uniq_barrier do nothing")) {
      insert.setString(1, transType);
      insert.setString(2, gid);
      insert.setString(3, branch);
      insert.setString(4, rowOp);
      insert.setString(5, bid);
      insert.setString(6, reason);
      return insert.executeUpdate();
    }
  }

  /**
   * Creates DTM's barrier schema, sequence and table in PostgreSQL when they are missing (the
   * layout of DTM's sqls/dtmcli.barrier.postgres.sql, without its drop).
   */
  public static void createTable(Connection connection) throws SQLException {
    try (Statement ddl = connection.createStatement()) {
      ddl.execute("create schema if not exists dtm_barrier");
      ddl.execute("create sequence if not exists dtm_barrier.barrier_seq");
      ddl.execute(
          "create table if not exists dtm_barrier.barrier("
              + " id bigint not null default nextval('dtm_barrier.barrier_seq'),"
              + " trans_type varchar(45) default '',"
              + " gid varchar(128) default '',"
              + " branch_id varchar(128) default '',"
              + " op varchar(45) default '',"
              + " barrier_id varchar(45) default '',"
              + " reason varchar(45) default '',"
              + " create_time timestamp(0) with time zone default null,"
              + " update_time timestamp(0) with time zone default null,"
              + " primary key(id),"
              + " constraint uniq_barrier unique(gid, branch_id, op, barrier_id))");
    }
  }
}
