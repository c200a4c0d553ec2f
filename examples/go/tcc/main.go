// The order flow as TCC through dtmd: try to reserve stock and charge the
// payment; when both tries succeed dtmd confirms them, when the payment's
// try refuses dtmd cancels the stock reservation.
//
//	go run ./tcc -dtm localhost:36790
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
	listen := flag.String("listen", "127.0.0.1:0", "where the stock and payment services listen")
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

	ok := run(client, s, busi, &shop.Order{User: "alice", Sku: "widget", Quantity: 2, AmountCents: 30_00}, true)
	ok = run(client, s, busi, &shop.Order{User: "bob", Sku: "widget", Quantity: 3, AmountCents: 50_00}, false) && ok
	if !ok {
		log.Fatal("tcc example: an order did not end as expected")
	}
	fmt.Println("tcc example: done")
}

func run(client *dtmclient.Client, s *shop.Shop, busi string, order *shop.Order, wantSuccess bool) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	gid, err := client.NewGid(ctx)
	if err != nil {
		log.Fatalf("NewGid: %v", err)
	}
	order.OrderId = gid
	fmt.Printf("order %s: %s buys %d %s for %s\n", gid, order.User, order.Quantity, order.Sku, shop.Money(order.AmountCents))
	err = client.TccGlobalTransaction(ctx, gid, &dtmclient.TransOptions{WaitResult: true}, func(tcc *dtmclient.Tcc) error {
		if err := tcc.CallBranch(ctx, order, busi+"/shop.Stock/TryReserve", busi+"/shop.Stock/ConfirmReserve",
			busi+"/shop.Stock/CancelReserve", nil); err != nil {
			return err
		}
		return tcc.CallBranch(ctx, order, busi+"/shop.Payment/TryCharge", busi+"/shop.Payment/ConfirmCharge",
			busi+"/shop.Payment/CancelCharge", nil)
	})
	if err == nil {
		fmt.Printf("order %s: tcc confirmed\n", gid)
	} else {
		fmt.Printf("order %s: tcc cancelled: %v\n", gid, err)
	}
	want := func(n shop.Snapshot) bool {
		if wantSuccess {
			return n.Held == order.Quantity && n.Charged == order.AmountCents
		}
		return n.Held == 0 && n.Charged == 0
	}
	deadline := time.Now().Add(20 * time.Second)
	for !want(s.Of(order)) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	final := s.Of(order)
	fmt.Printf("order %s: stock left %d (held %d), %s's balance %s (charged %s)\n", gid, final.Stock, final.Held,
		order.User, shop.Money(final.Balance), shop.Money(final.Charged))
	return want(final) && (err == nil) == wantSuccess
}
