"""Where the deployment files are, and the rendered overlays the checks read."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from tests.deploy.kustomize import Manifest, build, load_yaml_documents

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY = REPO_ROOT / "deploy"
BASE = DEPLOY / "base"
OVERLAYS = ("dev", "prod")
SECRET_TEMPLATE = BASE / "secret.example.yaml"
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
DOCKERFILE = REPO_ROOT / "Dockerfile"

RELAY = "msgflash-relay"
RELAY_CONTAINER = "relay"
CONFIG_MAP = "msgflash-relay-config"
SECRET = "msgflash-relay-secrets"
HTTP_PORT = 8080
ADMIN_PORT = 9090


def overlay_dir(overlay: str) -> Path:
    return DEPLOY / "overlays" / overlay


@functools.cache
def _rendered(overlay: str) -> tuple[Manifest, ...]:
    return tuple(build(overlay_dir(overlay)))


def rendered(overlay: str) -> list[Manifest]:
    """The overlay as ``kustomize build`` prints it (cached: treat the objects as read-only)."""
    return list(_rendered(overlay))


def find(objects: list[Manifest], kind: str, name: str) -> Manifest:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


def relay_deployment(overlay: str) -> Manifest:
    return find(rendered(overlay), "Deployment", RELAY)


def relay_container(overlay: str) -> dict[str, Any]:
    pod = relay_deployment(overlay)["spec"]["template"]["spec"]
    (container,) = (c for c in pod["containers"] if c["name"] == RELAY_CONTAINER)
    return dict(container)


def relay_config(overlay: str) -> dict[str, str]:
    """The data of the relay's generated ConfigMap (its name carries a content hash)."""
    (config,) = (
        o
        for o in rendered(overlay)
        if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith(f"{CONFIG_MAP}-")
    )
    return dict(config["data"])


def secret_template() -> Manifest:
    (secret,) = load_yaml_documents(SECRET_TEMPLATE)
    return secret


def yaml_files_under(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.suffix in (".yaml", ".yml"))
