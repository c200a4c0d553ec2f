package shop

import (
	"context"
	"fmt"
	"net"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/dtmd/dtmd/client_stubs/go/dtmclient"
)

// Shop is the three services of the order flow (and the notifier of the msg
// example) in memory, in one process. Every method is idempotent per order,
// because the coordinator may call a branch more than once; a service on a
// database would use the barrier package instead.
type Shop struct {
	UnimplementedOrdersServer
	mu       sync.Mutex
	orders   map[string]string // order id -> "created" | "cancelled"
	stock    map[string]int32  // sku -> units available
	reserved map[string]int32  // order id -> units held (reserved or tried)
	balances map[string]int64  // user -> cents
	charged  map[string]int64  // order id -> cents held (charged or tried)
	notified []string          // order ids, in order of arrival
}

// New makes a shop with stock and balances.
func New(stock map[string]int32, balances map[string]int64) *Shop {
	return &Shop{
		orders: map[string]string{}, stock: stock, reserved: map[string]int32{},
		balances: balances, charged: map[string]int64{},
	}
}

// Serve registers every service on a new gRPC server listening on addr
// ("127.0.0.1:0" lets the OS pick) and returns the address it listens on.
func (s *Shop) Serve(addr string) (string, func(), error) {
	listener, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, err
	}
	server := grpc.NewServer()
	RegisterOrdersServer(server, s)
	RegisterStockServer(server, stockService{s})
	RegisterPaymentServer(server, paymentService{s})
	RegisterNotifyServer(server, notifyService{s})
	go server.Serve(listener) //nolint:errcheck
	return listener.Addr().String(), server.Stop, nil
}

var ok = &emptypb.Empty{}

func (s *Shop) Create(_ context.Context, o *Order) (*emptypb.Empty, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.orders[o.OrderId] == "" {
		s.orders[o.OrderId] = "created"
	}
	return ok, nil
}

func (s *Shop) Cancel(_ context.Context, o *Order) (*emptypb.Empty, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.orders[o.OrderId] = "cancelled"
	return ok, nil
}

// CreateLocally is the msg example's local transaction: the order is written
// by the caller itself, not by the coordinator.
func (s *Shop) CreateLocally(orderID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.orders[orderID] = "created"
}

// QueryPrepared answers the msg check from the order records: committed
// when the order exists, refused when it does not.
func (s *Shop) QueryPrepared(ctx context.Context, _ *emptypb.Empty) (*emptypb.Empty, error) {
	info, err := dtmclient.BranchInfoFromContext(ctx)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.orders[info.Gid] == "" {
		return nil, dtmclient.Failure("no order for " + info.Gid)
	}
	return ok, nil
}

func (s *Shop) reserve(o *Order) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, done := s.reserved[o.OrderId]; done {
		return nil
	}
	if s.stock[o.Sku] < o.Quantity {
		return dtmclient.Failure(fmt.Sprintf("only %d %s left", s.stock[o.Sku], o.Sku))
	}
	s.stock[o.Sku] -= o.Quantity
	s.reserved[o.OrderId] = o.Quantity
	return nil
}

func (s *Shop) release(o *Order) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n, held := s.reserved[o.OrderId]; held && n > 0 {
		s.stock[o.Sku] += n
	}
	s.reserved[o.OrderId] = 0 // also blocks a late reservation
}

func (s *Shop) charge(o *Order) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, done := s.charged[o.OrderId]; done {
		return nil
	}
	if s.balances[o.User] < o.AmountCents {
		return dtmclient.Failure(fmt.Sprintf("payment refused: %s has %s, the order costs %s",
			o.User, Money(s.balances[o.User]), Money(o.AmountCents)))
	}
	s.balances[o.User] -= o.AmountCents
	s.charged[o.OrderId] = o.AmountCents
	return nil
}

func (s *Shop) refund(o *Order) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n, held := s.charged[o.OrderId]; held && n > 0 {
		s.balances[o.User] += n
	}
	s.charged[o.OrderId] = 0
}

type stockService struct{ *Shop }

func (s stockService) Reserve(_ context.Context, o *Order) (*emptypb.Empty, error) {
	return ok, s.reserve(o)
}
func (s stockService) Release(_ context.Context, o *Order) (*emptypb.Empty, error) {
	s.release(o)
	return ok, nil
}
func (s stockService) TryReserve(_ context.Context, o *Order) (*emptypb.Empty, error) {
	return ok, s.reserve(o)
}
func (s stockService) ConfirmReserve(context.Context, *Order) (*emptypb.Empty, error) {
	return ok, nil // the units stay taken
}
func (s stockService) CancelReserve(_ context.Context, o *Order) (*emptypb.Empty, error) {
	s.release(o)
	return ok, nil
}
func (stockService) mustEmbedUnimplementedStockServer() {}

type paymentService struct{ *Shop }

func (s paymentService) Charge(_ context.Context, o *Order) (*emptypb.Empty, error) {
	return ok, s.charge(o)
}
func (s paymentService) Refund(_ context.Context, o *Order) (*emptypb.Empty, error) {
	s.refund(o)
	return ok, nil
}
func (s paymentService) TryCharge(_ context.Context, o *Order) (*emptypb.Empty, error) {
	return ok, s.charge(o)
}
func (s paymentService) ConfirmCharge(context.Context, *Order) (*emptypb.Empty, error) {
	return ok, nil
}
func (s paymentService) CancelCharge(_ context.Context, o *Order) (*emptypb.Empty, error) {
	s.refund(o)
	return ok, nil
}
func (paymentService) mustEmbedUnimplementedPaymentServer() {}

type notifyService struct{ *Shop }

func (s notifyService) OrderPlaced(_ context.Context, o *Order) (*emptypb.Empty, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range s.notified {
		if id == o.OrderId {
			return ok, nil
		}
	}
	s.notified = append(s.notified, o.OrderId)
	return ok, nil
}
func (notifyService) mustEmbedUnimplementedNotifyServer() {}

// Snapshot is what the shop holds for one order.
type Snapshot struct {
	OrderStatus string // "", "created" or "cancelled"
	Stock       int32  // units of the order's sku available
	Held        int32  // units held for the order
	Balance     int64  // the user's cents
	Charged     int64  // cents taken for the order
	Notified    bool
}

// Of returns the shop's state for order o.
func (s *Shop) Of(o *Order) Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap := Snapshot{
		OrderStatus: s.orders[o.OrderId], Stock: s.stock[o.Sku], Held: s.reserved[o.OrderId],
		Balance: s.balances[o.User], Charged: s.charged[o.OrderId],
	}
	for _, id := range s.notified {
		snap.Notified = snap.Notified || id == o.OrderId
	}
	return snap
}

func (n Snapshot) String() string {
	status := n.OrderStatus
	if status == "" {
		status = "none"
	}
	return fmt.Sprintf("order %s, stock left %d (held %d), balance %s (charged %s)",
		status, n.Stock, n.Held, Money(n.Balance), Money(n.Charged))
}

// Money formats cents.
func Money(cents int64) string { return fmt.Sprintf("%d.%02d", cents/100, cents%100) }
