package io.dtmd.examples;

import io.dtmd.client.BranchInfo;
import io.dtmd.client.RawService;
import io.grpc.ServerServiceDefinition;
import io.grpc.Status;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Payments: Charge (saga action; refuses, with ABORTED, any amount above the card's limit) and
 * Refund (compensation; a no-op for a charge that never happened).
 */
final class PaymentService {
  private final long limit;
  private final AtomicLong charged = new AtomicLong();
  private final Once once = new Once();

  PaymentService(long limit) {
    this.limit = limit;
  }

  ServerServiceDefinition service() {
    return RawService.named("payment.Payment")
        .method(
            "Charge",
            payload -> {
              OrderRequest r = OrderRequest.decode(payload);
              if (r.amount() > limit) {
                System.out.printf("  payment: refused %d for order %s (limit %d)%n", r.amount(), r.orderId(), limit);
                throw Status.ABORTED.withDescription("payment refused").asRuntimeException();
              }
              once.run(BranchInfo.current(), () -> charged.addAndGet(r.amount()));
              System.out.printf("  payment: charged %d for order %s%n", r.amount(), r.orderId());
              return new byte[0];
            })
        .method(
            "Refund",
            payload -> {
              OrderRequest r = OrderRequest.decode(payload);
              boolean refunded = once.run(BranchInfo.current(), () -> charged.addAndGet(-r.amount()));
              System.out.printf(
                  refunded ? "  payment: refunded %d for order %s%n" : "  payment: nothing to refund for order %2$s%n",
                  r.amount(), r.orderId());
              return new byte[0];
            })
        .build();
  }

  long charged() {
    return charged.get();
  }
}
