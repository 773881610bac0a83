"""Merges one benchmark run's parts into bench-<stamp>.json, adds artifact
sizes, and prints each target with the measured figure and whether it is met."""

import argparse
import json
import os
import sys

MB = 1_000_000


def size_table(functions, x86_dir, arm_dir):
    rows = []
    for f in functions:
        row = {"function": f}
        if x86_dir:
            row["x86_64_bytes"] = os.path.getsize(os.path.join(x86_dir, f))
        if arm_dir:
            row["arm64_bytes"] = os.path.getsize(os.path.join(arm_dir, f, "bootstrap"))
        rows.append(row)
    return rows


# AWS list prices, us-east-1, November 2026, no free tier (docs/operations.md, section 6).
PRICE = {
    "lambda_gb_s_arm64": 0.0000133334,
    "lambda_request": 0.20 / 1e6,
    "http_api_request": 1.00 / 1e6,
    "dynamodb_rru": 0.125 / 1e6,
    "dynamodb_wru": 0.625 / 1e6,
    "sqs_request": 0.40 / 1e6,
}
# Assumed, not measured here: billed time of a warm invocation at 256 MB.
BILLED_S, MEMORY_GB = 0.050, 0.25


def cost_of(payments, requests):
    """The variable AWS cost of `payments` card payments from the measured path."""
    rows = {r["function"]: r for r in requests["by_function"]}
    events = requests["webhook_events"]
    page = "patient-page (action-status)"
    # HTTP calls: assign, the patient page, checkout, one per webhook event.
    api = 3 + events
    # Lambda: those, plus the consumer (one batch here).
    invocations = api + 1
    rru = sum(r["estimated_read_units"] for f, r in rows.items() if f != "sqs-event-source")
    wru = sum(r["estimated_write_units"] for f, r in rows.items() if f != "sqs-event-source")
    sqs = sum(v for f in ("stripe-webhook", "sqs-event-source") for k, v in rows[f]["operations"].items()
              if k.startswith("SQS."))
    lines = [
        ("API Gateway HTTP API", f"{api} × {payments:,} requests", api * payments * PRICE["http_api_request"]),
        ("Lambda requests", f"{invocations} × {payments:,}", invocations * payments * PRICE["lambda_request"]),
        ("Lambda duration (assumed 50 ms at 256 MB)", f"{invocations} × 0.05 s × 0.25 GB × {payments:,}",
         invocations * BILLED_S * MEMORY_GB * payments * PRICE["lambda_gb_s_arm64"]),
        ("DynamoDB reads", f"{rru:g} RRU × {payments:,}", rru * payments * PRICE["dynamodb_rru"]),
        ("DynamoDB writes", f"{wru:g} WRU × {payments:,}", wru * payments * PRICE["dynamodb_wru"]),
        ("SQS", f"{sqs} requests × {payments:,}", sqs * payments * PRICE["sqs_request"]),
    ]
    assert page in rows, "the patient page view is part of a payment's cost"
    return lines


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--stamp", required=True)
    p.add_argument("--results", required=True)
    p.add_argument("--x86-64-dir")
    p.add_argument("--arm64-dir")
    p.add_argument("functions", nargs="+")
    a = p.parse_args()

    def part(name):
        with open(os.path.join(a.results, f"{name}-{a.stamp}.json")) as f:
            return json.load(f)

    cold, requests, local = part("cold-start"), part("aws-requests"), part("local-runner")
    sizes = size_table(a.functions, a.x86_64_dir, a.arm64_dir)

    print("Artifact sizes (stripped, release profile)")
    print(f"{'function':<24} {'arm64 MB':>10} {'x86_64 MB':>10}")
    for r in sizes:
        arm = f"{r['arm64_bytes'] / MB:.2f}" if "arm64_bytes" in r else "-"
        x86 = f"{r['x86_64_bytes'] / MB:.2f}" if "x86_64_bytes" in r else "-"
        print(f"{r['function']:<24} {arm:>10} {x86:>10}")

    checks = []
    ours = [f for f in cold["functions"] if f["kind"] == "ours"]
    for f in ours:
        checks.append((f"init {f['function']} / Node peer ({f['node_peer']})", f["init_vs_node_peer"], "≤ 0.125",
                       f["init_vs_node_peer"] <= 0.125))
    for f in ours:
        checks.append((f"init {f['function']} / hello-world", f["init_vs_hello_world"], "≤ 1.5",
                       f["init_vs_hello_world"] <= 1.5))
    total = requests["functions_total"]
    checks.append(("AWS requests, assign → paid", total, "≤ 8", total <= 8))
    arch = "arm64_bytes" if a.arm64_dir else "x86_64_bytes"
    for r in sizes:
        checks.append((f"artifact {r['function']} ({arch[:-6]}) MB", round(r[arch] / MB, 2), "≤ 6", r[arch] <= 6 * MB))
    reads = local["throughput"]["staff_reads"]
    rps, p99 = reads["requests_per_s"]["median"], reads["p99_ms"]["median"]
    checks.append(("local runner staff reads/s (median)", rps, "≥ 2000", rps >= 2000))
    checks.append(("local runner staff read p99 ms (median)", p99, "≤ 10", p99 <= 10))

    payments = 10_000
    cost = cost_of(payments, requests)
    print(f"\nVariable AWS cost of {payments:,} card payments a month (list prices, us-east-1; see docs/operations.md)")
    for name, how, usd in cost:
        print(f"{name:<44} {how:<40} ${usd:8.4f}")
    print(f"{'total':<44} {'':<40} ${sum(u for _, _, u in cost):8.4f}")

    print("\nTargets")
    for name, value, target, ok in checks:
        print(f"{'met   ' if ok else 'MISSED'} {name:<58} {value!s:>10}  {target}")

    report = {
        "stamp": a.stamp,
        "cold_start": cold,
        "artifact_sizes": {"rows": sizes, "arm64": bool(a.arm64_dir),
                           "arm64_how": "cargo lambda build --release --arm64 (zig, offline)" if a.arm64_dir else None},
        "aws_requests_per_payment": requests,
        "local_runner": local,
        "cost_10k_card_payments_usd": {"lines": [{"item": n, "how": h, "usd": round(u, 5)} for n, h, u in cost],
                                       "total": round(sum(u for _, _, u in cost), 4),
                                       "prices": PRICE, "assumed_billed_s": BILLED_S, "memory_gb": MEMORY_GB},
        "targets": [{"name": n, "value": v, "target": t, "met": ok} for n, v, t, ok in checks],
    }
    path = os.path.join(a.results, f"bench-{a.stamp}.json")
    with open(path, "w") as f:
        json.dump(report, f, indent=2)
    print(f"\nwritten to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
