package barrier

// Schema returns the statements that create DTM's barrier table (schema or
// database dtm_barrier, table barrier, unique (gid, branch_id, op,
// barrier_id)) if it does not exist, as DTM's sqls/dtmcli.barrier.*.sql
// lay it out, without dropping an existing one.
func Schema(dialect Dialect) []string {
	if dialect == MySQL {
		return []string{
			"create database if not exists dtm_barrier default character set utf8mb4",
			`create table if not exists dtm_barrier.barrier(
  id bigint(22) primary key auto_increment,
  trans_type varchar(45) default '',
  gid varchar(128) default '',
  branch_id varchar(128) default '',
  op varchar(45) default '',
  barrier_id varchar(45) default '',
  reason varchar(45) default '' comment 'the branch type who insert this record',
  create_time datetime default now(),
  update_time datetime default now(),
  key(create_time),
  key(update_time),
  unique key(gid, branch_id, op, barrier_id)
) engine = InnoDB default charset = utf8mb4`,
		}
	}
	return []string{
		"create schema if not exists dtm_barrier",
		"create sequence if not exists dtm_barrier.barrier_seq",
		`create table if not exists dtm_barrier.barrier(
  id bigint not null default nextval('dtm_barrier.barrier_seq'),
  trans_type varchar(45) default '',
  gid varchar(128) default '',
  branch_id varchar(128) default '',
  op varchar(45) default '',
  barrier_id varchar(45) default '',
  reason varchar(45) default '',
  create_time timestamp(0) with time zone default null,
  update_time timestamp(0) with time zone default null,
  primary key(id),
  constraint uniq_barrier unique(gid, branch_id, op, barrier_id)
)`,
	}
}
