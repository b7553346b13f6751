#!/usr/bin/env python3
"""Reads callgrind results for scripts/check_stages.sh and writes its tables.

    stages_report.py stages LABEL PASS ITERS ANNOTATE_FILE   -> one JSON line
    stages_report.py server LABEL SCENARIO INSTRUCTIONS LOADGEN_JSON -> one JSON line
    stages_report.py table RESULTS_JSONL                      -> Markdown tables
"""

import json
import re
import sys

# `callgrind_annotate --inclusive=yes` lines: "1,234,567 (12.34%)  check_stages::stage_01_decode [...]"
STAGE_LINE = re.compile(r"^\s*([\d,]+)\s.*\bcheck_stages::(stage_\d\d_\w+)")

# Columns of the per-stage table: label -> heading.
COLUMNS = {
    "hit": "hit (SPIFFE, repeat)",
    "spiffe-cold": "SPIFFE cold",
    "jwt-cold": "JWT cold (new token)",
    "jwt-hit": "JWT hit",
    "openai-cold": "OpenAI body cold",
    "openai-hit": "OpenAI body hit",
    "mcp-cold": "MCP body cold",
    "mcp-hit": "MCP body hit",
    "spiffe-principal": "SPIFFE known principal, new question",
    "jwt-principal": "JWT known principal, new question",
}


def stages(label, pass_, iters, path):
    found = {}
    with open(path) as f:
        for line in f:
            m = STAGE_LINE.match(line)
            if m:
                # The first (largest) line per function is its inclusive total.
                found.setdefault(m.group(2), int(m.group(1).replace(",", "")))
    per = {k: round(v / int(iters)) for k, v in sorted(found.items())}
    print(json.dumps({"kind": "stages", "label": label, "pass": pass_, "iters": int(iters), "stages": per}))


def server(label, scenario, total, run):
    r = json.loads(run)
    n = r.get("requests", 0)
    print(json.dumps({
        "kind": "server", "label": label, "scenario": scenario, "instructions": int(total),
        "requests": n, "per_check": round(int(total) / n) if n else None,
        "allow": r.get("allow"), "deny": r.get("deny"), "grpc_status": r.get("grpc_status"),
    }))


def fmt(v):
    return "" if v is None else f"{v:,}"


def table(path):
    rows = [json.loads(l) for l in open(path) if l.strip()]
    st = {r["label"]: r for r in rows if r["kind"] == "stages"}
    labels = [l for l in COLUMNS if l in st]
    out = []
    if labels:
        out.append("#### Instructions per Check, by stage (callgrind, in process, `examples/check_stages.rs`)\n")
        out.append("| stage | " + " | ".join(COLUMNS[l] for l in labels) + " |")
        out.append("|---|" + "---:|" * len(labels))

        def g(l, k):
            return st[l]["stages"].get(k)

        def cold(l):
            # `principal`: questions never asked, from principals seen before.
            return st[l]["pass"] in ("cold", "principal")

        def row(name, f):
            vals = []
            for l in labels:
                try:
                    vals.append(f(l))
                except TypeError:
                    vals.append(None)
            out.append(f"| {name} | " + " | ".join(fmt(v) for v in vals) + " |")

        # stage 06 was the Cedar request (the cache key before issue 17), now the raw key.
        for l in labels:
            if "stage_06_cedar_request" in st[l]["stages"]:
                st[l]["stages"]["stage_06_cache_key"] = st[l]["stages"].pop("stage_06_cedar_request")
        gate_parts = ["stage_04_classify", "stage_05_identity", "stage_06_cache_key", "stage_07_decision_cache"]
        row("decode (protobuf, `prost`)", lambda l: g(l, "stage_01_decode"))
        row("request conversion (without canonicalisation)", lambda l: g(l, "stage_02_convert") - g(l, "stage_03_canonicalise"))
        row("canonicalisation (path, host)", lambda l: g(l, "stage_03_canonicalise"))
        row("identity (SPIFFE id; token: verify or token cache)", lambda l: g(l, "stage_05_identity"))
        row("classification (routes, body)", lambda l: g(l, "stage_04_classify"))
        row("cache key (before issue 17: the whole Cedar request)", lambda l: g(l, "stage_06_cache_key"))
        row("cache lookup (a miss: + Cedar request + insert)", lambda l: g(l, "stage_07_decision_cache") - (g(l, "stage_08_evaluate") if cold(l) else 0))
        row("evaluation (Cedar, on a miss)", lambda l: g(l, "stage_08_evaluate") if cold(l) else None)
        row("`Gate::check` bookkeeping (decision id, names, summary)",
            lambda l: g(l, "stage_09_gate") - sum(g(l, k) for k in gate_parts))
        row("response build", lambda l: g(l, "stage_10_response"))
        row("encode (protobuf)", lambda l: g(l, "stage_11_encode"))
        row("audit on the request path (before issue 17: event + JSON line; after: hand-off)", lambda l: g(l, "stage_12_audit"))
        row("metrics", lambda l: g(l, "stage_13_metrics"))
        row("**sum of the stages**", lambda l: sum(g(l, k) for k in [
            "stage_01_decode", "stage_02_convert", "stage_09_gate", "stage_10_response",
            "stage_11_encode", "stage_12_audit", "stage_13_metrics"]))
        row("**whole handler** (`AuthzService::check`) + decode + encode",
            lambda l: g(l, "stage_99_handler") + g(l, "stage_01_decode") + g(l, "stage_11_encode"))
        out.append("")
    srv = [r for r in rows if r["kind"] == "server"]
    if srv:
        out.append("#### Instructions per Check, whole server process (callgrind, loopback gRPC, `loadgen`)\n")
        out.append("| scenario | null server | cedar-gate | cedar-gate − null | null / cedar-gate | cedar-gate allow / deny |")
        out.append("|---|---:|---:|---:|---:|---|")
        null = {r["scenario"]: r for r in srv if r["label"] == "null"}
        for r in srv:
            if r["label"] == "null":
                continue
            n = null.get(r["scenario"], {}).get("per_check")
            c = r["per_check"]
            ratio = f"{n / c:.2f}" if n and c else ""
            diff = fmt(c - n) if n and c else ""
            out.append(f"| {r['scenario']} | {fmt(n)} | {fmt(c)} | {diff} | {ratio} | {r['allow']} / {r['deny']} |")
        out.append("")
    print("\n".join(out))


def main():
    mode, *args = sys.argv[1:]
    {"stages": stages, "server": server, "table": table}[mode](*args)


if __name__ == "__main__":
    main()
