package io.dtmd.examples;

import io.dtmd.client.BranchInfo;
import io.dtmd.client.RawService;
import io.grpc.ServerServiceDefinition;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/** Orders: CreateOrder (saga action) and CancelOrder (its compensation). */
final class OrderService {
  private final Map<String, String> orders = new ConcurrentHashMap<>();
  private final Once once = new Once();

  ServerServiceDefinition service() {
    return RawService.named("order.Order")
        .method(
            "CreateOrder",
            payload -> {
              OrderRequest r = OrderRequest.decode(payload);
              once.run(BranchInfo.current(), () -> orders.put(r.orderId(), "created"));
              System.out.printf("  order:   order %s created%n", r.orderId());
              return new byte[0];
            })
        .method(
            "CancelOrder",
            payload -> {
              OrderRequest r = OrderRequest.decode(payload);
              once.run(BranchInfo.current(), () -> orders.put(r.orderId(), "cancelled"));
              System.out.printf("  order:   order %s cancelled%n", r.orderId());
              return new byte[0];
            })
        .build();
  }

  String status(String orderId) {
    return orders.getOrDefault(orderId, "none");
  }
}
