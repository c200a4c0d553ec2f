package io.dtmd.examples;

import java.nio.charset.StandardCharsets;

/**
 * The payload every step of the order saga carries, as "orderId,item,quantity,amount" text: the
 * coordinator passes the bytes through untouched, so any encoding the services agree on works (a
 * protobuf message is the usual choice).
 */
record OrderRequest(String orderId, String item, int quantity, long amount) {
  byte[] encode() {
    return String.join(",", orderId, item, String.valueOf(quantity), String.valueOf(amount))
        .getBytes(StandardCharsets.UTF_8);
  }

  static OrderRequest decode(byte[] payload) {
    String[] f = new String(payload, StandardCharsets.UTF_8).split(",");
    return new OrderRequest(f[0], f[1], Integer.parseInt(f[2]), Long.parseLong(f[3]));
  }
}
