#!/usr/bin/env python3
"""Renders and checks the Helm chart offline (no cluster, no helm binary).

Run by `make helm-test` inside the virtualenv that `make helm-venv` creates
(PyPI `helm-python-sdk` for rendering and linting, `kubernetes-validate` for the
Kubernetes schemas). What it proves:

1. `helm lint --strict` passes with the default values and with ci/full-values.yaml.
2. The chart renders with default values, with ci/full-values.yaml (policies, TLS,
   ServiceMonitor, HPA, PDB, NetworkPolicy, PrometheusRule) and with an existing
   ConfigMap.
3. Every rendered manifest passes `kubernetes-validate --strict -k 1.31.0`, except the
   Prometheus Operator CRDs (ServiceMonitor, PrometheusRule), whose schemas it does not
   carry: those are skipped there and checked here for their essential fields.
4. The policies, schema and entities from the values appear verbatim in the ConfigMap,
   and with default values the ConfigMap holds exactly the repository's cedar/ files.
5. `cedar-gate validate` accepts the policy directory extracted from every rendered
   ConfigMap, and `cedar-gate serve` starts (over TLS with the full values, using
   throwaway openssl certificates) with the rendered config and policies and answers
   /readyz 200.
6. The Deployment is hardened (non-root, read-only root, no capabilities, seccomp,
   probes on /healthz and /readyz, policy directory mounted without subPath), and the
   checksum annotation appears only when asked for.
7. A values file with a wrong type is rejected by values.schema.json.
8. The chart is self-contained: no symlinks, a README, a .helmignore and an icon, and its
   copies of the example policies, config and alert rules (files/) equal the repository's
   (`make chart-files` refreshes them).
9. A default install decides as `make run` does: the example policies, the example route
   table and a trust domain the example entities use.
10. ci/credentials-values.yaml: credential Secrets and the API key store are mounted whole
    (no subPath) where the rendered config reads them; a bad Secret name is refused.
11. The PDB renders only with more than one pod, with minAvailable or maxUnavailable; the
    headless Service option; extraVolumes/extraVolumeMounts/env/envFrom/extraArgs (the
    docs/tokens.md Kubernetes example, ci/tokens-values.yaml); ServiceMonitor relabelings;
    PrometheusRule disabled/overrides/runbookUrl/extraGroups, and the rendered rules pass
    `promtool check rules` when PROMTOOL names one.

Usage: check-chart.py [--cedar-gate PATH] [--kube-version 1.31.0]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import helm_python
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_yaml import load_all as load_all_unique  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "helm" / "cedar-gate"
FULL_VALUES = CHART / "ci" / "full-values.yaml"
TOKENS_VALUES = CHART / "ci" / "tokens-values.yaml"
CREDENTIALS_VALUES = CHART / "ci" / "credentials-values.yaml"
WRONG_TYPE_VALUES = ROOT / "helm" / "test-values" / "wrong-type.yaml"
RELEASE, NAMESPACE = "cg", "authz"
# Custom resources kubernetes-validate has no schema for.
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}

failures: list[str] = []


def check(ok: bool, what: str) -> None:
    print(f"  {'ok  ' if ok else 'FAIL'} {what}")
    if not ok:
        failures.append(what)


@contextlib.contextmanager
def quiet_stderr():
    """Helm's Go logger writes INFO lines (symlinked chart files) to fd 2; errors
    still arrive as exceptions and lint messages."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def load_values(path: Path) -> dict:
    return yaml.safe_load(path.read_text()) or {}


def render(values: dict) -> list[dict]:
    """Renders the chart and returns every manifest (documents of all templates)."""
    with quiet_stderr():
        out = helm_python.Chart.load(CHART).render(
            values, name=RELEASE, namespace=NAMESPACE, is_install=True
        )
    docs = []
    for path, text in sorted(out.items()):
        if path.endswith("NOTES.txt"):
            continue
        # Refuses duplicate keys: a template that writes one twice loses the first silently.
        for doc in load_all_unique(text):
            if doc:
                doc["__template"] = path
                docs.append(doc)
    return docs


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d.get("kind") == kind]


def policies_configmap(docs: list[dict]) -> dict | None:
    for d in by_kind(docs, "ConfigMap"):
        if d["metadata"]["name"].endswith("-policies"):
            return d
    return None


def kubernetes_validate(docs: list[dict], kube_version: str, label: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for i, doc in enumerate(docs):
            kind = doc["kind"]
            if kind in CRD_KINDS:
                print(f"  skip {label}: {kind} (CRD: kubernetes-validate has no schema for it)")
                continue
            body = {k: v for k, v in doc.items() if k != "__template"}
            path = Path(tmp) / f"{i:02d}-{kind}.yaml"
            path.write_text(yaml.safe_dump(body))
            files.append(path)
        result = subprocess.run(
            ["kubernetes-validate", "--strict", "-k", kube_version, *map(str, files)],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            print(result.stdout, result.stderr, sep="\n")
        kinds = ", ".join(sorted({p.stem.split("-", 1)[1] for p in files}))
        check(
            result.returncode == 0,
            f"{label}: kubernetes-validate --strict -k {kube_version} ({len(files)} manifests: {kinds})",
        )


def validate_policies(cm: dict, cedar_gate: Path, label: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in cm["data"].items():
            (Path(tmp) / name).write_text(text)
        result = subprocess.run(
            [str(cedar_gate), "validate", "--policy-dir", tmp], capture_output=True, text=True
        )
        if result.returncode != 0:
            print(result.stdout, result.stderr, sep="\n")
        check(result.returncode == 0, f"{label}: `cedar-gate validate` accepts the rendered policy files")


# Values whose content is a Kubernetes object or a free-form map: the schema types them
# as objects without listing their keys.
FREE_FORM = {"podSecurityContext", "securityContext", "resources", "livenessProbe",
             "readinessProbe", "startupProbe", "affinity", "nodeSelector", "podAnnotations",
             "podLabels", "policies"}


def undescribed(values: dict, schema: dict, path: str = "") -> list[str]:
    """Keys in values.yaml that values.schema.json does not describe."""
    missing = []
    props = schema.get("properties", {})
    for key, value in values.items():
        where = f"{path}.{key}" if path else key
        if key not in props:
            missing.append(where)
        elif isinstance(value, dict) and key not in FREE_FORM and "properties" in props[key]:
            missing += undescribed(value, props[key], where)
    return missing


def make_tls_files(dest: Path) -> None:
    """A throwaway CA and a server certificate for the paths the chart's TLS config names."""
    def run(*cmd: str) -> None:
        subprocess.run(cmd, check=True, capture_output=True, cwd=dest)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    run("openssl", "req", "-x509", *ec, "-days", "1", "-subj", "/CN=test CA",
        "-keyout", "ca.key", "-out", "ca.crt")
    run("openssl", "req", *ec, "-subj", "/CN=cedar-gate", "-keyout", "tls.key", "-out", "tls.csr")
    (dest / "ext.cnf").write_text("subjectAltName=DNS:cedar-gate\n")
    run("openssl", "x509", "-req", "-in", "tls.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "1", "-extfile", "ext.cnf", "-out", "tls.crt")


def serve_rendered(docs: list[dict], cedar_gate: Path, label: str) -> None:
    """Starts `cedar-gate serve` with the rendered config and policy ConfigMaps (TLS files
    replaced by throwaway ones) and waits for /readyz: the server accepts what the chart
    renders, not just the policies."""
    config_cm = next(d for d in by_kind(docs, "ConfigMap") if d["metadata"]["name"].endswith("-config"))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "policies").mkdir()
        for name, text in policies_configmap(docs)["data"].items():
            (tmp / "policies" / name).write_text(text)
        (tmp / "tls").mkdir()
        config = config_cm["data"]["cedar-gate.yaml"]
        if "/etc/cedar-gate/tls/" in config:
            make_tls_files(tmp / "tls")
            config = config.replace("/etc/cedar-gate/tls/", f"{tmp / 'tls'}/")
        (tmp / "config.yaml").write_text(config)
        log = open(tmp / "stderr.log", "w+")
        proc = subprocess.Popen(
            [str(cedar_gate), "serve", "--config", str(tmp / "config.yaml"),
             "--policy-dir", str(tmp / "policies"),
             "--grpc-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"],
            stdout=subprocess.DEVNULL, stderr=log,
        )
        ready, listening = False, None
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and proc.poll() is None and not ready:
                time.sleep(0.1)
                log.seek(0)
                for line in log.read().splitlines():
                    try:
                        event = json.loads(line)
                    except ValueError:
                        continue
                    if event.get("message") == "cedar-gate listening":
                        listening = event
                if listening:
                    try:
                        with urllib.request.urlopen(f"http://{listening['admin']}/readyz", timeout=2) as r:
                            ready = r.status == 200
                    except OSError:
                        pass
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        if not ready:
            log.seek(0)
            print(log.read())
        tls = " over TLS" if listening and listening.get("grpc_tls") else ""
        check(ready, f"{label}: `cedar-gate serve` starts{tls} with the rendered config and policies, /readyz 200")
        log.close()


def lint(values: dict, label: str, kube_version: str) -> list[dict]:
    with quiet_stderr():
        result = helm_python.lint(CHART, values, strict=True, kube_version=f"v{kube_version}")
    # Severity: 1 info, 2 warning, 3 error. Strict lint treats warnings as errors.
    bad = [m for m in result.get("messages", []) if m.get("severity", 0) >= 2]
    bad += [{"error": e} for e in result.get("errors", []) or []]
    return bad


def deployment_checks(docs: list[dict], label: str) -> dict:
    (dep,) = by_kind(docs, "Deployment")
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    sc, psc = c["securityContext"], pod["securityContext"]
    check(
        psc.get("runAsNonRoot") is True
        and psc.get("seccompProfile", {}).get("type") == "RuntimeDefault"
        and sc.get("readOnlyRootFilesystem") is True
        and sc.get("allowPrivilegeEscalation") is False
        and sc.get("capabilities", {}).get("drop") == ["ALL"],
        f"{label}: non-root, read-only root, no capabilities, seccomp RuntimeDefault",
    )
    check(
        c["livenessProbe"]["httpGet"]["path"] == "/healthz"
        and c["readinessProbe"]["httpGet"]["path"] == "/readyz",
        f"{label}: liveness on /healthz, readiness on /readyz",
    )
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    pol = mounts.get("/etc/cedar-gate/policies")
    check(
        pol is not None and "subPath" not in pol and "--policy-dir=/etc/cedar-gate/policies" in c["args"],
        f"{label}: policy ConfigMap mounted as a directory where cedar-gate watches it",
    )
    check(bool(pod.get("topologySpreadConstraints")), f"{label}: topology spread constraints")
    return dep


def crd_checks(docs: list[dict], rules_file: Path) -> None:
    (sm,) = by_kind(docs, "ServiceMonitor")
    ep = sm["spec"]["endpoints"][0]
    check(
        sm["apiVersion"] == "monitoring.coreos.com/v1" and ep["port"] == "http-admin" and ep["path"] == "/metrics",
        "ServiceMonitor scrapes the admin port's /metrics",
    )
    (svc,) = by_kind(docs, "Service")
    ports = {p["name"]: p for p in svc["spec"]["ports"]}
    check(
        ports["grpc"].get("appProtocol") == "grpc" and "http-admin" in ports,
        "Service has a `grpc` port (appProtocol grpc) and the admin port the ServiceMonitor names",
    )
    (pr,) = by_kind(docs, "PrometheusRule")
    shipped = yaml.safe_load(rules_file.read_text())["groups"]
    check(
        pr["apiVersion"] == "monitoring.coreos.com/v1" and pr["spec"]["groups"] == shipped,
        "PrometheusRule carries exactly deploy/prometheus/cedar-gate-rules.yaml",
    )


def chart_files_checks() -> None:
    links = [str(p.relative_to(CHART)) for p in CHART.rglob("*") if p.is_symlink()]
    check(not links, f"no symlinks in the chart directory {links or ''}")
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    check(
        (CHART / "README.md").is_file() and (CHART / ".helmignore").is_file() and bool(chart.get("icon")),
        "chart has README.md, .helmignore and an icon",
    )
    copies = {
        CHART / "files" / "cedar-gate.yaml": ROOT / "config" / "cedar-gate.yaml",
        CHART / "files" / "prometheus-rules.yaml": ROOT / "deploy" / "prometheus" / "cedar-gate-rules.yaml",
    }
    for src in (ROOT / "cedar").iterdir():
        if src.is_file() and (src.suffix == ".cedar" or src.name in ("schema.cedarschema", "entities.json")):
            copies[CHART / "files" / "examples" / src.name] = src
    stale = [str(c.relative_to(ROOT)) for c, src in copies.items() if not c.is_file() or c.read_bytes() != src.read_bytes()]
    extra = [str(p.relative_to(ROOT)) for p in (CHART / "files" / "examples").iterdir() if p not in copies]
    check(not stale and not extra, f"chart files/ equal the repository's (`make chart-files`) {stale + extra or ''}")


def decides_like_make_run(docs: list[dict]) -> None:
    config_cm = next(d for d in by_kind(docs, "ConfigMap") if d["metadata"]["name"].endswith("-config"))
    rendered = yaml.safe_load(config_cm["data"]["cedar-gate.yaml"])
    example = yaml.safe_load((ROOT / "config" / "cedar-gate.yaml").read_text())
    check(rendered.get("routes") == example["routes"], "default config carries the route table of config/cedar-gate.yaml")
    check(
        rendered["identity"]["trust_domains"] == example["identity"]["trust_domains"]
        and rendered["authorization"] == example["authorization"],
        "default trust domains and authorization settings are `make run`'s",
    )
    entities = json.loads((ROOT / "cedar" / "entities.json").read_text())
    domains = {
        e["uid"]["id"].split("/")[2]
        for e in entities
        if e["uid"]["type"] == "Workload" and e["uid"]["id"].startswith("spiffe://")
    }
    check(
        bool(domains) and domains <= set(rendered["identity"]["trust_domains"]),
        f"the example entities' trust domains {sorted(domains)} are accepted by the default config",
    )
    check(
        render({"config": {"routes": []}}) and yaml.safe_load(
            next(d for d in by_kind(render({"config": {"routes": []}}), "ConfigMap")
                 if d["metadata"]["name"].endswith("-config"))["data"]["cedar-gate.yaml"]
        )["routes"] == [],
        "`config.routes: []` replaces the example route table",
    )


def pdb_checks() -> None:
    def pdbs(values: dict) -> list[dict]:
        return by_kind(render(values), "PodDisruptionBudget")

    check(not pdbs({"replicaCount": 1}), "one replica: no PodDisruptionBudget")
    check(
        not pdbs({"autoscaling": {"enabled": True, "minReplicas": 1}}),
        "HPA with minReplicas 1: no PodDisruptionBudget",
    )
    (pdb,) = pdbs({"replicaCount": 3, "podDisruptionBudget": {"minAvailable": None, "maxUnavailable": "25%"}})
    check(
        pdb["spec"].get("maxUnavailable") == "25%" and "minAvailable" not in pdb["spec"],
        "podDisruptionBudget.maxUnavailable renders instead of minAvailable",
    )
    try:
        pdbs({"replicaCount": 3, "podDisruptionBudget": {"minAvailable": 2, "maxUnavailable": 1}})
        rejected = False
    except helm_python.HelmError:
        rejected = True
    check(rejected, "podDisruptionBudget with both minAvailable and maxUnavailable is refused")


def headless_checks(kube_version: str) -> None:
    docs = render({"service": {"headless": {"enabled": True}}})
    kubernetes_validate(docs, kube_version, "headless Service")
    svcs = {d["metadata"]["name"]: d for d in by_kind(docs, "Service")}
    headless = svcs.get("cg-cedar-gate-headless")
    check(
        headless is not None
        and headless["spec"].get("clusterIP") == "None"
        and [p["name"] for p in headless["spec"]["ports"]] == ["grpc"]
        and headless["spec"]["selector"] == svcs["cg-cedar-gate"]["spec"]["selector"],
        "service.headless.enabled adds a headless gRPC Service (clusterIP None) beside the ClusterIP one",
    )


def tokens_values_checks(kube_version: str, cedar_gate: Path) -> None:
    """The docs/tokens.md Kubernetes example, deployed with the chart as documented."""
    values = load_values(TOKENS_VALUES)
    bad = lint(values, "ci/tokens-values.yaml", kube_version)
    check(not bad, f"ci/tokens-values.yaml: helm lint --strict {bad or ''}")
    docs = render(values)
    kubernetes_validate(docs, kube_version, "tokens values")
    (dep,) = by_kind(docs, "Deployment")
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    config_cm = next(d for d in by_kind(docs, "ConfigMap") if d["metadata"]["name"].endswith("-config"))
    config = yaml.safe_load(config_cm["data"]["cedar-gate.yaml"])
    mounts = {m["mountPath"].rstrip("/"): m["name"] for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    files = [i.get("ca_file") or i.get("jwks_file") for i in config["identity"]["issuers"]]
    mounted = all(
        f and any(f.startswith(m + "/") and volumes.get(n) for m, n in mounts.items()) for f in files
    )
    check(mounted, f"every issuer file the config names ({files}) lies on a mounted volume (extraVolumes)")
    check(
        any(v.get("configMap", {}).get("name") == "kube-root-ca.crt" for v in volumes.values()),
        "the service-account CA comes from the kube-root-ca.crt ConfigMap",
    )
    env_names = [e["name"] for e in c.get("env", [])]
    check(
        env_names == [e["name"] for e in values["env"] + values["extraEnv"]]
        and c.get("envFrom") == values["envFrom"],
        "env (then extraEnv) and envFrom reach the container",
    )
    (dep,) = by_kind(render({"extraArgs": ["--policy-dir=/elsewhere"]}), "Deployment")
    args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
    check(args[0] == "serve" and args[-1] == "--policy-dir=/elsewhere", "extraArgs are appended to `cedar-gate serve`")
    validate_policies(policies_configmap(docs), cedar_gate, "tokens values")


def credentials_values_checks(kube_version: str) -> None:
    """docs/credentials.md deployed with the chart: credential Secrets and the key store."""
    values = load_values(CREDENTIALS_VALUES)
    bad = lint(values, "ci/credentials-values.yaml", kube_version)
    check(not bad, f"ci/credentials-values.yaml: helm lint --strict {bad or ''}")
    docs = render(values)
    kubernetes_validate(docs, kube_version, "credentials values")
    (dep,) = by_kind(docs, "Deployment")
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    mounts = {m["mountPath"].rstrip("/"): m for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    config_cm = next(d for d in by_kind(docs, "ConfigMap") if d["metadata"]["name"].endswith("-config"))
    config = yaml.safe_load(config_cm["data"]["cedar-gate.yaml"])

    def secret_of(path: str) -> dict | None:
        for m, mount in mounts.items():
            if path.startswith(m + "/") and "subPath" not in mount:
                return volumes.get(mount["name"], {}).get("secret")
        return None

    files = [c["file"] for c in config["provider_credentials"]["credentials"]]
    check(
        all(secret_of(f) for f in files),
        f"every credential file ({files}) lies on a whole mounted Secret (no subPath: `..data` swaps)",
    )
    check(
        [secret_of(f)["secretName"] for f in files] == ["openai-research", "anthropic"]
        and secret_of(files[1]).get("optional") is True,
        "providerCredentials.secrets name the Secrets (optional passes through)",
    )
    store = config.get("api_keys", {}).get("store", "")
    check(
        store == "/etc/cedar-gate/keys/keys.json"
        and (secret_of(store) or {}).get("secretName") == "cedar-gate-api-keys"
        and config["api_keys"].get("max_lifetime_seconds") == 7776000,
        "apiKeys mounts the store Secret and sets config.api_keys.store (other api_keys settings kept)",
    )
    check(
        all(m.get("readOnly") for p, m in mounts.items() if p.startswith("/etc/cedar-gate/")),
        "credential and key store mounts are read-only",
    )
    try:
        render({"apiKeys": {"enabled": True}})
        check(False, "apiKeys.enabled without secretName is refused")
    except Exception:  # noqa: BLE001 - helm's render error
        check(True, "apiKeys.enabled without secretName is refused")
    try:
        render({"providerCredentials": {"secrets": [{"name": "Bad_Name", "secretName": "x"}]}})
        check(False, "a credential Secret name that is not a DNS label is refused by the schema")
    except Exception:  # noqa: BLE001
        check(True, "a credential Secret name that is not a DNS label is refused by the schema")


def prometheus_rule_checks(kube_version: str) -> None:
    values = {
        "prometheusRule": {
            "enabled": True,
            "disabled": ["CedarGateHighDenyRate"],
            "overrides": {"CedarGateSlowChecks": {"for": "30m", "labels": {"severity": "info"}}},
            "runbookUrl": "https://runbooks.example.com/cedar-gate",
            "extraGroups": [{"name": "mine", "rules": [{"alert": "Mine", "expr": "vector(1) > 2"}]}],
        },
        "serviceMonitor": {
            "enabled": True,
            "relabelings": [{"targetLabel": "cluster", "replacement": "prod-eu"}],
            "metricRelabelings": [{"sourceLabels": ["__name__"], "regex": "cedar_gate_check_duration_seconds_bucket", "action": "drop"}],
        },
    }
    docs = render(values)
    (pr,) = by_kind(docs, "PrometheusRule")
    rules = {r.get("alert") or r.get("record"): r for g in pr["spec"]["groups"] for r in g["rules"]}
    check("CedarGateHighDenyRate" not in rules and "Mine" in rules, "prometheusRule.disabled drops, extraGroups adds")
    slow = rules["CedarGateSlowChecks"]
    check(
        slow["for"] == "30m" and slow["labels"]["severity"] == "info" and "expr" in slow,
        "prometheusRule.overrides merges over the shipped rule",
    )
    check(
        all(r["annotations"].get("runbook_url", "").startswith("https://runbooks.example.com/cedar-gate#")
            for name, r in rules.items() if "alert" in r and name != "Mine"),
        "prometheusRule.runbookUrl sets every shipped alert's runbook_url",
    )
    (sm,) = by_kind(docs, "ServiceMonitor")
    ep = sm["spec"]["endpoints"][0]
    check(
        ep.get("relabelings") == values["serviceMonitor"]["relabelings"]
        and ep.get("metricRelabelings") == values["serviceMonitor"]["metricRelabelings"],
        "ServiceMonitor takes relabelings and metricRelabelings",
    )
    promtool = os.environ.get("PROMTOOL", "")
    if promtool:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "rules.yaml"
            path.write_text(yaml.safe_dump({"groups": pr["spec"]["groups"]}))
            result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
            if result.returncode != 0:
                print(result.stdout, result.stderr, sep="\n")
            check(result.returncode == 0, "the tuned PrometheusRule groups pass `promtool check rules`")
    else:
        print("  skip promtool check of the rendered rules (no promtool; see `make rules-test`)")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cedar-gate", type=Path, default=ROOT / "target" / "debug" / "cedar-gate")
    ap.add_argument("--kube-version", default="1.31.0")
    args = ap.parse_args()
    if not args.cedar_gate.is_file():
        print(f"{args.cedar_gate}: not built (cargo build)", file=sys.stderr)
        return 2
    helm_python.disable_logging()

    print("lint")
    full_values = load_values(FULL_VALUES)
    for values, label in [({}, "default values"), (full_values, "ci/full-values.yaml")]:
        bad = lint(values, label, args.kube_version)
        for m in bad:
            print(f"    {m}")
        check(not bad, f"{label}: helm lint --strict")

    print("chart directory")
    chart_files_checks()

    print("default values")
    docs = render({})
    kubernetes_validate(docs, args.kube_version, "default values")
    kinds = sorted({d["kind"] for d in docs})
    check(
        kinds == ["ConfigMap", "Deployment", "Pod", "PodDisruptionBudget", "Service", "ServiceAccount"],
        f"default values render the expected kinds ({', '.join(kinds)})",
    )
    cm = policies_configmap(docs)
    examples = {
        p.name: p.read_text()
        for p in (ROOT / "cedar").iterdir()
        if p.is_file() and (p.suffix == ".cedar" or p.name in ("schema.cedarschema", "entities.json"))
    }
    check(cm is not None and cm["data"] == examples, "default policy ConfigMap holds exactly cedar/")
    validate_policies(cm, args.cedar_gate, "default values")
    decides_like_make_run(docs)
    serve_rendered(docs, args.cedar_gate, "default values")
    dep = deployment_checks(docs, "default values")
    annotations = dep["spec"]["template"]["metadata"]["annotations"]
    check(
        "checksum/config" in annotations and "checksum/policies" not in annotations,
        "policies hot-reload by default (no checksum/policies), config changes roll the pods",
    )
    (test_pod,) = by_kind(docs, "Pod")
    check(
        test_pod["metadata"]["annotations"].get("helm.sh/hook") == "test"
        and test_pod["spec"]["containers"][0]["args"][0] == "validate",
        "helm test hook Pod runs `cedar-gate validate`",
    )

    print("ci/full-values.yaml (policies, TLS, ServiceMonitor, HPA, PDB, NetworkPolicy, PrometheusRule)")
    docs = render(full_values)
    kubernetes_validate(docs, args.kube_version, "full values")
    kinds = {d["kind"] for d in docs}
    check(
        {"HorizontalPodAutoscaler", "NetworkPolicy", "ServiceMonitor", "PrometheusRule"} <= kinds,
        "optional resources rendered",
    )
    cm = policies_configmap(docs)
    data = cm["data"]
    verbatim = all(
        data.get(name if name.endswith(".cedar") else f"{name}.cedar") == text
        for name, text in full_values["policies"].items()
    )
    check(verbatim and len([n for n in data if n.endswith(".cedar")]) == len(full_values["policies"]),
          "every policy from values appears verbatim in the ConfigMap (and nothing else)")
    check(data.get("entities.json") == full_values["entities"], "entities from values appear verbatim")
    check(data.get("schema.cedarschema") == examples["schema.cedarschema"], "default schema is cedar/schema.cedarschema")
    validate_policies(cm, args.cedar_gate, "full values")
    if shutil.which("openssl"):
        serve_rendered(docs, args.cedar_gate, "full values")
    else:
        print("  skip full values: `cedar-gate serve` (openssl not installed for test certificates)")
    dep = deployment_checks(docs, "full values")
    check("replicas" not in dep["spec"], "with the HPA on, the Deployment leaves replicas to it")
    config_cm = next(d for d in by_kind(docs, "ConfigMap") if d["metadata"]["name"].endswith("-config"))
    config = yaml.safe_load(config_cm["data"]["cedar-gate.yaml"])
    check(
        config["server"]["tls"]
        == {
            "cert_file": "/etc/cedar-gate/tls/tls.crt",
            "key_file": "/etc/cedar-gate/tls/tls.key",
            "client_ca_file": "/etc/cedar-gate/tls/ca.crt",
            "reload_interval_seconds": 10,
        },
        "TLS values become server.tls in cedar-gate's config, with the Secret mounted",
    )
    crd_checks(docs, CHART / "files" / "prometheus-rules.yaml")
    annotations = dep["spec"]["template"]["metadata"]["annotations"]
    changed = dict(full_values, policies=dict(full_values["policies"], extra="// nothing\n"))
    (dep2,) = by_kind(render(changed), "Deployment")
    check(
        "checksum/policies" in annotations
        and dep2["spec"]["template"]["metadata"]["annotations"]["checksum/policies"] != annotations["checksum/policies"],
        "rollOnPolicyChange: a policy change changes the pod template (rolls the pods)",
    )

    print("PodDisruptionBudget, headless Service")
    pdb_checks()
    headless_checks(args.kube_version)

    print("ci/tokens-values.yaml (docs/tokens.md: Kubernetes service-account tokens)")
    tokens_values_checks(args.kube_version, args.cedar_gate)

    print("ci/credentials-values.yaml (docs/credentials.md: provider credentials, API keys)")
    credentials_values_checks(args.kube_version)

    print("PrometheusRule and ServiceMonitor tuning")
    prometheus_rule_checks(args.kube_version)

    print("existingConfigMap")
    docs = render({"existingConfigMap": "my-policies"})
    kubernetes_validate(docs, args.kube_version, "existingConfigMap")
    (dep,) = by_kind(docs, "Deployment")
    vols = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
    check(
        policies_configmap(docs) is None and vols["policies"]["configMap"]["name"] == "my-policies",
        "existingConfigMap: no policy ConfigMap rendered, the named one is mounted",
    )

    print("schema")
    missing = undescribed(load_values(CHART / "values.yaml"), json.loads((CHART / "values.schema.json").read_text()))
    check(not missing, f"values.schema.json describes every value in values.yaml {missing or ''}")
    wrong = load_values(WRONG_TYPE_VALUES)
    try:
        render(wrong)
        rejected, message = False, "rendered"
    except helm_python.HelmError as e:
        rejected, message = True, str(e)
    check(
        rejected and "/replicaCount" in message and "/policies/broken" in message,
        "helm/test-values/wrong-type.yaml rejected by values.schema.json, naming both wrong values",
    )
    print("    " + message.strip().replace("\n", "\n    "))
    check(bool(lint(wrong, "wrong-type", args.kube_version)), "helm lint --strict rejects wrong-type values too")
    for key, value in [("replicaCount", "2"), ("unknownKey", 1), ("config", {"server": {"tls": {}}})]:
        try:
            render({key: value})
            rejected = False
        except helm_python.HelmError:
            rejected = True
        check(rejected, f"schema rejects {key}: {json.dumps(value)}")

    if failures:
        print(f"\n{len(failures)} chart check(s) failed:", *failures, sep="\n  ")
        return 1
    print("\nchart OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
