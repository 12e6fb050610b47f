"""The deployment files: ``docker-compose.yml`` as ``docker-compose config`` parses it, and the Dockerfile.

No Docker engine runs here, so no image is built: the compose file is checked by Docker Compose's own parser
(Debian's ``docker-compose`` package: ``apt-get install -y docker-compose``), and the Dockerfile by reading its
instructions. The commands both files run are parsed by the real ``auxtune`` CLI, and the health check they
run is run against a real API server.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
PASSWORD = "test-only-password"
INSTALL_HINT = "install it with: apt-get update && apt-get install -y docker-compose"


def compose_command() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, timeout=30)
        if probe.returncode == 0:
            return ["docker", "compose"]
    return None


def run_config(**env: str) -> subprocess.CompletedProcess[str]:
    command = compose_command()
    if command is None:
        pytest.skip(f"docker-compose is not installed; {INSTALL_HINT}")
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("AUXTUNE_", "POSTGRES_", "COMPOSE_", "DOCKER_"))}
    clean.update(env)
    return subprocess.run([*command, "-f", str(COMPOSE), "config"], cwd=ROOT, env=clean, capture_output=True,
                          text=True, timeout=60)


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    done = run_config(POSTGRES_PASSWORD=PASSWORD)
    assert done.returncode == 0, done.stderr
    parsed = yaml.safe_load(done.stdout)
    assert set(parsed["volumes"]) == {"pgdata", "datasets"}
    return parsed["services"]  # type: ignore[no-any-return]


def argv(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    return shlex.split(command) if isinstance(command, str) else list(command)


def option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def environment(service: dict[str, Any]) -> dict[str, Any]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] if "=" in item else (item, None) for item in env)
    return env


def healthcheck_test(service: dict[str, Any]) -> list[str]:
    test = service["healthcheck"]["test"]
    return shlex.split(test) if isinstance(test, str) else list(test)


# -- docker-compose.yml ----------------------------------------------------------------------------------------
def test_compose_defines_postgres_api_and_gpu_workers(services: dict[str, Any]) -> None:
    assert set(services) == {"postgres", "api", "worker"}

    pg = services["postgres"]
    assert pg["image"].startswith("postgres:16")
    assert any(str(v).startswith("pgdata:/var/lib/postgresql/data") or
               (isinstance(v, dict) and v.get("source") == "pgdata") for v in pg["volumes"])
    assert "pg_isready" in " ".join(healthcheck_test(pg))
    assert environment(pg)["POSTGRES_PASSWORD"] == PASSWORD and environment(pg)["POSTGRES_USER"] == "auxtune"

    api, worker = services["api"], services["worker"]
    api_args, worker_args = argv(api), argv(worker)
    assert api_args[:2] == ["auxtune", "serve"]
    assert option(api_args, "--host") == "0.0.0.0" and option(api_args, "--port") == "8000"
    assert option(api_args, "--workers") == "0"
    assert worker_args[:2] == ["auxtune", "worker"] and option(worker_args, "--device") == "cuda:0"
    db = option(api_args, "--db")
    assert db.startswith("postgresql://") and "@postgres:5432/" in db
    assert option(worker_args, "--db") == db  # the API and every worker share one store
    assert PASSWORD not in db  # the password travels as PGPASSWORD (libpq), in no URL or command line
    for service in (api, worker):
        assert environment(service)["PGPASSWORD"] == PASSWORD
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert service["image"] == api["image"] and service["build"] == api["build"]  # one image for both
        assert any(str(v).startswith("datasets:/data/datasets") for v in service["volumes"])  # uploads shared

    assert "AUXTUNE_ADMIN_TOKEN" in environment(api)  # passed on from the operator's shell
    assert any("8000" in str(p) for p in api["ports"])
    check = " ".join(healthcheck_test(api))
    assert "/healthz" in check and "127.0.0.1:8000" in check

    deploy = worker["deploy"]
    assert deploy["replicas"] == 2
    [gpu] = deploy["resources"]["reservations"]["devices"]
    assert gpu["driver"] == "nvidia" and "gpu" in gpu["capabilities"] and gpu["count"] == 1
    assert healthcheck_test(worker) == ["NONE"] or worker["healthcheck"].get("disable") is True


def test_compose_demands_a_password_and_passes_the_admin_token_on() -> None:
    refused = run_config()
    assert refused.returncode != 0 and "POSTGRES_PASSWORD" in refused.stderr
    given = run_config(POSTGRES_PASSWORD=PASSWORD, AUXTUNE_ADMIN_TOKEN="axt_operator")
    assert given.returncode == 0, given.stderr
    api = yaml.safe_load(given.stdout)["services"]["api"]
    assert environment(api)["AUXTUNE_ADMIN_TOKEN"] == "axt_operator"
    unset = yaml.safe_load(run_config(POSTGRES_PASSWORD=PASSWORD).stdout)["services"]["api"]
    assert environment(unset)["AUXTUNE_ADMIN_TOKEN"] in (None, "null")  # unset stays unset, never ""


CLI_PARSE = """
import json, sys, click, typer
from tuner.cli.main import app
group = typer.main.get_command(app)
ctx = click.Context(group, info_name="auxtune")
for name, *rest in json.loads(sys.argv[1]):
    command = group.get_command(ctx, name)
    assert command is not None, f"no command {name!r}"
    command.make_context(name, rest, parent=ctx)  # parses and checks every option; runs nothing
"""


def assert_the_cli_parses(commands: list[list[str]]) -> None:
    """Each ``[subcommand, *options]`` parses with the real ``auxtune`` CLI (in a fresh interpreter, as the
    container would run it), without running anything. Also used by tests/test_deploy_k8s.py."""
    assert commands
    done = subprocess.run([sys.executable, "-c", CLI_PARSE, json.dumps(commands)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_compose_commands_parse_with_the_real_cli() -> None:
    """``auxtune serve … --workers 0 --db …`` and ``auxtune worker --db … --device cuda:0`` are valid commands:
    the real CLI parses them (without running them). Read from the file itself: no docker-compose needed."""
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    assert_the_cli_parses([argv(services["api"])[1:], argv(services["worker"])[1:],
                           ["serve", "--host", "0.0.0.0", "--port", "8000"]])


# -- Dockerfile ------------------------------------------------------------------------------------------------
def instructions() -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` in order, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(line for line in DOCKERFILE.read_text().splitlines()
                                           if not line.lstrip().startswith("#")))
    out = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), " ".join(rest.split())))
    return out


def test_dockerfile_installs_pinned_torch_first_then_the_project_under_the_constraints() -> None:
    steps = instructions()
    args = {rest.partition("=")[0]: rest.partition("=")[2].strip('"') for word, rest in steps if word == "ARG"}
    first_from = next(i for i, (word, _) in enumerate(steps) if word == "FROM")
    assert steps[0] == ("ARG", "BASE_IMAGE=python:3.11-slim") and steps[first_from][1] == "${BASE_IMAGE}"

    pin = re.search(r"^torch==(\S+)$", (ROOT / "constraints.txt").read_text(), re.M)
    assert pin, "constraints.txt pins torch"
    assert args["TORCH_SPEC"] == f"torch=={pin.group(1)} --index-url https://download.pytorch.org/whl/cpu"

    runs = [(i, rest) for i, (word, rest) in enumerate(steps) if word == "RUN"]
    torch_step = next(i for i, rest in runs if "pip install ${TORCH_SPEC}" in rest)
    project_step = next(i for i, rest in runs if "pip install -c constraints.txt ." in rest)
    assert torch_step < project_step
    copies = {rest: i for i, (word, rest) in enumerate(steps) if word == "COPY"}
    assert copies["constraints.txt ./"] < torch_step  # the constraints file is there for the project step
    for source in ("tuner ./tuner", "storage ./storage", "api ./api", "pyproject.toml README.md ./"):
        assert torch_step < copies[source] < project_step  # code changes do not rebuild the torch layer


def test_dockerfile_runs_the_service_unprivileged_with_a_health_check() -> None:
    steps = instructions()
    users = [rest for word, rest in steps if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert ("EXPOSE", "8000") in steps
    [health] = [rest for word, rest in steps if word == "HEALTHCHECK"]
    assert "/healthz" in health and "CMD" in health
    [cmd] = [rest for word, rest in steps if word == "CMD"]
    assert json.loads(cmd) == ["auxtune", "serve", "--host", "0.0.0.0", "--port", "8000"]
    assert steps.index(("USER", users[-1])) > max(i for i, (word, _) in enumerate(steps) if word == "RUN")


def test_dockerignore_keeps_what_the_build_copies() -> None:
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    copied = [src for word, rest in instructions() if word == "COPY" for src in rest.split()[:-1]]
    assert set(copied) == {"constraints.txt", "pyproject.toml", "README.md", "tuner", "storage", "api"}
    assert not ignored & set(copied)
    assert {".git", ".venv", "*.db", ".env"} <= ignored


def test_the_health_check_command_works_against_a_real_server(tmp_path: Path) -> None:
    with warnings.catch_warnings():  # its factories import Starlette's TestClient, which warns about httpx
        warnings.simplefilter("ignore")
        from tests.api.test_server import server

    [health] = [rest for word, rest in instructions() if word == "HEALTHCHECK"]
    probe = shlex.split(health.split(" CMD ", 1)[1])
    assert probe[:2] == ["python", "-c"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUXTUNE_")}
    env["AUXTUNE_DATA_DIR"] = str(tmp_path / "data")
    with server(["-m", "api", "--port", "{port}", "--db", f"sqlite:///{tmp_path / 'h.db'}", "--no-auth"], env,
                tmp_path / "server.log") as url:
        script = probe[2].replace("http://127.0.0.1:8000", url)
        assert script != probe[2]
        ok = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
        assert ok.returncode == 0, ok.stderr
    down = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
    assert down.returncode != 0
