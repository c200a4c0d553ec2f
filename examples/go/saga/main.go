// The order flow as a saga through dtmd: create order -> reserve stock ->
// charge payment. The first order goes through; the second one's payment is
// refused, so dtmd compensates: it releases the stock and cancels the order.
//
//	go run ./saga -dtm localhost:36790
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"time"

	"github.com/dtmd/dtmd/client_stubs/go/dtmclient"
	"github.com/dtmd/dtmd/examples/go/shop"
)

func main() {
	dtm := flag.String("dtm", "localhost:36790", "dtmd's gRPC address")
	listen := flag.String("listen", "127.0.0.1:0", "where the order, stock and payment services listen")
	flag.Parse()

	s := shop.New(map[string]int32{"widget": 10}, map[string]int64{"alice": 100_00, "bob": 10_00})
	busi, stop, err := s.Serve(*listen)
	if err != nil {
		log.Fatal(err)
	}
	defer stop()
	client, err := dtmclient.Dial(*dtm)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	ok := placeOrder(client, s, busi, &shop.Order{User: "alice", Sku: "widget", Quantity: 2, AmountCents: 30_00}, true)
	ok = placeOrder(client, s, busi, &shop.Order{User: "bob", Sku: "widget", Quantity: 3, AmountCents: 50_00}, false) && ok
	if !ok {
		log.Fatal("saga example: an order did not end as expected")
	}
	fmt.Println("saga example: done")
}

// placeOrder runs one order's saga and reports; returns whether it ended as
// expected (wantSuccess) with the shop in the matching state.
func placeOrder(client *dtmclient.Client, s *shop.Shop, busi string, order *shop.Order, wantSuccess bool) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	gid, err := client.NewGid(ctx)
	if err != nil {
		log.Fatalf("NewGid: %v", err)
	}
	order.OrderId = gid
	saga := client.NewSaga(gid).
		Add(busi+"/shop.Orders/Create", busi+"/shop.Orders/Cancel", order).
		Add(busi+"/shop.Stock/Reserve", busi+"/shop.Stock/Release", order).
		Add(busi+"/shop.Payment/Charge", busi+"/shop.Payment/Refund", order)
	saga.WaitResult = true
	fmt.Printf("order %s: %s buys %d %s for %s\n", gid, order.User, order.Quantity, order.Sku, shop.Money(order.AmountCents))
	err = saga.Submit(ctx)
	switch {
	case err == nil:
		fmt.Printf("order %s: saga succeeded\n", gid)
	case dtmclient.IsFailure(err):
		fmt.Printf("order %s: saga failed: %v\n", gid, err)
	default:
		fmt.Printf("order %s: saga not ended yet (%v); waiting\n", gid, err)
	}
	// Compensations may still be running when Submit returns: wait for the
	// end state.
	want := func(n shop.Snapshot) bool {
		if wantSuccess {
			return n.OrderStatus == "created" && n.Held == order.Quantity && n.Charged == order.AmountCents
		}
		return n.OrderStatus == "cancelled" && n.Held == 0 && n.Charged == 0
	}
	deadline := time.Now().Add(20 * time.Second)
	for !want(s.Of(order)) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	final := s.Of(order)
	fmt.Printf("order %s: %v\n", gid, final)
	return want(final) && (err == nil) == wantSuccess
}
