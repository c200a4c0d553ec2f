"""The order flow against a running dtmd:

    python3 examples/python/order_flow/main.py --dtm 127.0.0.1:36790

starts the order, stock and payment services on loopback ports, then places
two orders as sagas, `create order -> reserve stock -> charge payment`:
alice's is paid; bob's payment is refused, so dtmd releases his stock and
cancels his order. Prints what happened; exits 1 if the outcome is not that.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import tempfile
import time

from services import OrderService, PaymentService, StockService

from dtmd_client import DtmClient, Failure, TransOptions


def place_order(dtm: DtmClient, order: OrderService, stock: StockService, payment: PaymentService,
                user: str, item: str, quantity: int, amount: int) -> str:
    gid = dtm.new_gid()
    payload = json.dumps({"order_id": gid, "user": user, "item": item, "quantity": quantity, "amount": amount})
    print(f"{user} orders {quantity} x {item} for {amount} (saga {gid})", flush=True)
    saga = dtm.saga(gid, TransOptions(wait_result=True))
    saga.add(order.server.url("order.Order/Create"), order.server.url("order.Order/Cancel"), payload)
    saga.add(stock.server.url("stock.Stock/Reserve"), stock.server.url("stock.Stock/Release"), payload)
    saga.add(payment.server.url("payment.Payment/Charge"), payment.server.url("payment.Payment/Refund"), payload)
    try:
        saga.submit()
        print(f"=> saga {gid} succeeded", flush=True)
    except Failure as failure:
        print(f"=> saga {gid} rolled back: {failure.message}", flush=True)
    return gid


def wait_for(predicate: object, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dtm", default="127.0.0.1:36790", help="dtmd's gRPC address")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="order-flow-") as tmp, DtmClient(args.dtm) as dtm:
        data = pathlib.Path(tmp)
        order = OrderService(data)
        stock = StockService(data, {"widget": 10})
        payment = PaymentService(data, {"alice": 50, "bob": 5})
        for service in (order, stock, payment):
            service.server.start()
            print(f"{service.name} service on {service.server.address}", flush=True)
        try:
            paid = place_order(dtm, order, stock, payment, "alice", "widget", 2, 20)
            refused = place_order(dtm, order, stock, payment, "bob", "widget", 3, 30)
            # The compensations may still be running when Submit answers.
            wait_for(lambda: order.status(refused) == "cancelled" and stock.available("widget") == 8)
            outcome = {
                "alice's order": order.status(paid),
                "bob's order": order.status(refused),
                "widgets available": stock.available("widget"),
                "alice's balance": payment.balance("alice"),
                "bob's balance": payment.balance("bob"),
            }
        finally:
            for service in (order, stock, payment):
                service.server.stop()
    print("final state:")
    for key, value in outcome.items():
        print(f"  {key}: {value}")
    expected = {"alice's order": "created", "bob's order": "cancelled", "widgets available": 8,
                "alice's balance": 30, "bob's balance": 5}
    if outcome != expected:
        print(f"UNEXPECTED outcome; expected {expected}", flush=True)
        return 1
    print("as expected: alice paid; bob's refusal released his stock and cancelled his order")
    return 0


if __name__ == "__main__":
    sys.exit(main())
