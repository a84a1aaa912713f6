"""deploy/ checked structurally: no container engine runs here, so the files are
parsed and their cross-references (labels, ports, secrets, metrics) verified."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from router.config import parse_config
from router.telemetry.metrics import Metrics

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _k8s() -> dict[str, dict[str, Any]]:
    docs: dict[str, dict[str, Any]] = {}
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            assert {"apiVersion", "kind", "metadata"} <= set(doc), path
            docs.setdefault(doc["kind"], doc)  # the router's, for the kinds it has
            docs[f"{doc['kind']}/{doc['metadata']['name']}"] = doc
    return docs


@pytest.fixture(scope="module")
def k8s() -> dict[str, dict[str, Any]]:
    return _k8s()


def test_every_kind_an_operator_needs_is_there(k8s: dict[str, dict[str, Any]]) -> None:
    assert {
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "ConfigMap",
        "Deployment/payrouter-drainer",
        "Job/payrouter-db-migrate",
    } <= set(k8s)


def test_the_drainer_and_the_migration_run_the_image_on_the_same_config_and_secrets(
    k8s: dict[str, dict[str, Any]],
) -> None:
    config = _configmap_config(k8s)
    assert config.ledger is not None
    assert (config.ledger.kind, config.ledger.drain) == ("postgres", "external")
    router = k8s["Deployment/payrouter"]["spec"]["template"]["spec"]["containers"][0]
    for name, command in (
        ("Deployment/payrouter-drainer", ["drain"]),
        ("Job/payrouter-db-migrate", ["db", "migrate"]),
    ):
        pod = k8s[name]["spec"]["template"]["spec"]
        container = pod["containers"][0]
        assert container["args"][: len(command)] == command
        assert container["args"][-2:] == ["--config", "/etc/payrouter/router.yaml"]
        assert container["image"] == router["image"]
        assert container["envFrom"] == router["envFrom"]
        assert pod["volumes"] == k8s["Deployment/payrouter"]["spec"]["template"]["spec"]["volumes"]
        assert pod["securityContext"]["runAsNonRoot"] is True


def test_the_deployment_probes_runs_unprivileged_and_drains_in_flight_calls(
    k8s: dict[str, dict[str, Any]],
) -> None:
    spec = k8s["Deployment"]["spec"]["template"]["spec"]
    container = spec["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["resources"]["requests"]
    assert container["resources"]["limits"]
    config = _configmap_config(k8s)
    assert spec["terminationGracePeriodSeconds"] > config.payments.deadline_s
    # a rolling deploy: out of the endpoints (preStop), not ready while still
    # serving (drain), calls in flight finish (timeout): all inside the grace period
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    assert config.server.shutdown_drain_s > 0
    assert spec["terminationGracePeriodSeconds"] > (
        float(pre_stop[1]) + config.server.shutdown_drain_s + config.server.shutdown_timeout_s
    )
    assert config.server.shutdown_timeout_s >= config.payments.deadline_s
    strategy = k8s["Deployment"]["spec"]["strategy"]["rollingUpdate"]
    assert strategy["maxUnavailable"] == 0


def test_service_pdb_and_hpa_point_at_the_deployment(k8s: dict[str, dict[str, Any]]) -> None:
    deployment = k8s["Deployment"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    ports = {p["name"] for p in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]}
    service = k8s["Service"]["spec"]
    assert service["selector"].items() <= labels.items()
    assert all(p["targetPort"] in ports for p in service["ports"])
    assert k8s["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert k8s["PodDisruptionBudget"]["spec"]["minAvailable"] < deployment["spec"]["replicas"]
    target = k8s["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])


def _env_names(text: str) -> set[str]:
    return set(re.findall(r"\{env: ([A-Z_][A-Z0-9_]*)\}", text))


def _configmap_config(k8s: dict[str, dict[str, Any]]) -> Any:
    text = k8s["ConfigMap"]["data"]["router.yaml"]
    return parse_config(text, "configmap", environ=dict.fromkeys(_env_names(text), "ab" * 32))


def test_the_configmap_validates_and_every_secret_it_names_is_generated(
    k8s: dict[str, dict[str, Any]],
) -> None:
    text = k8s["ConfigMap"]["data"]["router.yaml"]
    config = _configmap_config(k8s)
    assert config.store.kind == "redis"
    assert "Secret" not in k8s  # no secret ships, not even an empty one
    kustomization = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    assert listed == {p.name for p in (DEPLOY / "k8s").glob("*.yaml")} - {"kustomization.yaml"}
    (generated,) = kustomization["secretGenerator"]
    assert generated["envs"] == ["secrets.env"]
    assert not (DEPLOY / "k8s" / "secrets.env").exists()
    documented = set(
        re.findall(
            r"^#\s+([A-Z][A-Z0-9_]+)\s", (DEPLOY / "k8s" / "kustomization.yaml").read_text(), re.M
        )
    )
    assert _env_names(text) == documented
    env_from = k8s["Deployment"]["spec"]["template"]["spec"]["containers"][0]["envFrom"]
    assert {"secretRef": {"name": generated["name"]}} in env_from


def test_metrics_are_scraped_on_their_own_port_which_the_service_does_not_expose(
    k8s: dict[str, dict[str, Any]],
) -> None:
    config = _configmap_config(k8s)
    template = k8s["Deployment"]["spec"]["template"]
    assert template["metadata"]["annotations"]["prometheus.io/port"] == str(
        config.server.metrics.port
    )
    service_ports = {p["targetPort"] for p in k8s["Service"]["spec"]["ports"]}
    assert service_ports == {"http"}


def _shipped_configs() -> list[Path]:
    root = DEPLOY.parent
    return [root / "config" / "production.example.yaml", DEPLOY / "compose" / "router.yaml"]


def test_no_shipped_config_carries_a_usable_key() -> None:
    """Only the demo's test key is ever written out, and only in configs whose
    every acquirer is a sandbox: nothing a live deployment could accept."""
    from router.known_keys import DEMO_API_KEY, _sha256

    texts = [p.read_text() for p in _shipped_configs()]
    texts.append(
        yaml.safe_load((DEPLOY / "k8s" / "configmap.yaml").read_text())["data"]["router.yaml"]
    )
    for text in texts:
        for found in re.findall(r"\b[0-9a-f]{64}\b", text):
            assert found == _sha256(DEMO_API_KEY), found
            config = parse_config(text, "x", environ=dict.fromkeys(_env_names(text), "ab" * 32))
            assert not config.live
            assert {a.kind for a in config.acquirers.values()} == {"sandbox"}


def test_compose_runs_two_routers_on_a_durable_redis_with_monitoring() -> None:
    compose = yaml.safe_load((DEPLOY / "compose" / "docker-compose.yaml").read_text())
    services = compose["services"]
    assert {
        "router-1",
        "router-2",
        "redis",
        "postgres",
        "migrate",
        "drainer",
        "sandbox-a",
        "sandbox-b",
        "prometheus",
        "grafana",
    } <= set(services)
    for name in ("router-1", "router-2"):
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy"
    redis_cmd = " ".join(services["redis"]["command"])
    assert "--appendonly yes" in redis_cmd
    assert "noeviction" in redis_cmd
    prometheus = yaml.safe_load((DEPLOY / "compose" / "prometheus.yml").read_text())
    targets = prometheus["scrape_configs"][0]["static_configs"][0]["targets"]
    assert {t.split(":")[0] for t in targets} == {"router-1", "router-2"}
    for volume in services["grafana"]["volumes"]:
        source = volume.split(":")[0]
        assert (DEPLOY / "compose" / source).resolve().exists(), source
    router_config = (DEPLOY / "compose" / "router.yaml").read_text()
    compose_env = services["router-1"]["environment"]
    assert _env_names(router_config) <= set(compose_env)
    parsed = parse_config(
        router_config, "compose router.yaml", environ=dict.fromkeys(compose_env, "ab" * 32)
    )
    assert set(parsed.acquirers) == {"sandbox-a", "sandbox-b"}
    urls = {a.base_url for a in parsed.acquirers.values()}
    assert urls == {"http://sandbox-a:9101", "http://sandbox-b:9102"}


def test_the_image_is_slim_non_root_and_health_checked() -> None:
    lines = [line.strip() for line in (DEPLOY / "Dockerfile").read_text().splitlines()]
    stages = [line for line in lines if line.startswith("FROM ")]
    assert stages[-1].startswith("FROM python:3.11-slim")
    user = next(line for line in lines if line.startswith("USER "))
    assert not user.split()[1].startswith(("0", "root"))
    assert any(line.startswith("HEALTHCHECK") for line in lines)
    assert not any(re.search(r"(?i)(secret|password|api_key)\s*=", line) for line in lines)


def test_every_metric_the_dashboard_queries_exists() -> None:
    metrics = Metrics()
    metrics.watch(lambda: SimpleNamespace(acquirers={}, version="x"))  # type: ignore[arg-type,return-value]
    exposed = set(re.findall(r"^# TYPE (\S+) ", metrics.exposition().decode(), re.M))
    suffixes = ("_total", "_bucket", "_sum", "_count", "_info")
    dashboard = json.loads((DEPLOY / "grafana" / "payrouter-dashboard.json").read_text())
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"payrouter_[a-z_]+", target["expr"])
    }
    assert queried
    for name in queried:
        base = next((name[: -len(s)] for s in suffixes if name.endswith(s)), name)
        assert name in exposed or base in exposed, name


def test_each_role_of_the_image_has_a_health_check_that_fits_it() -> None:
    """The image's HEALTHCHECK asks PAYROUTER_HEALTH_URL (default: the router's
    /healthz on 8080): a sandbox says where it listens, and a role without a
    listener turns the check off, so no container is reported unhealthy for
    being what it is."""
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert 'CMD ["payrouter", "health"]' in dockerfile
    services = yaml.safe_load((DEPLOY / "compose" / "docker-compose.yaml").read_text())["services"]
    built = {name: s for name, s in services.items() if "build" in s}
    assert len(built) >= 6
    for name, service in built.items():
        command = service["command"]
        url = (service.get("environment") or {}).get("PAYROUTER_HEALTH_URL")
        if command[0] == "serve":
            assert url is None, name  # the default: /healthz on the router's port 8080
            assert any(port.endswith(":8080") for port in service["ports"]), name
        elif command[0] == "sandbox":
            port = command[command.index("--port") + 1]
            assert url == f"http://127.0.0.1:{port}/health", name
        else:
            assert service["healthcheck"] == {"disable": True}, name


def test_make_bench_leaves_the_working_tree_clean() -> None:
    """Only bench-publish (``--publish``) writes into the tree; a plain run
    writes to benchmarks/out/, which git ignores."""
    root = DEPLOY.parent
    recipes: dict[str, list[str]] = {}
    target = ""
    for line in (root / "Makefile").read_text().splitlines():
        if line and not line.startswith(("\t", "#", " ")) and ":" in line:
            target = line.split(":", 1)[0]
        elif line.startswith("\t"):
            recipes.setdefault(target, []).append(line)
    assert not any("--publish" in line for line in recipes["bench"])
    assert any("--publish" in line for line in recipes["bench-publish"])
    assert "benchmarks/out/" in (root / ".gitignore").read_text().splitlines()
