"""The self-hosting stack in docker-compose.yml: services, ordering, health and volumes.

Reads the file as YAML, so it needs neither a database nor a Docker engine.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from config.celery import QUEUES

COMPOSE_FILE = Path(__file__).resolve().parent.parent / "docker-compose.yml"
APP_SERVICES = ("migrate", "web", "worker", "beat")
LONG_RUNNING = ("postgres", "redis", "web", "worker", "beat")


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def _services() -> dict[str, dict[str, Any]]:
    return _compose()["services"]


def _command(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    return command.split() if isinstance(command, str) else [str(part) for part in command]


def _option(command: list[str], name: str) -> str:
    for index, part in enumerate(command):
        if part == name:
            return command[index + 1]
        if part.startswith(name + "="):
            return part.split("=", 1)[1]
    raise AssertionError(f"{name} missing from {command}")


def _docker_compose_available() -> bool:
    if shutil.which("docker") is None:
        return False
    result = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    return result.returncode == 0


def test_services_are_exactly_the_stack() -> None:
    assert set(_services()) == {"postgres", "redis", "migrate", "web", "worker", "beat"}


def test_long_running_services_restart_and_migrate_runs_once() -> None:
    services = _services()
    for name in LONG_RUNNING:
        assert services[name]["restart"] == "unless-stopped", name
    # Restarting a one-shot that exited 0 would re-run migrate in a loop.
    assert services["migrate"]["restart"] == "no"
    assert _command(services["migrate"])[:3] == ["python", "manage.py", "migrate"]


def test_servers_and_worker_have_healthchecks() -> None:
    services = _services()
    for name in ("postgres", "redis", "web", "worker"):
        test = services[name]["healthcheck"]["test"]
        assert test, name
        assert test[0] in ("CMD", "CMD-SHELL"), name
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]
    assert "redis-cli ping" in " ".join(services["redis"]["healthcheck"]["test"])
    web_check = " ".join(services["web"]["healthcheck"]["test"])
    assert "urllib" in web_check
    assert "http://localhost:8000/healthz" in web_check
    assert "inspect ping" in " ".join(services["worker"]["healthcheck"]["test"])


def test_app_services_wait_for_healthy_postgres_and_redis() -> None:
    services = _services()
    for name in ("web", "worker", "beat"):
        depends_on = services[name]["depends_on"]
        for dependency in ("postgres", "redis"):
            assert depends_on[dependency]["condition"] == "service_healthy", (name, dependency)
        assert depends_on["migrate"]["condition"] == "service_completed_successfully", name
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_app_services_share_one_image_and_environment() -> None:
    services = _services()
    for name in APP_SERVICES:
        service = services[name]
        assert service["build"] == "."
        assert service["image"] == services["web"]["image"]
        env = service["environment"]
        assert env["DATABASE_URL"].startswith("postgres://leadflow:")
        assert env["DATABASE_URL"].endswith("@postgres:5432/leadflow")
        assert env["REDIS_URL"] == "redis://redis:6379/0"
        assert env["SECRET_KEY"].startswith("${SECRET_KEY:?"), "SECRET_KEY must be required"
        assert "ANYMAIL_WEBHOOK_SECRET" in env
    assert "8000:8000" in services["web"]["ports"]


def test_app_services_pass_the_security_and_outbound_settings() -> None:
    # Without any one of these, `check --deploy` cannot be clean behind HTTPS, or
    # webhooks to an internal host cannot be allowed.
    names = {
        "SECURE_SSL_REDIRECT",
        "SECURE_COOKIES",
        "SECURE_HSTS_SECONDS",
        "SECURE_HSTS_INCLUDE_SUBDOMAINS",
        "SECURE_HSTS_PRELOAD",
        "OUTBOUND_ALLOWED_HOSTS",
    }
    for name in APP_SERVICES:
        env = _services()[name]["environment"]
        assert {key: env[key].split(":-")[0] for key in names} == {
            key: "${" + key for key in names
        }, name


def test_web_runs_the_image_command_with_the_gunicorn_config() -> None:
    # The Dockerfile's CMD (tests/test_gunicorn.py) is the web command: no override.
    assert "command" not in _services()["web"]


def test_named_volumes_are_declared_and_mounted() -> None:
    compose = _compose()
    declared = set(compose["volumes"])
    assert {"postgres-data", "redis-data", "app-data"} <= declared
    mounts = {
        name: {volume.split(":")[0]: volume.split(":")[1] for volume in service["volumes"]}
        for name, service in compose["services"].items()
        if "volumes" in service
    }
    assert mounts["postgres"]["postgres-data"] == "/var/lib/postgresql/data"
    assert mounts["redis"]["redis-data"] == "/data"
    for name in APP_SERVICES:
        assert mounts[name]["app-data"] == "/data", name
    used = {source for service_mounts in mounts.values() for source in service_mounts}
    assert used <= declared, f"undeclared volumes: {used - declared}"


def test_worker_consumes_every_celery_queue() -> None:
    command = _command(_services()["worker"])
    assert command[:4] == ["celery", "-A", "config", "worker"]
    assert set(_option(command, "--queues").split(",")) == set(QUEUES)


def test_beat_keeps_its_schedule_in_the_data_volume() -> None:
    command = _command(_services()["beat"])
    assert command[:4] == ["celery", "-A", "config", "beat"]
    assert _option(command, "--schedule") == "/data/celerybeat-schedule"


def test_compose_file_is_valid() -> None:
    if _docker_compose_available():
        env = {**os.environ, "SECRET_KEY": "compose-config-check"}
        result = subprocess.run(
            ["docker", "compose", "--file", str(COMPOSE_FILE), "config", "--quiet"],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return
    # Without the compose plugin, check what `docker compose config` would reject or
    # silently get wrong: dangling dependencies, and variables that interpolate to an
    # empty string because they have neither a default nor an error message.
    compose = _compose()
    services = compose["services"]
    for name, service in services.items():
        assert "image" in service, name
        for dependency in service.get("depends_on", {}):
            assert dependency in services, (name, dependency)
    text = COMPOSE_FILE.read_text()
    references = re.findall(r"(?<!\$)\$\{([^}]*)\}", text)
    assert references
    for reference in references:
        assert re.fullmatch(r"[A-Z_][A-Z0-9_]*(:-[^}]*|:\?[^}]+)", reference), reference


def test_workers_scale_by_one_variable() -> None:
    # One worker unless WORKERS says more (SCALING.md); the healthcheck pings the
    # container's own node, so every replica is checked on its own.
    worker = _services()["worker"]
    assert worker["deploy"]["replicas"] == "${WORKERS:-1}"
    assert "celery@$$HOSTNAME" in " ".join(worker["healthcheck"]["test"])
