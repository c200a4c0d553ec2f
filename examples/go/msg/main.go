// A two-phase message through dtmd: the order is written by a local
// transaction, and dtmd then delivers "order placed" to the notifier,
// retrying until it is delivered. DoAndSubmit ties the two: the msg is
// prepared first, submitted when the local transaction commits, and dtmd
// asks Orders/QueryPrepared if the program dies in between.
//
//	go run ./msg -dtm localhost:36790
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
	listen := flag.String("listen", "127.0.0.1:0", "where the order and notify services listen")
	flag.Parse()

	s := shop.New(map[string]int32{}, map[string]int64{})
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

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	gid, err := client.NewGid(ctx)
	if err != nil {
		log.Fatalf("NewGid: %v", err)
	}
	order := &shop.Order{OrderId: gid, User: "carol", Sku: "widget", Quantity: 1, AmountCents: 5_00}
	msg := client.NewMsg(gid).Add(busi+"/shop.Notify/OrderPlaced", order)
	err = msg.DoAndSubmit(ctx, busi+"/shop.Orders/QueryPrepared", func() error {
		s.CreateLocally(gid) // the local transaction
		fmt.Printf("order %s: created by the local transaction\n", gid)
		return nil
	})
	if err != nil {
		log.Fatalf("msg %s: %v", gid, err)
	}
	fmt.Printf("order %s: msg submitted\n", gid)
	deadline := time.Now().Add(20 * time.Second)
	for !s.Of(order).Notified && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if !s.Of(order).Notified {
		log.Fatalf("order %s: the notification did not arrive", gid)
	}
	fmt.Printf("order %s: notification delivered\n", gid)
	fmt.Println("msg example: done")
}
