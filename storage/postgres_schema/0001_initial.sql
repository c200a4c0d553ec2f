-- dtmd's tables (PostgresStore). Applied once, in one transaction, by the
-- first dtmd that opens the database; dtmd_schema_version records it.

-- The database's clock in milliseconds: every lease time is on it, never on
-- a replica's clock.
CREATE OR REPLACE FUNCTION dtmd_now_ms() RETURNS bigint
  LANGUAGE sql VOLATILE
  AS $$ SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint $$;

-- One row per transaction. `record` is the TransRecord protobuf; the other
-- columns copy what the queries select on. finish_time_ms is the finish
-- time (finish_time_ms, else update_time_ms) of a final record, 0 before.
-- owner/epoch/lease_until_ms: the lease (owner NULL when free).
CREATE TABLE dtmd_trans (
  gid text COLLATE "C" PRIMARY KEY,
  status text NOT NULL,
  trans_type text NOT NULL,
  next_cron_time_ms bigint NOT NULL,
  create_time_ms bigint NOT NULL,
  finish_time_ms bigint NOT NULL DEFAULT 0,
  owner text,
  epoch bigint NOT NULL DEFAULT 0,
  lease_until_ms bigint NOT NULL DEFAULT 0,
  record bytea NOT NULL
);

-- The due claim (ScanDue): unfinished transactions by next_cron_time.
CREATE INDEX dtmd_trans_due ON dtmd_trans (next_cron_time_ms)
  WHERE status NOT IN ('succeed', 'failed');
-- ListTransactions: newest first.
CREATE INDEX dtmd_trans_created ON dtmd_trans (create_time_ms DESC, gid DESC);
-- Retention (ScanFinished).
CREATE INDEX dtmd_trans_finished ON dtmd_trans (finish_time_ms, gid)
  WHERE status IN ('succeed', 'failed');

-- One row per branch, at its position (dense from 0). branch_id, op, url,
-- bin_data and create_time_ms never change after the insert; the rest is
-- the branch's mutable state.
CREATE TABLE dtmd_branch (
  gid text COLLATE "C" NOT NULL,
  position integer NOT NULL,
  branch_id text NOT NULL,
  op text NOT NULL,
  url text NOT NULL,
  bin_data bytea NOT NULL,
  create_time_ms bigint NOT NULL,
  status text NOT NULL,
  finish_time_ms bigint NOT NULL,
  last_error text NOT NULL,
  last_code integer NOT NULL,
  call_count bigint NOT NULL,
  PRIMARY KEY (gid, position)
);

-- One row per subscriber of a topic; seq keeps the subscription order.
CREATE TABLE dtmd_topic (
  topic text COLLATE "C" NOT NULL,
  url text NOT NULL,
  remark text NOT NULL,
  seq bigserial NOT NULL,
  PRIMARY KEY (topic, url)
);
