// Package barrier is the sub-transaction barrier: it makes a branch handler
// that works on a SQL database safe against the coordinator's repeated and
// reordered calls, with DTM's rules and DTM's table, so services moving from
// DTM keep their dtm_barrier.barrier table:
//
//   - idempotency: a repeated call of the same op does nothing;
//   - null compensation: a compensate/cancel/rollback whose action/try never
//     ran does nothing (and succeeds);
//   - hanging prevention: an action/try arriving after its compensation does
//     nothing.
//
// Each Call inserts the barrier rows and runs the business function in one
// local transaction, so either both commit or neither does.
//
//	func (s *stock) Reserve(ctx context.Context, o *shop.Order) (*emptypb.Empty, error) {
//		b, err := barrier.FromContext(ctx, barrier.Postgres)
//		if err != nil {
//			return nil, err
//		}
//		return &emptypb.Empty{}, b.Call(ctx, s.db, func(tx *sql.Tx) error {
//			_, err := tx.ExecContext(ctx, "update stock set ...")
//			return err
//		})
//	}
package barrier

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/dtmd/dtmd/client_stubs/go/dtmclient"
)

// Dialect is the SQL flavour of the database holding the barrier table.
type Dialect int

const (
	// Postgres: placeholders $n, "on conflict ... do nothing".
	Postgres Dialect = iota
	// MySQL (and MariaDB): placeholders ?, "insert ignore".
	MySQL
)

// DefaultTable is DTM's barrier table.
const DefaultTable = "dtm_barrier.barrier"

// ErrDuplicated is QueryPrepared-side news for msg: DoAndSubmit's local
// transaction already ran for this gid.
var ErrDuplicated = errors.New("barrier: duplicated request")

// Barrier is the barrier of one branch call. Not safe for concurrent use; a
// handler that needs several local transactions calls Call once for each
// (barrier ids "01", "02", ... as in DTM).
type Barrier struct {
	TransType string
	Gid       string
	BranchID  string
	Op        string
	Dialect   Dialect
	// Table is DefaultTable unless set.
	Table string

	lastID int
}

// New makes the barrier of a branch call described by info.
func New(info dtmclient.BranchInfo, dialect Dialect) (*Barrier, error) {
	if info.TransType == "" || info.Gid == "" || info.BranchID == "" || info.Op == "" {
		return nil, fmt.Errorf("barrier: incomplete branch info %+v", info)
	}
	return &Barrier{
		TransType: info.TransType, Gid: info.Gid, BranchID: info.BranchID, Op: info.Op,
		Dialect: dialect, Table: DefaultTable,
	}, nil
}

// FromContext makes the barrier of the branch call being handled, from its
// dtm-* metadata.
func FromContext(ctx context.Context, dialect Dialect) (*Barrier, error) {
	info, err := dtmclient.BranchInfoFromContext(ctx)
	if err != nil {
		return nil, err
	}
	return New(info, dialect)
}

// originOp is the op a second-phase op undoes.
func originOp(op string) string {
	switch op {
	case dtmclient.OpCancel:
		return dtmclient.OpTry
	case dtmclient.OpCompensate, dtmclient.OpRollback:
		return dtmclient.OpAction
	}
	return ""
}

// Call runs busi in a new local transaction of db, guarded by the barrier,
// and commits it when busi returns nil (else rolls back and returns busi's
// error).
func (b *Barrier) Call(ctx context.Context, db *sql.DB, busi func(tx *sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	return b.CallInTx(ctx, tx, busi)
}

// CallInTx is Call within tx, which it commits or rolls back.
//
// It inserts, ignoring duplicates, a row for the origin op (for a
// compensation) and one for this op, both with reason = this op. Then:
// this op's row existed already -> a repeat or an action after its
// compensation: busi is skipped, nil returned; a compensation whose origin
// row it inserted itself -> the action never ran: busi is skipped, nil
// returned; otherwise busi runs.
func (b *Barrier) CallInTx(ctx context.Context, tx *sql.Tx, busi func(tx *sql.Tx) error) (err error) {
	defer func() {
		if err != nil {
			tx.Rollback() //nolint:errcheck // err is the answer
		} else {
			err = tx.Commit()
		}
	}()
	b.lastID++
	barrierID := fmt.Sprintf("%02d", b.lastID)
	origin := originOp(b.Op)
	var originInserted int64
	if origin != "" {
		if originInserted, err = b.insert(ctx, tx, b.BranchID, origin, barrierID, b.Op); err != nil {
			return err
		}
	}
	currentInserted, err := b.insert(ctx, tx, b.BranchID, b.Op, barrierID, b.Op)
	if err != nil {
		return err
	}
	if b.Op == dtmclient.OpMsg && currentInserted == 0 {
		return ErrDuplicated // msg's local transaction must not run twice
	}
	if currentInserted == 0 || (origin != "" && originInserted > 0) {
		return nil
	}
	return busi(tx)
}

// QueryPrepared answers msg's QueryPrepared check for the barrier's gid
// against the rows a DoAndSubmitDB left: nil when the local transaction
// committed, a dtmclient.Failure when it never will (this check inserts a
// "rollback" row that makes a late local transaction skip), another error
// when the database failed.
func (b *Barrier) QueryPrepared(ctx context.Context, db *sql.DB) error {
	if _, err := b.insert(ctx, db, dtmclient.QueryPreparedBranchID, dtmclient.OpMsg, "01",
		dtmclient.OpRollback); err != nil {
		return err
	}
	var reason string
	query := b.placeholders(fmt.Sprintf(
		"select reason from %s where gid=? and branch_id=? and op=? and barrier_id=?", b.table()))
	err := db.QueryRowContext(ctx, query, b.Gid, dtmclient.QueryPreparedBranchID, dtmclient.OpMsg, "01").Scan(&reason)
	if err != nil {
		return err
	}
	if reason == dtmclient.OpRollback {
		return dtmclient.Failure("the local transaction of msg " + b.Gid + " did not commit")
	}
	return nil
}

// DoAndSubmitDB runs msg.DoAndSubmit with busi inside a barrier-guarded
// local transaction of db (branch "00", op "msg"), so that queryPreparedURL's
// handler can answer with QueryPrepared.
func DoAndSubmitDB(ctx context.Context, msg *dtmclient.Msg, queryPreparedURL string, db *sql.DB,
	dialect Dialect, busi func(tx *sql.Tx) error) error {
	b, err := New(dtmclient.BranchInfo{
		Gid: msg.Gid, TransType: dtmclient.TransMsg, BranchID: dtmclient.QueryPreparedBranchID, Op: dtmclient.OpMsg,
	}, dialect)
	if err != nil {
		return err
	}
	return msg.DoAndSubmit(ctx, queryPreparedURL, func() error {
		err := b.Call(ctx, db, busi)
		if errors.Is(err, ErrDuplicated) {
			return dtmclient.Failure(err.Error())
		}
		return err
	})
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// insert adds a barrier row unless it exists; returns the rows inserted.
func (b *Barrier) insert(ctx context.Context, db execer, branchID, op, barrierID, reason string) (int64, error) {
	columns := "(trans_type, gid, branch_id, op, barrier_id, reason, create_time, update_time)"
	var query string
	switch b.Dialect {
	case MySQL:
		query = "insert ignore into " + b.table() + columns + " values(?,?,?,?,?,?,now(),now())"
	default:
		query = "insert into " + b.table() + columns + " values(?,?,?,?,?,?,now(),now())" +
			" on conflict (gid, branch_id, op, barrier_id) do nothing"
	}
	result, err := db.ExecContext(ctx, b.placeholders(query), b.TransType, b.Gid, branchID, op, barrierID, reason)
	if err != nil {
		return 0, err
	}
	return result.RowsAffected()
}

func (b *Barrier) table() string {
	if b.Table == "" {
		return DefaultTable
	}
	return b.Table
}

// placeholders turns ? into $1, $2, ... for PostgreSQL.
func (b *Barrier) placeholders(query string) string {
	if b.Dialect != Postgres {
		return query
	}
	out := make([]byte, 0, len(query)+8)
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			out = append(out, fmt.Sprintf("$%d", n)...)
			continue
		}
		out = append(out, query[i])
	}
	return string(out)
}
