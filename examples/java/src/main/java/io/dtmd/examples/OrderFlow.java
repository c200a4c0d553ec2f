package io.dtmd.examples;

import io.dtmd.client.DtmClient;
import io.grpc.Server;
import io.grpc.ServerBuilder;
import io.grpc.StatusRuntimeException;
import java.io.IOException;
import java.util.concurrent.TimeUnit;

/**
 * The order flow: create order -> reserve stock -> charge payment, as one saga through dtmd.
 * Starts the three services on loopback ports the OS picks, then places two orders: one that
 * goes through, and one whose payment is refused, so that dtmd releases the stock and cancels
 * the order. Prints what happened and fails (exception, non-zero exit) if the outcome is not the
 * expected one.
 *
 * <p>Run against a dtmd on localhost:36790 with {@code mvn -q -f examples/java compile exec:java
 * -Ddtm=localhost:36790}.
 */
public final class OrderFlow {
  private OrderFlow() {}

  public static void main(String[] args) throws Exception {
    String dtmAddress = System.getProperty("dtm", "localhost:36790");
    OrderService orders = new OrderService();
    StockService stock = new StockService("book", 10);
    PaymentService payment = new PaymentService(100);
    Server orderServer = start(orders.service());
    Server stockServer = start(stock.service());
    Server paymentServer = start(payment.service());
    String orderUrl = "127.0.0.1:" + orderServer.getPort() + "/order.Order/";
    String stockUrl = "127.0.0.1:" + stockServer.getPort() + "/stock.Stock/";
    String paymentUrl = "127.0.0.1:" + paymentServer.getPort() + "/payment.Payment/";

    try (DtmClient dtm = new DtmClient(dtmAddress)) {
      String[] outcome = new String[2];
      long[] amounts = {60, 500};
      for (int i = 0; i < 2; i++) {
        String gid = dtm.newGid();
        OrderRequest request = new OrderRequest("order-" + gid, "book", 2, amounts[i]);
        System.out.printf("order %s: 2 x book for %d%n", request.orderId(), request.amount());
        byte[] payload = request.encode();
        try {
          dtm.saga(gid)
              .add(orderUrl + "CreateOrder", orderUrl + "CancelOrder", payload)
              .add(stockUrl + "Reserve", stockUrl + "Release", payload)
              .add(paymentUrl + "Charge", paymentUrl + "Refund", payload)
              .waitResult(true)
              .submit();
          outcome[i] = "succeeded";
        } catch (StatusRuntimeException e) {
          outcome[i] = "failed (" + e.getStatus().getCode() + ": " + e.getStatus().getDescription() + ")";
        }
        // A failed saga may still be compensating when Submit answers: wait for the order's end.
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (orders.status(request.orderId()).equals("created")
            && outcome[i].startsWith("failed")
            && System.nanoTime() < deadline) {
          Thread.sleep(50);
        }
        System.out.printf(
            "order %s: saga %s; order %s, stock left %d, charged in total %d%n%n",
            request.orderId(), outcome[i], orders.status(request.orderId()), stock.left("book"),
            payment.charged());
        if (i == 0 && !(outcome[i].equals("succeeded") && orders.status(request.orderId()).equals("created"))) {
          throw new IllegalStateException("the first order should have gone through");
        }
        if (i == 1 && !(outcome[i].startsWith("failed") && orders.status(request.orderId()).equals("cancelled"))) {
          throw new IllegalStateException("the refused order should have been cancelled");
        }
      }
      if (stock.left("book") != 8 || payment.charged() != 60) {
        throw new IllegalStateException("stock or payments are off");
      }
      System.out.println("order flow: OK (one order paid, one refused and rolled back)");
    } finally {
      for (Server s : new Server[] {orderServer, stockServer, paymentServer}) {
        s.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
      }
    }
  }

  private static Server start(io.grpc.ServerServiceDefinition service) throws IOException {
    return ServerBuilder.forPort(0).addService(service).build().start();
  }
}
