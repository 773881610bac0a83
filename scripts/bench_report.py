"""Merges one benchmark run's parts into bench-<stamp>.json, adds artifact
sizes, prints each target with the measured figure and whether it is met,
and draws bench-<stamp>.svg (cold starts side by side, and how soon a
payment is visible)."""

import argparse
import json
import math
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
    "eventbridge_event": 1.00 / 1e6,
}
# The template's MemorySize (256 MB); the billed time of each invocation is
# the measured warm invocation's (cold-start part), rounded up to 1 ms.
MEMORY_GB = 0.25
# The staff functions that call no Stripe API (the 4.5 MB class).
STAFF = ("clinic-settings", "select-invoices", "action-status")
# The functions that carry the receipt's fonts: measured and reported, not
# held to the others' size targets (theirs is to keep the fonts off the rest).
PDF = ("receipt-pdf", "send-messages")


def route_table_trial(cold, x86_dir, arm_dir):
    """The axum Router trial against action-status as built, as ratios
    measured in this one run: its median init and its artifact sizes."""
    by_name = {f["function"]: f for f in cold["functions"]}
    trial, built = by_name["axum-trial"], by_name["action-status"]
    ratios = {"init (median)": round(trial["init_ms"]["median"] / built["init_ms"]["median"], 3)}
    if x86_dir:
        size = lambda f: os.path.getsize(os.path.join(x86_dir, f))
        ratios["size x86_64"] = round(size("axum-trial") / size("action-status"), 3)
    if arm_dir:
        size = lambda f: os.path.getsize(os.path.join(arm_dir, f, "bootstrap"))
        ratios["size arm64"] = round(size("axum-trial") / size("action-status"), 3)
    return ratios


def invocations_per_payment(requests):
    """Which function runs how many times for one card payment (the
    aws-requests story): assign, the patient page, checkout, one webhook per
    Stripe event, one consumer batch, one publisher run per status change."""
    rows = {r["function"]: r for r in requests["by_function"]}
    return {
        "assign-action": 1,
        "action-status": 1,
        "create-checkout": 1,
        "stripe-webhook": requests["webhook_events"],
        "process-payment-events": 1,
        "publish-action-events": rows["publish-action-events"]["operations"].get("EventBridge.PutEvents", 0),
    }


def cost_of(payments, requests, cold):
    """The variable AWS cost of `payments` card payments from the measured path."""
    rows = {r["function"]: r for r in requests["by_function"]}
    billed_ms = {f["function"]: f["warm_billed_ms"] for f in cold["functions"] if f["kind"] == "ours"}
    runs = invocations_per_payment(requests)
    page = "patient-page (action-status)"
    api = 3 + requests["webhook_events"]  # assign, the patient page, checkout, each webhook
    invocations = sum(runs.values())
    gb_s = sum(n * billed_ms[f] / 1000 * MEMORY_GB for f, n in runs.items())
    billed = " + ".join(f"{n}×{billed_ms[f]:g}" for f, n in runs.items())
    rru = sum(r["estimated_read_units"] for f, r in rows.items() if f != "sqs-event-source")
    wru = sum(r["estimated_write_units"] for f, r in rows.items() if f != "sqs-event-source")
    sqs = sum(v for f in ("stripe-webhook", "sqs-event-source") for k, v in rows[f]["operations"].items()
              if k.startswith("SQS."))
    events = runs["publish-action-events"]
    lines = [
        ("API Gateway HTTP API", f"{api} × {payments:,} requests", api * payments * PRICE["http_api_request"]),
        ("Lambda requests", f"{invocations} × {payments:,}", invocations * payments * PRICE["lambda_request"]),
        ("Lambda duration (warm, measured against moto)", f"({billed}) ms × 0.25 GB × {payments:,}",
         gb_s * payments * PRICE["lambda_gb_s_arm64"]),
        ("DynamoDB reads", f"{rru:g} RRU × {payments:,}", rru * payments * PRICE["dynamodb_rru"]),
        ("DynamoDB writes", f"{wru:g} WRU × {payments:,}", wru * payments * PRICE["dynamodb_wru"]),
        ("SQS", f"{sqs} requests × {payments:,}", sqs * payments * PRICE["sqs_request"]),
        ("EventBridge status events", f"{events} events × {payments:,}", events * payments * PRICE["eventbridge_event"]),
    ]
    assert page in rows, "the patient page view is part of a payment's cost"
    return lines


def svg_chart(cold, path_part):
    """Init times of every cold start (ours, hello-world, Node.js) on a log
    axis, and the paid-visible latencies of both stores; plain SVG."""
    rows = cold["functions"]
    width, left, row_h, top = 900, 230, 22, 40
    colours = {"ours": "#1b6ac9", "trial": "#7b1fa2", "pdf": "#00838f", "baseline": "#2e7d32", "node": "#b85c00"}
    lo, hi = 0.2, 5000.0

    def x(ms):
        ms = min(max(ms, lo), hi)
        return left + (width - left - 20) * (math.log10(ms) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))

    out = []
    h1 = top + row_h * len(rows) + 40
    out.append(f'<text x="10" y="22" font-size="15" font-weight="bold">Cold-start init, every run (ms, log scale; '
               f'{cold["cold_starts_per_function"]} each, x86_64)</text>')
    for tick in (0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000):
        out.append(f'<line x1="{x(tick):.1f}" y1="{top - 8}" x2="{x(tick):.1f}" y2="{h1 - 30}" stroke="#ddd"/>')
        out.append(f'<text x="{x(tick):.1f}" y="{h1 - 16}" font-size="11" text-anchor="middle">{tick}</text>')
    for i, r in enumerate(rows):
        y = top + i * row_h + row_h / 2
        out.append(f'<text x="{left - 8}" y="{y + 4:.1f}" font-size="12" text-anchor="end">{r["function"]}</text>')
        for v in r.get("init_samples_ms", []):
            out.append(f'<circle cx="{x(v):.1f}" cy="{y:.1f}" r="3" fill="{colours[r["kind"]]}" fill-opacity="0.5"/>')
        med = r["init_ms"]["median"]
        out.append(f'<line x1="{x(med):.1f}" y1="{y - 8:.1f}" x2="{x(med):.1f}" y2="{y + 8:.1f}" stroke="black" '
                   f'stroke-width="2"/>')
    legend = " · ".join(f'<tspan fill="{c}">● {k}</tspan>' for k, c in
                        (("ours", colours["ours"]), ("axum trial", colours["trial"]),
                         ("hello-world", colours["baseline"]), ("Node.js 20", colours["node"])))
    out.append(f'<text x="{left}" y="{h1 - 2}" font-size="12">{legend} · <tspan>| median</tspan></text>')

    top2 = h1 + 40
    visible = path_part["visible"]["rows"] if path_part else []
    series = [(f'{v["store"]}: {label}', v[key]["samples"]) for v in visible
              for label, key in (("paid visible to staff", "paid_visible_ms"), ("paid event at target", "paid_event_ms"))]
    out.append(f'<text x="10" y="{top2 - 12}" font-size="15" font-weight="bold">From Stripe\'s webhook POST to '
               f'"paid" (ms, log scale; one dot per payment)</text>')
    h2 = top2 + row_h * len(series) + 40
    for tick in (0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000):
        out.append(f'<line x1="{x(tick):.1f}" y1="{top2 - 4}" x2="{x(tick):.1f}" y2="{h2 - 30}" stroke="#ddd"/>')
        out.append(f'<text x="{x(tick):.1f}" y="{h2 - 16}" font-size="11" text-anchor="middle">{tick}</text>')
    for i, (label, samples) in enumerate(series):
        y = top2 + i * row_h + row_h / 2
        out.append(f'<text x="{left - 8}" y="{y + 4:.1f}" font-size="12" text-anchor="end">{label}</text>')
        for v in samples:
            out.append(f'<circle cx="{x(v):.1f}" cy="{y:.1f}" r="2" fill="#6a1b9a" fill-opacity="0.35"/>')
        ranked = sorted(samples)
        p99 = ranked[max(0, math.ceil(0.99 * len(ranked)) - 1)]
        out.append(f'<line x1="{x(p99):.1f}" y1="{y - 8:.1f}" x2="{x(p99):.1f}" y2="{y + 8:.1f}" stroke="#c62828" '
                   f'stroke-width="2"/>')
    out.append(f'<text x="{left}" y="{h2 - 2}" font-size="12"><tspan fill="#c62828">| p99</tspan> · '
               f'target: p99 ≤ 50 ms with the embedded queue</text>')
    body = "\n".join(out)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{h2 + 10}" '
            f'font-family="sans-serif" role="img" aria-label="visitpay benchmark: cold starts and paid-visible latency">'
            f'\n<rect width="100%" height="100%" fill="white"/>\n{body}\n</svg>\n')


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
    path_part = part("event-path")
    sizes = size_table(a.functions, a.x86_64_dir, a.arm64_dir)

    print("Artifact sizes (stripped, release profile)")
    print(f"{'function':<24} {'arm64 MB':>10} {'x86_64 MB':>10}")
    for r in sizes:
        arm = f"{r['arm64_bytes'] / MB:.2f}" if "arm64_bytes" in r else "-"
        x86 = f"{r['x86_64_bytes'] / MB:.2f}" if "x86_64_bytes" in r else "-"
        print(f"{r['function']:<24} {arm:>10} {x86:>10}")

    trial = route_table_trial(cold, a.x86_64_dir, a.arm64_dir)
    print("\nRoute-table trial: action-status through an axum Router (bench/axum-trial) / as built")
    for name, ratio in trial.items():
        print(f"  {name:<28} {ratio:>6.3f}  {'within' if abs(ratio - 1) < 0.05 else 'beyond'} 5%")

    checks = []
    ours = [f for f in cold["functions"] if f["kind"] == "ours"]
    for f in ours:
        checks.append((f"init {f['function']} / Node peer ({f['node_peer']})", f["init_vs_node_peer"], "≤ 0.125",
                       f["init_vs_node_peer"] <= 0.125))
    for f in ours:
        checks.append((f"init {f['function']} / hello-world", f["init_vs_hello_world"], "≤ 1.5",
                       f["init_vs_hello_world"] <= 1.5))
    for f in ours:
        checks.append((f"peak RSS {f['function']} MB (worst run)", f["peak_rss_mb"]["max"], "fits 128 MB (≤ 96)",
                       f["fits_128_mb"]))
    total = requests["functions_total"]
    checks.append(("AWS requests, assign → paid", total, "≤ 8", total <= 8))
    arch = "arm64_bytes" if a.arm64_dir else "x86_64_bytes"
    for r in sizes:
        if r["function"] in PDF:
            checks.append((f"artifact {r['function']} ({arch[:-6]}) MB", round(r[arch] / MB, 2), "reported", None))
            continue
        limit = 4.5 if r["function"] in STAFF else 6
        checks.append((f"artifact {r['function']} ({arch[:-6]}) MB", round(r[arch] / MB, 2), f"≤ {limit:g}",
                       r[arch] <= limit * MB))
    for f in (f for f in cold["functions"] if f["kind"] == "pdf"):
        by_name = {g["function"]: g for g in cold["functions"]}
        ratio = round(f["init_ms"]["median"] / by_name["action-status"]["init_ms"]["median"], 3)
        checks.append((f"init {f['function']} / action-status", ratio, "reported", None))
    reads = local["throughput"]["staff_reads"]
    rps, p99 = reads["requests_per_s"]["median"], reads["p99_ms"]["median"]
    checks.append(("local runner staff reads/s (median)", rps, "≥ 2000", rps >= 2000))
    checks.append(("local runner staff read p99 ms (median)", p99, "≤ 10", p99 <= 10))
    for v in path_part["visible"]["rows"]:
        paid = v["paid_visible_ms"]["p99"]
        if v["store"] == "embedded":
            checks.append(("paid visible p99 ms (embedded queue)", paid, "≤ 50", paid <= 50))
        else:
            checks.append((f"paid visible p99 ms ({v['store']})", paid, "reported", None))
    for t in path_part["consumer_throughput_moto"]:
        checks.append((f"consumer events/s against moto, {t['concurrent_batches']} batches at once",
                       t["events_per_s"], f"reported ({t['write_conflicts']} conflicts)", None))

    payments = 10_000
    cost = cost_of(payments, requests, cold)
    print(f"\nVariable AWS cost of {payments:,} card payments a month (list prices, us-east-1; see docs/operations.md)")
    for name, how, usd in cost:
        print(f"{name:<44} {how:<40} ${usd:8.4f}")
    print(f"{'total':<44} {'':<40} ${sum(u for _, _, u in cost):8.4f}")

    print("\nTargets")
    for name, value, target, ok in checks:
        mark = "info  " if ok is None else "met   " if ok else "MISSED"
        print(f"{mark} {name:<58} {value!s:>10}  {target}")

    report = {
        "stamp": a.stamp,
        "cold_start": cold,
        "artifact_sizes": {"rows": sizes, "arm64": bool(a.arm64_dir),
                           "arm64_how": "cargo lambda build --release --arm64 (zig, offline)" if a.arm64_dir else None},
        "route_table_trial": trial,
        "aws_requests_per_payment": requests,
        "local_runner": local,
        "event_path": path_part,
        "cost_10k_card_payments_usd": {"lines": [{"item": n, "how": h, "usd": round(u, 5)} for n, h, u in cost],
                                       "total": round(sum(u for _, _, u in cost), 4),
                                       "prices": PRICE, "memory_gb": MEMORY_GB,
                                       "invocations_per_payment": invocations_per_payment(requests)},
        "targets": [{"name": n, "value": v, "target": t, "met": ok} for n, v, t, ok in checks],
    }
    path = os.path.join(a.results, f"bench-{a.stamp}.json")
    with open(path, "w") as f:
        json.dump(report, f, indent=2)
    chart = os.path.join(a.results, f"bench-{a.stamp}.svg")
    with open(chart, "w") as f:
        f.write(svg_chart(cold, path_part))
    print(f"\nwritten to {path} and {chart}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
