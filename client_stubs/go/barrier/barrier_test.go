package barrier_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	_ "github.com/lib/pq"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/dtmd/dtmd/client_stubs/go/barrier"
	"github.com/dtmd/dtmd/client_stubs/go/dtmclient"
	"github.com/dtmd/dtmd/client_stubs/go/dtmdtest"
)

// openPostgres connects to $DTMD_TEST_POSTGRES_DSN (make test-go starts a
// server with scripts/postgres.sh) and creates the barrier table and an
// accounts table with a fresh schema per test.
func openPostgres(t *testing.T) (*sql.DB, string) {
	dsn := os.Getenv("DTMD_TEST_POSTGRES_DSN")
	if dsn == "" {
		t.Skip("DTMD_TEST_POSTGRES_DSN is not set (make test-go starts a PostgreSQL)")
	}
	db, err := sql.Open("postgres", dsn+"?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	for _, stmt := range barrier.Schema(barrier.Postgres) {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	table := fmt.Sprintf("accounts_%d", time.Now().UnixNano())
	if _, err := db.Exec("create table " + table + " (name text primary key, balance bigint not null)"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("insert into " + table + " values ('alice', 100), ('bob', 100)"); err != nil {
		t.Fatal(err)
	}
	return db, table
}

func balance(t *testing.T, db *sql.DB, table, name string) int64 {
	var b int64
	if err := db.QueryRow("select balance from "+table+" where name = $1", name).Scan(&b); err != nil {
		t.Fatal(err)
	}
	return b
}

func add(table, name string, delta int64) func(tx *sql.Tx) error {
	return func(tx *sql.Tx) error {
		_, err := tx.Exec("update "+table+" set balance = balance + $1 where name = $2", delta, name)
		return err
	}
}

func info(gid, transType, branchID, op string) dtmclient.BranchInfo {
	return dtmclient.BranchInfo{Gid: gid, TransType: transType, BranchID: branchID, Op: op}
}

func call(t *testing.T, db *sql.DB, i dtmclient.BranchInfo, busi func(*sql.Tx) error) {
	t.Helper()
	b, err := barrier.New(i, barrier.Postgres)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Call(context.Background(), db, busi); err != nil {
		t.Fatalf("%+v: %v", i, err)
	}
}

func TestBarrierRunsARepeatedActionOnce(t *testing.T) {
	db, table := openPostgres(t)
	gid := "repeat-" + table
	for i := 0; i < 3; i++ {
		call(t, db, info(gid, "saga", "01", "action"), add(table, "alice", -30))
	}
	if got := balance(t, db, table, "alice"); got != 70 {
		t.Fatalf("alice %d, want 70", got)
	}
	for i := 0; i < 2; i++ {
		call(t, db, info(gid, "saga", "01", "compensate"), add(table, "alice", 30))
	}
	if got := balance(t, db, table, "alice"); got != 100 {
		t.Fatalf("alice %d after compensation, want 100", got)
	}
}

func TestBarrierSkipsNullCompensationAndTheHangingActionAfterIt(t *testing.T) {
	db, table := openPostgres(t)
	gid := "null-" + table
	call(t, db, info(gid, "tcc", "01", "cancel"), add(table, "alice", 30)) // Try never ran
	call(t, db, info(gid, "tcc", "01", "try"), add(table, "alice", -30))   // arrives late
	if got := balance(t, db, table, "alice"); got != 100 {
		t.Fatalf("alice %d, want 100", got)
	}
}

func TestBarrierRollsBackTheBarrierWithAFailingBusiness(t *testing.T) {
	db, table := openPostgres(t)
	gid := "fail-" + table
	b, _ := barrier.New(info(gid, "saga", "01", "action"), barrier.Postgres)
	err := b.Call(context.Background(), db, func(tx *sql.Tx) error {
		add(table, "alice", -30)(tx) //nolint:errcheck
		return dtmclient.Failure("refused")
	})
	if !dtmclient.IsFailure(err) {
		t.Fatalf("Call: %v, want the business's failure", err)
	}
	// Nothing was kept, so a retry runs the business again.
	call(t, db, info(gid, "saga", "01", "action"), add(table, "alice", -10))
	if got := balance(t, db, table, "alice"); got != 90 {
		t.Fatalf("alice %d, want 90", got)
	}
}

func TestQueryPreparedTellsCommittedFromNeverCommitted(t *testing.T) {
	db, table := openPostgres(t)
	ctx := context.Background()
	committed := "qp-ok-" + table
	call(t, db, info(committed, "msg", "00", "msg"), add(table, "bob", 5))
	b, _ := barrier.New(info(committed, "msg", "00", "msg"), barrier.Postgres)
	if err := b.QueryPrepared(ctx, db); err != nil {
		t.Fatalf("QueryPrepared of a committed msg: %v", err)
	}
	lost := "qp-lost-" + table
	b, _ = barrier.New(info(lost, "msg", "00", "msg"), barrier.Postgres)
	if err := b.QueryPrepared(ctx, db); !dtmclient.IsFailure(err) {
		t.Fatalf("QueryPrepared of a msg that never committed: %v, want a failure", err)
	}
	// The local transaction arriving after the check must not run.
	late, _ := barrier.New(info(lost, "msg", "00", "msg"), barrier.Postgres)
	if err := late.Call(ctx, db, add(table, "bob", 1000)); err != barrier.ErrDuplicated {
		t.Fatalf("late local transaction: %v, want ErrDuplicated", err)
	}
	if got := balance(t, db, table, "bob"); got != 105 {
		t.Fatalf("bob %d, want 105", got)
	}
}

// bank is a branch server "test.Bank" whose handlers move money under the
// barrier. Scripted faults: the first call of a method in lostAnswer commits
// and then answers UNAVAILABLE (the coordinator calls it again); a method in
// dropped answers ABORTED without touching the database, as if the request
// had been delayed in the network (the test replays it later).
type bank struct {
	db         *sql.DB
	table      string
	mu         sync.Mutex
	lostAnswer map[string]bool
	dropped    map[string]bool
	calls      map[string]int
}

func (b *bank) serve(t *testing.T) string {
	desc := &grpc.ServiceDesc{ServiceName: "test.Bank", HandlerType: (*any)(nil)}
	moves := map[string]struct {
		name string
		sign int64
	}{
		"Withdraw": {"alice", -1}, "WithdrawRevert": {"alice", 1},
		"Deposit": {"bob", 1}, "DepositRevert": {"bob", -1},
	}
	for method, move := range moves {
		method, move := method, move
		desc.Methods = append(desc.Methods, grpc.MethodDesc{
			MethodName: method,
			Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
				var amount wrapperspb.StringValue
				if err := dec(&amount); err != nil {
					return nil, err
				}
				n, _ := strconv.ParseInt(amount.GetValue(), 10, 64)
				b.mu.Lock()
				b.calls[method]++
				first := b.calls[method] == 1
				lose, drop := b.lostAnswer[method] && first, b.dropped[method] && first
				b.mu.Unlock()
				if drop {
					return nil, dtmclient.Failure("the request is still in the network")
				}
				br, err := barrier.FromContext(ctx, barrier.Postgres)
				if err != nil {
					return nil, status.Error(codes.InvalidArgument, err.Error())
				}
				if err := br.Call(ctx, b.db, add(b.table, move.name, move.sign*n)); err != nil {
					return nil, err
				}
				if lose {
					return nil, status.Error(codes.Unavailable, "the answer was lost")
				}
				return &emptypb.Empty{}, nil
			},
		})
	}
	server := grpc.NewServer()
	server.RegisterService(desc, struct{}{})
	return dtmdtest.Serve(t, server)
}

func (b *bank) count(method string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.calls[method]
}

func transferSaga(client *dtmclient.Client, gid, url string) *dtmclient.Saga {
	saga := client.NewSaga(gid).
		Add(url+"/test.Bank/Withdraw", url+"/test.Bank/WithdrawRevert", wrapperspb.String("30")).
		Add(url+"/test.Bank/Deposit", url+"/test.Bank/DepositRevert", wrapperspb.String("30"))
	saga.WaitResult = true
	return saga
}

func TestBarrierKeepsASagaExactlyOnceUnderRepeatedCalls(t *testing.T) {
	db, table := openPostgres(t)
	client, err := dtmclient.Dial(dtmdtest.StartDtmd(t))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	b := &bank{db: db, table: table, calls: map[string]int{},
		lostAnswer: map[string]bool{"Withdraw": true, "Deposit": true}}
	url := b.serve(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	gid, _ := client.NewGid(ctx)
	err = transferSaga(client, gid, url).Submit(ctx)
	if err != nil && !dtmclient.IsOngoing(err) {
		t.Fatalf("Submit: %v", err)
	}
	// Each action's first answer is lost: the coordinator calls it again.
	dtmdtest.Eventually(t, 20*time.Second, "the repeated actions", func() bool {
		return b.count("Withdraw") >= 2 && b.count("Deposit") >= 2
	})
	if a, bb := balance(t, db, table, "alice"), balance(t, db, table, "bob"); a != 70 || bb != 130 {
		t.Fatalf("alice %d, bob %d; want 70, 130", a, bb)
	}
}

func TestBarrierKeepsASagaExactlyOnceUnderReorderedCalls(t *testing.T) {
	db, table := openPostgres(t)
	client, err := dtmclient.Dial(dtmdtest.StartDtmd(t))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	b := &bank{db: db, table: table, calls: map[string]int{},
		lostAnswer: map[string]bool{"WithdrawRevert": true},
		dropped:    map[string]bool{"Deposit": true}}
	url := b.serve(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	gid, _ := client.NewGid(ctx)
	if err := transferSaga(client, gid, url).Submit(ctx); err != nil && !dtmclient.IsFailure(err) &&
		!dtmclient.IsOngoing(err) {
		t.Fatalf("Submit: %v", err)
	}
	// Deposit "failed" before touching the database, so DepositRevert is a
	// null compensation; WithdrawRevert's answer is lost once and repeated.
	dtmdtest.Eventually(t, 20*time.Second, "the rollback", func() bool {
		return b.count("WithdrawRevert") >= 2
	})
	// The delayed Deposit finally arrives, after its compensation: it must
	// not move money (hanging prevention).
	conn, err := grpc.NewClient(url, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	late := metadata.AppendToOutgoingContext(ctx, "dtm-gid", gid, "dtm-trans_type", "saga",
		"dtm-branch_id", "02", "dtm-op", "action")
	if err := conn.Invoke(late, "/test.Bank/Deposit", wrapperspb.String("30"), &emptypb.Empty{}); err != nil {
		t.Fatalf("late Deposit: %v", err)
	}
	if a, bb := balance(t, db, table, "alice"), balance(t, db, table, "bob"); a != 100 || bb != 100 {
		t.Fatalf("alice %d, bob %d; want 100, 100", a, bb)
	}
	if b.count("DepositRevert") < 1 {
		t.Fatalf("calls %v: DepositRevert should have been called", b.calls)
	}
}
