#!/usr/bin/env python3
"""tools/demo_day.py — plays a simulated trading day for tools/demo.sh (a DEMO TOOL, stdlib only).

Shoppers buy through the storefront simulator's checkout, which sells only what the storefront
shows as available (the number baton-inventory publishes) and emits storefront.order.created.
Meanwhile the warehouse receives goods: the ERP simulator's stock of a few SKUs at WH-BCN rises
(erp.stock.changed), which baton-inventory turns into more stock on the storefront. Some orders
are then updated (new shipping address, version 2) or cancelled, and a few orders
arrive from a marketplace with SKUs nobody mapped. Those events are published to baton.events
through the RabbitMQ management API, as another system of the shop would.

Prints progress on stderr and a JSON summary on stdout: what was sold per SKU, how many
orders, updates, cancellations and unmapped orders were sent.
"""
import argparse
import base64
import json
import random
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid


def http(method, url, body=None, timeout=30):
    """JSON request; returns (status, parsed body or None)."""
    parts = urllib.parse.urlsplit(url)
    headers = {"Content-Type": "application/json"}
    if parts.username:
        cred = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
        headers["Authorization"] = "Basic " + base64.b64encode(cred.encode()).decode()
        netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
        url = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
            return r.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except ValueError:
            return e.code, None


class Publisher:
    """Publishes CloudEvents to baton.events through the management API."""

    def __init__(self, mgmt, vhost):
        self.url = f"{mgmt.rstrip('/')}/api/exchanges/{urllib.parse.quote(vhost, safe='')}/baton.events/publish"

    def publish(self, ev):
        body = {
            "properties": {"delivery_mode": 2, "content_type": "application/json",
                           "message_id": ev["id"], "correlation_id": ev["id"],
                           "type": ev["type"], "app_id": "demo-day"},
            "routing_key": ev["type"], "payload": json.dumps(ev), "payload_encoding": "string"}
        for attempt in range(5):
            st, r = http("POST", self.url, body)
            if st == 200 and r and r.get("routed"):
                return
            time.sleep(0.5 * (attempt + 1))
        raise RuntimeError(f"could not publish {ev['type']} {ev['id']}: HTTP {st} {r}")


def event(etype, source, order):
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {"specversion": "1.0", "id": str(uuid.uuid4()), "source": source, "type": etype,
            "subject": f"order/{order['order_id']}", "time": now,
            "datacontenttype": "application/json", "data": order}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--storefront", required=True)
    ap.add_argument("--erp", required=True, help="ERP simulator base URL (stock receipts)")
    ap.add_argument("--receipts", type=int, default=40, help="goods receipts during the day")
    ap.add_argument("--mgmt", required=True, help="management API base URL with credentials")
    ap.add_argument("--vhost", default="/")
    ap.add_argument("--skus", type=int, default=100)
    ap.add_argument("--checkouts", type=int, default=3000)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--rate", type=float, default=25.0, help="checkouts per second (0: flat out)")
    ap.add_argument("--updates", type=float, default=0.10, help="share of sold orders updated")
    ap.add_argument("--cancels", type=float, default=0.05, help="share of sold orders cancelled")
    ap.add_argument("--unmapped", type=int, default=12, help="marketplace orders with unmapped SKUs")
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()

    rng = random.Random(a.seed)
    skus = [f"SKU-{i:05d}" for i in range(a.skus)]
    weights = [1.0 / (i + 1) ** 1.1 for i in range(a.skus)]  # a few best sellers, a long tail
    baskets = []
    for _ in range(a.checkouts):
        n = rng.choice([1, 1, 1, 2, 2, 3, 4])
        lines = {}
        for s in rng.choices(skus, weights, k=n):
            lines[s] = lines.get(s, 0) + rng.choice([1, 1, 1, 2, 3])
        baskets.append([{"sku": s, "quantity": q, "unit_price": f"{rng.randint(5, 80)}.{rng.choice(['00', '50', '90'])}"}
                        for s, q in lines.items()])

    lock = threading.Lock()
    sold, orders, refused, errors = {}, [], [0], [0]
    next_i = [0]

    t_start = time.time()

    def shopper():
        while True:
            with lock:
                i = next_i[0]
                next_i[0] += 1
            if i >= len(baskets):
                return
            if a.rate > 0:  # shoppers arrive at a steady pace over the day
                wait = t_start + i / a.rate - time.time()
                if wait > 0:
                    time.sleep(wait)
            st, r = http("POST", f"{a.storefront}/checkout", {"lines": baskets[i]})
            with lock:
                if st == 201:
                    order = r["order"]
                    order.pop("sold_here", None)
                    orders.append(order)
                    for l in order["lines"]:
                        sold[l["sku"]] = sold.get(l["sku"], 0) + l["quantity"]
                elif st == 409:
                    refused[0] += 1
                else:
                    errors[0] += 1

    restocked = {}
    receipt_rng = random.Random(a.seed + 1)

    def receiver():
        """Goods receipts at WH-BCN, spread over the day, mostly for the best sellers."""
        day = len(baskets) / a.rate if a.rate > 0 else 5.0
        for k in range(a.receipts):
            time.sleep(day / (a.receipts + 1))
            with lock:
                if next_i[0] >= len(baskets):
                    return
            sku = receipt_rng.choices(skus[:20], weights[:20])[0]
            qty = receipt_rng.randint(5, 20)
            st, pos = http("GET", f"{a.erp}/api/stock/{sku}/WH-BCN")
            if st != 200:
                raise RuntimeError(f"ERP stock read for {sku}: HTTP {st} {pos}")
            st, r = http("PUT", f"{a.erp}/api/stock/{sku}/WH-BCN", {"on_hand": pos["on_hand"] + qty})
            if st != 200:
                raise RuntimeError(f"ERP stock receipt for {sku}: HTTP {st} {r}")
            with lock:
                restocked[sku] = restocked.get(sku, 0) + qty

    threads = [threading.Thread(target=shopper) for _ in range(a.threads)]
    threads.append(threading.Thread(target=receiver))
    t0 = t_start
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        time.sleep(2)
        with lock:
            print(f"demo-day: {next_i[0]}/{a.checkouts} checkouts, {len(orders)} sold, "
                  f"{refused[0]} refused (out of stock)", file=sys.stderr, flush=True)
    for t in threads:
        t.join()

    pub = Publisher(a.mgmt, a.vhost)
    rng.shuffle(orders)
    n_upd = int(len(orders) * a.updates)
    n_can = int(len(orders) * a.cancels)
    updated = orders[:n_upd]
    cancelled = orders[n_upd:n_upd + n_can]
    for o in updated:
        u = json.loads(json.dumps(o))
        u["version"] = 2
        u["shipping_address"]["line1"] = "Gran Via 2"
        u["updated_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 1))
        pub.publish(event("storefront.order.updated", f"storefront/{o['channel']}", u))
    for o in cancelled:
        c = json.loads(json.dumps(o))
        c["version"] = 2
        c["financial_status"] = "voided"
        c["updated_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 1))
        pub.publish(event("storefront.order.cancelled", f"storefront/{o['channel']}", c))
        for l in o["lines"]:
            sold[l["sku"]] -= l["quantity"]
    for i in range(a.unmapped):
        o = json.loads(json.dumps(orders[i % len(orders)])) if orders else None
        if not o:
            break
        o["order_id"] = f"MP-{a.seed}-{i + 1}"
        o["lines"][0]["sku"] = f"UNMAPPED-{i % 3 + 1}"
        pub.publish(event("storefront.order.created", f"storefront/{o['channel']}", o))
    print(f"demo-day: {len(orders)} orders sold in {time.time() - t0:.1f} s; published "
          f"{len(updated)} updates, {len(cancelled)} cancellations, {a.unmapped} marketplace "
          f"orders with unmapped SKUs", file=sys.stderr, flush=True)
    json.dump({"sold_orders": len(orders), "refused": refused[0], "errors": errors[0],
               "updated": len(updated), "cancelled": len(cancelled), "unmapped": a.unmapped,
               "kept_orders": len(orders) - len(cancelled), "sold_units": sold,
               "restocked_units": restocked}, sys.stdout)
    print()


if __name__ == "__main__":
    main()
