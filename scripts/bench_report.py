#!/usr/bin/env python3
"""Helpers for scripts/bench.sh (standard library only).

  bench_report.py handler BEFORE.prom AFTER.prom
      p50 / p99 of cedar-gate's own Check handler over the interval between two scrapes of
      /metrics, from the `cedar_gate_check_duration_seconds` bucket deltas (linear
      interpolation inside a bucket, as Prometheus' histogram_quantile does). JSON line.
  bench_report.py outcomes BEFORE.prom AFTER.prom
      what cedar-gate decided over the same interval, from its counters: allows, denies by
      reason, refused credentials by reason, Check errors, decision cache hits / misses /
      bypasses. JSON line.
  bench_report.py expect-allow ROW_JSON
      exits 1 (and says why on stderr) unless every Check of a merged gRPC row was answered
      OK and allowed by both the load generator's count and the server's counters.
  bench_report.py wrk WRK_OUTPUT
      requests/s, p50 / p99 latency and non-2xx count from `wrk --latency` output. JSON line.
  bench_report.py h2load LOG_FILE [STDOUT_FILE [WARMUP_S]]
      an open-loop run of h2load (`--log-file`: start time, status, microseconds per
      request): achieved requests/s, p50 / p99 / p99.9 latency, non-2xx count, over the
      requests started WARMUP_S seconds or more after the first (default 0), and the share
      of them sent in bursts (10 or more started in one millisecond). JSON line.
  bench_report.py expect-2xx ROW_JSON
      exits 1 (and says why on stderr) unless every request of an Envoy row got a 2xx.
  bench_report.py table RESULTS.jsonl
      the markdown tables for BENCHMARKS.md.
"""

import json
import re
import sys

METRIC = "cedar_gate_check_duration_seconds"


def buckets(path):
    out = {}
    with open(path) as f:
        for line in f:
            m = re.match(METRIC + r'_bucket\{le="([^"]+)"\} (\S+)', line)
            if m:
                le = float("inf") if m.group(1) == "+Inf" else float(m.group(1))
                out[le] = out.get(le, 0.0) + float(m.group(2))
    return out


def quantile(q, cumulative):
    """cumulative: sorted [(le, count)], counts cumulative."""
    if not cumulative or cumulative[-1][1] <= 0:
        return None
    rank = q * cumulative[-1][1]
    prev_le, prev_count = 0.0, 0.0
    for le, count in cumulative:
        if count >= rank:
            if le == float("inf"):
                return prev_le
            if count == prev_count:
                return le
            return prev_le + (le - prev_le) * (rank - prev_count) / (count - prev_count)
        prev_le, prev_count = le, count
    return cumulative[-1][0]


def handler(before, after):
    b, a = buckets(before), buckets(after)
    delta = sorted((le, a.get(le, 0.0) - b.get(le, 0.0)) for le in a)
    us = lambda v: None if v is None else round(v * 1e6, 1)
    return {
        "handler_count": int(delta[-1][1]) if delta else 0,
        "handler_p50_us": us(quantile(0.50, delta)),
        "handler_p99_us": us(quantile(0.99, delta)),
    }


def counters(path, name):
    """{labels: value} of counter `name`; labels as a sorted tuple of (key, value)."""
    out = {}
    pattern = re.compile(re.escape(name) + r"(?:\{([^}]*)\})? (\S+)$")
    with open(path) as f:
        for line in f:
            m = pattern.match(line.strip())
            if m:
                labels = tuple(sorted(re.findall(r'(\w+)="([^"]*)"', m.group(1) or "")))
                out[labels] = out.get(labels, 0.0) + float(m.group(2))
    return out


def delta_by(before, after, name, label):
    """Increase of counter `name` between two scrapes, summed by one label's value."""
    b, a = counters(before, name), counters(after, name)
    out = {}
    for labels, v in a.items():
        d = v - b.get(labels, 0.0)
        if d > 0:
            key = dict(labels).get(label, "")
            out[key] = out.get(key, 0) + int(d)
    return out


def outcomes(before, after):
    total = lambda name: sum(delta_by(before, after, name, "").values())
    checks = delta_by(before, after, "cedar_gate_checks_total", "decision")
    b, a = counters(before, "cedar_gate_checks_total"), counters(after, "cedar_gate_checks_total")
    deny_reasons = {}
    for labels, v in a.items():
        d = dict(labels)
        if d.get("decision") != "allow" and v - b.get(labels, 0.0) > 0:
            deny_reasons[d.get("reason", "?")] = int(v - b.get(labels, 0.0))
    return {
        "server_allow": checks.get("allow", 0),
        "server_deny": sum(v for k, v in checks.items() if k != "allow"),
        "deny_reasons": deny_reasons,
        "identity_rejections": delta_by(before, after, "cedar_gate_identity_rejections_total", "reason"),
        "check_errors": delta_by(before, after, "cedar_gate_check_errors_total", "reason"),
        "cache_hits": total("cedar_gate_decision_cache_hits_total"),
        "cache_misses": total("cedar_gate_decision_cache_misses_total"),
        "cache_bypasses": total("cedar_gate_decision_cache_bypass_total"),
    }


def expect_allow(row):
    r = json.loads(row)
    statuses = r.get("grpc_status", {})
    not_ok = {k: v for k, v in statuses.items() if k != "OK"}
    problems = []
    if r.get("deny", 0) or r.get("server_deny", 0):
        problems.append(f"{r.get('deny', 0)} denied (server: {r.get('server_deny', 0)}, reasons "
                        f"{r.get('deny_reasons', {})})")
    if r.get("identity_rejections"):
        problems.append(f"credentials refused {r['identity_rejections']}")
    if r.get("check_errors"):
        problems.append(f"Check errors {r['check_errors']}")
    if not_ok:
        problems.append(f"gRPC errors {not_ok}")
    if r.get("requests", 0) == 0:
        problems.append("no request answered")
    where = f"{r.get('label', '?')} {r.get('scenario', '?')}"
    if problems:
        print(f"UNEXPECTED in {where}: " + "; ".join(problems), file=sys.stderr)
        return 1
    print(f"{where}: all {r.get('allow', 0):,} allowed (server: {r.get('server_allow', 0):,}); decision cache "
          f"{r.get('cache_hits', 0):,} hits / {r.get('cache_misses', 0):,} misses / "
          f"{r.get('cache_bypasses', 0):,} bypasses", file=sys.stderr)
    return 0


def to_us(s):
    m = re.match(r"([\d.]+)(us|ms|s)$", s)
    if not m:
        return None
    v = float(m.group(1))
    return round(v * {"us": 1, "ms": 1e3, "s": 1e6}[m.group(2)], 1)


def wrk(path):
    text = open(path).read()
    out = {}
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    out["rps"] = float(m.group(1)) if m else None
    for pct, key in (("50", "p50_us"), ("99", "p99_us")):
        m = re.search(r"^\s+" + pct + r"(?:\.000)?%\s+(\S+)", text, re.M)
        out[key] = to_us(m.group(1)) if m else None
    m = re.search(r"(\d+) requests in", text)
    out["requests"] = int(m.group(1)) if m else None
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    out["non_2xx"] = int(m.group(1)) if m else 0
    return out


def burst_share(rows, size=10):
    """Share of the requests started in a millisecond in which `size` or more started.

    At 3,000 req/s an even schedule starts 3 per millisecond. h2load's per-client timers
    drift back into step whenever h2load is descheduled (libev moves every late timer to
    "now"), so on a busy machine the load turns bursty again and the p99 partly measures
    how long a burst takes to drain. This makes that visible in every run."""
    per_ms = {}
    for start, _, _ in rows:
        per_ms[start // 1000] = per_ms.get(start // 1000, 0) + 1
    return round(sum(n for n in per_ms.values() if n >= size) / len(rows), 2) if rows else None


def h2load(log, stdout=None, warmup_s="0"):
    rows = []
    with open(log) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3:
                rows.append((int(parts[0]), int(parts[1]), int(parts[2])))
    # h2load -r (staggered starts) cannot be combined with its own --warm-up-time, so the
    # warm-up (connections, the staggered start) is cut here.
    if rows:
        first = min(r[0] for r in rows)
        rows = [r for r in rows if r[0] - first >= float(warmup_s) * 1e6]
    out = {"requests": len(rows)}
    if not rows:
        return out
    lat = sorted(r[2] for r in rows)

    def q(p):
        return float(lat[min(len(lat) - 1, int(p * len(lat)))])

    span = (max(r[0] for r in rows) - min(r[0] for r in rows)) / 1e6
    out.update({
        "rps": round(len(rows) / span, 1) if span > 0 else None,
        "p50_us": q(0.50), "p99_us": q(0.99), "p999_us": q(0.999), "max_us": float(lat[-1]),
        "non_2xx": sum(1 for r in rows if not 200 <= r[1] < 300),
        "burst_share": burst_share(rows),
    })
    if stdout:
        m = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored", open(stdout).read())
        if m:
            out["failed"] = int(m.group(2)) + int(m.group(3))
    return out


def expect_2xx(row):
    r = json.loads(row)
    bad = r.get("non_2xx", 0) + r.get("failed", 0)
    if not r.get("requests"):
        print(f"{r.get('label')}: no request completed", file=sys.stderr)
        return 1
    if bad:
        print(f"{r.get('label')}: {bad} of {r['requests']} requests were not answered 2xx "
              "(the bench request must be allowed)", file=sys.stderr)
        return 1
    return 0


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if xs else None


def fmt(v, digits=0):
    if v is None:
        return "n/a"
    return f"{v:,.{digits}f}"


def ratio(a, b):
    return "n/a" if not a or not b else f"{a / b:.2f}"


def grpc_summary(rows):
    """One scenario's alternating null / cedar-gate rounds: the round with the median
    ratio (its req/s and latencies), the median ratio, every round's ratio, and the
    server-side fields (handler, decisions, cache) from the row that carries them."""
    by_round = {}
    for r in rows:
        by_round.setdefault(r.get("round", 1), {})[r["label"]] = r
    pairs = [(p["null"], p["cedar-gate"]) for _, p in sorted(by_round.items())
             if "null" in p and "cedar-gate" in p and p["null"].get("rps") and p["cedar-gate"].get("rps")]
    if not pairs:
        return {}, {}, "n/a", ""
    ratios = [c["rps"] / n["rps"] for n, c in pairs]
    order = sorted(range(len(pairs)), key=lambda i: ratios[i])
    mid = order[len(order) // 2]
    null, gate = dict(pairs[mid][0]), dict(pairs[mid][1])
    server = next((c for _, c in pairs if "handler_p50_us" in c), {})
    for key in ("handler_p50_us", "handler_p99_us", "cache_hits", "cache_misses"):
        if key in server:
            gate[key] = server[key]
    gate["allow"] = sum(c.get("allow", 0) for _, c in pairs)
    gate["deny"] = sum(c.get("deny", 0) for _, c in pairs)
    return null, gate, f"{ratios[mid]:.2f}", " ".join(f"{x:.2f}" for x in ratios)


def table(path):
    rows = [json.loads(l) for l in open(path) if l.strip()]
    meta = next((r for r in rows if r.get("kind") == "meta"), {})
    print(f"Run: {meta.get('date', '?')} on {meta.get('host', '?')}, {meta.get('cpus', '?')} CPUs, "
          f"load average before start {meta.get('loadavg', '?')}; mode {meta.get('mode', '?')}; "
          f"{meta.get('duration', '?')} per run, loadgen {meta.get('connections', '?')} connections x "
          f"{meta.get('inflight', '?')} in flight.")
    print()

    grpc = [r for r in rows if r.get("kind") == "grpc"]
    if grpc:
        print("### Check over loopback gRPC: cedar-gate vs the null server (100 scoped policies; "
              "`openai`: 100 scoped model policies and the AI guardrails)")
        print()
        print("| scenario | null req/s | cedar-gate req/s | ratio | null p50 / p99 / p99.9 µs | cedar-gate p50 / p99 / p99.9 µs | handler p50 / p99 µs | allow / deny | decision cache hit / miss | rounds: ratio each |")
        print("|---|---:|---:|---:|---|---|---|---|---|---|")
        for sc in dict.fromkeys(r["scenario"] for r in grpc):
            n, c, r_ratio, rounds = grpc_summary([r for r in grpc if r["scenario"] == sc])
            lat = lambda r: f"{fmt(r.get('p50_us'), 1)} / {fmt(r.get('p99_us'), 1)} / {fmt(r.get('p999_us'), 1)}"
            print(f"| {sc} | {fmt(n.get('rps'))} | {fmt(c.get('rps'))} | {r_ratio} | "
                  f"{lat(n)} | {lat(c)} | {fmt(c.get('handler_p50_us'), 1)} / {fmt(c.get('handler_p99_us'), 1)} | "
                  f"{c.get('allow', 0):,} / {c.get('deny', 0):,} | "
                  f"{c.get('cache_hits', 0):,} / {c.get('cache_misses', 0):,} | {rounds} |")
        print()

    scaling = [r for r in rows if r.get("kind") == "scaling"]
    if scaling:
        print("### Policy-count scaling (spiffe-distinct, every policy scoped to a group)")
        print()
        print("| policies | req/s | client p50 / p99 µs | handler p50 / p99 µs | allow / deny | load time s |")
        print("|---:|---:|---|---|---|---:|")
        for r in scaling:
            print(f"| {r['policies']:,} | {fmt(r.get('rps'))} | {fmt(r.get('p50_us'), 1)} / {fmt(r.get('p99_us'), 1)} | "
                  f"{fmt(r.get('handler_p50_us'), 1)} / {fmt(r.get('handler_p99_us'), 1)} | "
                  f"{r.get('allow', 0):,} / {r.get('deny', 0):,} | {fmt(r.get('load_s'), 1)} |")
        base = next((r for r in scaling if r["policies"] == min(x["policies"] for x in scaling)), None)
        top = next((r for r in scaling if r["policies"] == max(x["policies"] for x in scaling)), None)
        if base and top and base.get("handler_p50_us") and top.get("handler_p50_us"):
            print()
            print(f"Handler p50 at {top['policies']:,} / at {base['policies']:,} policies: "
                  f"{top['handler_p50_us'] / base['handler_p50_us']:.2f}x.")
        print()

    envoy = [r for r in rows if r.get("kind") == "envoy"]
    if envoy:
        print("### Through Envoy, closed loop (wrk, plain HTTP, an allowed POST, direct_response route)")
        print()
        print("Per configuration, the round with the median ratio against ext_authz → null; the last "
              "columns list every round (each round starts with another configuration). Connections opened: "
              "downstream connections Envoy accepted during the measured runs; wrk holds WRK_CONNS, so more "
              "means keep-alive was lost.")
        print()
        rounds = sorted({r.get("round", 1) for r in envoy})
        by = {(r["label"], r.get("round", 1)): r for r in envoy}
        print("| Envoy | req/s | p50 / p99 µs | non-2xx | connections opened (all rounds) | vs no ext_authz | vs ext_authz → null | rounds: vs ext_authz → null | rounds: req/s (load average) |")
        print("|---|---:|---|---:|---:|---:|---:|---|---|")
        for label in dict.fromkeys(r["label"] for r in envoy):
            per = []
            for rd in rounds:
                r, none, null = by.get((label, rd)), by.get(("no-ext-authz", rd)), by.get(("ext-authz-null", rd))
                if r and null and r.get("rps") and null.get("rps"):
                    per.append((r["rps"] / null["rps"], r, none or {}, null))
            if not per:
                continue
            per_sorted = sorted(per, key=lambda x: x[0])
            x, r, none, null = per_sorted[len(per_sorted) // 2]
            each_rps = " ".join(f"{fmt(p[1].get('rps'))} ({p[1].get('loadavg', '?')})" for p in per)
            print(f"| {label} | {fmt(r.get('rps'))} | {fmt(r.get('p50_us'), 1)} / {fmt(r.get('p99_us'), 1)} | "
                  f"{sum(p[1].get('non_2xx', 0) for p in per):,} | {fmt(sum(p[1]['connections'] for p in per)) if all('connections' in p[1] for p in per) else 'n/a'} | "
                  f"{ratio(r.get('rps'), none.get('rps'))} | {x:.2f} | "
                  f"{' '.join(f'{p[0]:.2f}' for p in per)} | "
                  f"{each_rps} |")
        print()

    open_rows = [r for r in rows if r.get("kind") == "open"]
    if open_rows:
        target = open_rows[0].get("target_rps")
        print(f"### Through Envoy, open loop (h2load --rps, {target:,} req/s in total, clients' starts "
              "staggered, an allowed POST)")
        print()
        print("| round | no ext_authz req/s, p50 / p99 / p99.9 µs | ext_authz → null req/s, p50 / p99 / p99.9 µs | "
              "ext_authz → cedar-gate req/s, p50 / p99 / p99.9 µs | p99 added by ext_authz → null µs | "
              "p99 added by cedar-gate (over null) µs | non-2xx | load average | share sent in bursts (≥ 10 / ms) |")
        print("|---|---|---|---|---:|---:|---:|---|---|")
        added, added_null, null_p99 = [], [], []
        by = {(r["label"], r.get("round", 1)): r for r in open_rows}
        diff = lambda a, b: a["p99_us"] - b["p99_us"] if a.get("p99_us") is not None and b.get("p99_us") is not None else None
        cell = lambda r: f"{fmt(r.get('rps'))}, {fmt(r.get('p50_us'))} / {fmt(r.get('p99_us'))} / {fmt(r.get('p999_us'))}"
        for rd in sorted({r.get("round", 1) for r in open_rows}):
            z = by.get(("no-ext-authz", rd), {})
            n, c = by.get(("ext-authz-null", rd), {}), by.get(("ext-authz-cedar-gate", rd), {})
            d, dn = diff(c, n), diff(n, z)
            if d is not None:
                added.append(d)
            if dn is not None:
                added_null.append(dn)
            if n.get("p99_us") is not None:
                null_p99.append(n["p99_us"])
            bad = sum(r.get("non_2xx", 0) for r in (z, n, c))
            loads = " / ".join(str(r.get("loadavg", "?")) for r in (z, n, c) if r)
            bursts = " / ".join(fmt(r.get("burst_share"), 2) for r in (z, n, c) if r)
            print(f"| {rd} | {cell(z)} | {cell(n)} | {cell(c)} | {fmt(dn)} | {fmt(d)} | {bad:,} | {loads} | {bursts} |")
        if added:
            print()
            # The spread of the null rounds' own p99 is the noise floor of the difference.
            spread = f"{fmt(min(null_p99))}–{fmt(max(null_p99))}" if null_p99 else "n/a"
            print(f"p99 added by cedar-gate over ext_authz → null at {target:,} req/s, median of the rounds: "
                  f"**{fmt(median(added))} µs** (rounds {' '.join(fmt(x) for x in added)}); ext_authz → null's "
                  f"own p99 over the rounds {spread} µs"
                  + (f"; ext_authz → null over no ext_authz, median {fmt(median(added_null))} µs." if added_null else "."))
        print()

    rss = [r for r in rows if r.get("kind") == "rss"]
    for r in rss:
        print("### Resident memory")
        print()
        print(f"cedar-gate with {r['policies']} policies: RSS {r['rss_start_mib']:.1f} MiB after start; "
              f"after {r['principals']:,} distinct principals ({r['requests']:,} checks in {r['elapsed_s']:.0f} s, "
              f"allow {r['allow']:,} / deny {r['deny']:,}): RSS {r['rss_end_mib']:.1f} MiB, peak (VmHWM) {r['hwm_mib']:.1f} MiB.")
        print()


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    cmd = sys.argv[1]
    if cmd == "handler" and len(sys.argv) == 4:
        print(json.dumps(handler(sys.argv[2], sys.argv[3])))
    elif cmd == "outcomes" and len(sys.argv) == 4:
        print(json.dumps(outcomes(sys.argv[2], sys.argv[3])))
    elif cmd == "expect-allow":
        sys.exit(expect_allow(sys.argv[2]))
    elif cmd == "wrk":
        print(json.dumps(wrk(sys.argv[2])))
    elif cmd == "h2load":
        print(json.dumps(h2load(*sys.argv[2:5])))
    elif cmd == "expect-2xx":
        sys.exit(expect_2xx(sys.argv[2]))
    elif cmd == "table":
        table(sys.argv[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
