"""The rendered objects point at each other correctly, and each overlay has the shape it claims."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from service.contract.amqp import Topology
from tests.deploy.kustomize import KUSTOMIZATION_FILE, Manifest
from tests.deploy.manifests import (
    ADMIN_PORT,
    DEPLOY,
    HTTP_PORT,
    OVERLAYS,
    RELAY,
    SECRET,
    SECRET_TEMPLATE,
    find,
    relay_config,
    relay_container,
    relay_deployment,
    rendered,
    secret_template,
    yaml_files_under,
)

# MsgFlash allows 10 requests/s per API key, shared by all replicas through Redis: replicas
# beyond a handful add nothing (base/scaledobject.yaml explains the arithmetic).
MAX_SENSIBLE_REPLICAS = 6


def _pod_labels(overlay: str) -> dict[str, str]:
    return dict(relay_deployment(overlay)["spec"]["template"]["metadata"]["labels"])


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _scaled_object(overlay: str) -> Manifest:
    return find(rendered(overlay), "ScaledObject", RELAY)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_service_pdb_and_network_policy_select_the_relay_pods(overlay: str) -> None:
    objects, labels = rendered(overlay), _pod_labels(overlay)
    assert _selects(find(objects, "Service", RELAY)["spec"]["selector"], labels)
    pdb = find(objects, "PodDisruptionBudget", RELAY)
    assert _selects(pdb["spec"]["selector"]["matchLabels"], labels)
    policy = find(objects, "NetworkPolicy", RELAY)
    assert _selects(policy["spec"]["podSelector"]["matchLabels"], labels)
    selector = relay_deployment(overlay)["spec"]["selector"]["matchLabels"]
    assert _selects(selector, labels)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_service_ports_reach_the_containers_public_and_admin_ports(overlay: str) -> None:
    ports = {p["name"]: p for p in find(rendered(overlay), "Service", RELAY)["spec"]["ports"]}
    container_ports = {p["name"]: p["containerPort"] for p in relay_container(overlay)["ports"]}
    config = relay_config(overlay)
    for name, number, variable in (
        ("http", HTTP_PORT, "RELAY_HTTP_PORT"),
        ("admin", ADMIN_PORT, "RELAY_ADMIN_PORT"),
    ):
        assert ports[name]["port"] == number
        assert container_ports[ports[name]["targetPort"]] == number
        assert int(config[variable]) == number


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policy_admits_the_public_port_and_the_admin_port_from_monitoring_only(
    overlay: str,
) -> None:
    spec = find(rendered(overlay), "NetworkPolicy", RELAY)["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    rules = {p["port"]: rule for rule in spec["ingress"] for p in rule["ports"]}
    assert set(rules) == {"http", "admin"}
    assert "from" not in rules["http"]
    (source,) = rules["admin"]["from"]
    assert source == {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}
    }
    egress = {(p["port"], p["protocol"]) for rule in spec["egress"] for p in rule["ports"]}
    needed = {(5672, "TCP"), (6379, "TCP"), (53, "UDP"), (53, "TCP"), (443, "TCP"), (4318, "TCP")}
    assert needed <= egress
    assert {port for port, _ in egress} <= {5671, 5672, 6379, 53, 443, 4318}


def test_service_monitor_scrapes_metrics_on_the_relay_service() -> None:
    objects = rendered("prod")
    monitor = find(objects, "ServiceMonitor", RELAY)["spec"]
    service = find(objects, "Service", RELAY)
    assert _selects(monitor["selector"]["matchLabels"], service["metadata"]["labels"])
    (endpoint,) = monitor["endpoints"]
    assert endpoint["path"] == "/metrics"
    assert endpoint["port"] == "admin"
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}


def test_keda_scales_the_relay_on_the_message_queue_with_the_relays_broker_secret() -> None:
    objects = rendered("prod")
    spec = _scaled_object("prod")["spec"]
    assert spec["scaleTargetRef"]["name"] == relay_deployment("prod")["metadata"]["name"]
    trigger, _accounts = spec["triggers"]
    prefix = relay_config("prod")["RELAY_EXCHANGE_PREFIX"]
    assert trigger["type"] == "rabbitmq"
    assert trigger["metadata"]["queueName"] == f"{prefix}.messages"
    assert trigger["metadata"]["mode"] == "QueueLength"
    auth = find(objects, "TriggerAuthentication", trigger["authenticationRef"]["name"])
    (ref,) = auth["spec"]["secretTargetRef"]
    assert (ref["parameter"], ref["name"], ref["key"]) == ("host", SECRET, "AMQP_URL")
    assert "AMQP_URL" in secret_template()["stringData"]


def test_keda_scales_on_every_accounts_queue_by_name_whichever_accounts_exist() -> None:
    objects = rendered("prod")
    _messages, trigger = _scaled_object("prod")["spec"]["triggers"]
    prefix = relay_config("prod")["RELAY_EXCHANGE_PREFIX"]
    metadata = trigger["metadata"]
    assert (metadata["protocol"], metadata["useRegex"], metadata["operation"]) == (
        "http",
        "true",
        "sum",
    )
    # The management API searches names with the pattern, unanchored: re.search, not fullmatch.
    pattern = re.compile(metadata["queueName"])
    laned = Topology(
        prefix=prefix, accounts=("default", "acme", "brand-2"), tether_accounts=("crm",)
    )
    for name in ("default", "acme", "brand-2"):
        assert pattern.search(laned.account_queue(name))
    for queue in Topology(prefix=prefix).queues():
        assert not pattern.search(queue), f"{queue} is not an account's queue"
    for queue in (laned.account_queue("crm", "tether"), f"x{laned.account_queue('acme')}"):
        assert not pattern.search(queue), f"{queue} is not a MsgFlash account's queue"
    auth = find(objects, "TriggerAuthentication", trigger["authenticationRef"]["name"])
    (ref,) = auth["spec"]["secretTargetRef"]
    assert (ref["parameter"], ref["name"], ref["key"]) == (
        "host",
        SECRET,
        "RABBITMQ_MANAGEMENT_URL",
    )
    assert urlsplit(secret_template()["stringData"]["RABBITMQ_MANAGEMENT_URL"]).scheme == "http"


def test_prod_autoscaling_is_capped_because_the_api_key_rate_limit_is_shared() -> None:
    spec = _scaled_object("prod")["spec"]
    replicas = relay_deployment("prod")["spec"]["replicas"]
    assert replicas == 3
    assert spec["minReplicaCount"] == replicas
    assert replicas < spec["maxReplicaCount"] <= MAX_SENSIBLE_REPLICAS
    assert relay_config("prod")["RELAY_STATE_URL"].startswith("redis://")


def test_prod_state_url_names_the_redis_service_of_the_overlay() -> None:
    objects = rendered("prod")
    url = urlsplit(relay_config("prod")["RELAY_STATE_URL"])
    service = find(objects, "Service", str(url.hostname))
    assert url.port in {p["port"] for p in service["spec"]["ports"]}
    redis = find(objects, "StatefulSet", str(url.hostname))
    assert _selects(service["spec"]["selector"], redis["spec"]["template"]["metadata"]["labels"])
    args = redis["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--maxmemory-policy") + 1] == "noeviction"
    assert args[args.index("--appendonly") + 1] == "yes"


def test_prod_redis_refuses_clients_without_the_password_the_relay_gets_from_its_secret() -> None:
    objects = rendered("prod")
    redis = find(objects, "StatefulSet", "msgflash-redis")["spec"]["template"]["spec"]
    (container,) = redis["containers"]
    shell, flag, script, name = container["command"]
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
    assert (shell, flag, name) == ("sh", "-c", "redis-server")
    assert script.startswith('exec redis-server - "$@" <<EOF\n')
    assert 'requirepass "$REDIS_PASSWORD"\n' in script  # on stdin, out of the process arguments
    assert not [a for a in container["args"] if "PASSWORD" in a or "requirepass" in a]
    for name in ("REDIS_PASSWORD", "REDISCLI_AUTH"):  # the server, and its probes' redis-cli
        assert (env[name]["name"], env[name]["key"]) == (SECRET, "RELAY_REDIS_PASSWORD")
        assert not env[name].get("optional", False)
    relay_env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in relay_container("prod")["env"]}
    assert (relay_env["RELAY_REDIS_PASSWORD"]["key"]) == "RELAY_REDIS_PASSWORD"


def test_prod_broker_is_a_three_node_rabbitmq_cluster() -> None:
    cluster = next(o for o in rendered("prod") if o["kind"] == "RabbitmqCluster")
    assert cluster["spec"]["replicas"] == 3


def test_dev_runs_one_replica_on_sqlite_in_an_empty_dir_and_never_autoscales() -> None:
    objects, config = rendered("dev"), relay_config("dev")
    assert relay_deployment("dev")["spec"]["replicas"] == 1
    assert not [o for o in objects if o["kind"] in ("ScaledObject", "HorizontalPodAutoscaler")]
    assert config["RELAY_LOG_FORMAT"] == "console"
    state_file = Path(config["RELAY_STATE_URL"].removeprefix("sqlite:///"))
    assert state_file.is_absolute()
    mounts = {m["mountPath"]: m["name"] for m in relay_container("dev")["volumeMounts"]}
    pod = relay_deployment("dev")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts[str(state_file.parent)]]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_pins_a_tagged_image_and_its_own_namespace(overlay: str) -> None:
    image = relay_container(overlay)["image"]
    assert ":" in image.rsplit("/", 1)[-1] or "@" in image
    namespaces = {o["metadata"]["namespace"] for o in rendered(overlay)}
    assert len(namespaces) == 1 and namespaces != {"default"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_secret_is_rendered_the_secret_is_created_out_of_band(overlay: str) -> None:
    assert not [o for o in rendered(overlay) if o["kind"] == "Secret"]


def test_secret_template_holds_only_placeholders() -> None:
    secret = secret_template()
    assert secret["metadata"]["name"] == SECRET
    assert "data" not in secret
    for key, value in secret["stringData"].items():
        assert "CHANGE-ME" in value, f"{key} in {SECRET_TEMPLATE.name} must be a placeholder"


def _referenced_files(directory: Path) -> set[Path]:
    kustomization = yaml.safe_load((directory / KUSTOMIZATION_FILE).read_text(encoding="utf-8"))
    files = {directory / KUSTOMIZATION_FILE}
    for entry in kustomization.get("resources", []):
        target = (directory / entry).resolve()
        files |= _referenced_files(target) if target.is_dir() else {target}
    files |= {(directory / p["path"]).resolve() for p in kustomization.get("patches", [])}
    for generator in kustomization.get("configMapGenerator", []):
        files |= {(directory / e).resolve() for e in generator.get("envs", [])}
    return {f.resolve() for f in files}


def test_every_kustomize_file_is_used_by_an_overlay_except_the_secret_template() -> None:
    """deploy/base and deploy/overlays; deploy/prometheus and deploy/grafana are plain files
    for a Prometheus or Grafana outside the operator (tests/deploy/test_observability.py)."""
    used: set[Path] = set()
    for overlay in OVERLAYS:
        used |= _referenced_files(DEPLOY / "overlays" / overlay)
    trees = (DEPLOY / "base", DEPLOY / "overlays")
    present = {f for tree in trees for f in (*yaml_files_under(tree), *tree.rglob("*.env"))}
    assert {p.resolve() for p in present} - used == {SECRET_TEMPLATE.resolve()}
