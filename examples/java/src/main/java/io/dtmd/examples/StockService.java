package io.dtmd.examples;

import io.dtmd.client.BranchInfo;
import io.dtmd.client.RawService;
import io.grpc.ServerServiceDefinition;
import io.grpc.Status;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/** Stock: Reserve (saga action; ABORTED when not enough is left) and Release (compensation). */
final class StockService {
  private final Map<String, Integer> stock = new ConcurrentHashMap<>();
  private final Once once = new Once();

  StockService(String item, int quantity) {
    stock.put(item, quantity);
  }

  ServerServiceDefinition service() {
    return RawService.named("stock.Stock")
        .method(
            "Reserve",
            payload -> {
              OrderRequest r = OrderRequest.decode(payload);
              if (stock.getOrDefault(r.item(), 0) < r.quantity()) {
                throw Status.ABORTED.withDescription("out of stock: " + r.item()).asRuntimeException();
              }
              once.run(BranchInfo.current(), () -> stock.merge(r.item(), -r.quantity(), Integer::sum));
              System.out.printf("  stock:   reserved %d x %s (left %d)%n", r.quantity(), r.item(), left(r.item()));
              return new byte[0];
            })
        .method(
            "Release",
            payload -> {
              OrderRequest r = OrderRequest.decode(payload);
              once.run(BranchInfo.current(), () -> stock.merge(r.item(), r.quantity(), Integer::sum));
              System.out.printf("  stock:   released %d x %s (left %d)%n", r.quantity(), r.item(), left(r.item()));
              return new byte[0];
            })
        .build();
  }

  int left(String item) {
    return stock.getOrDefault(item, 0);
  }
}
