"""The Kubernetes manifests in ``deploy/k8s`` (and the overlay ``deploy/k8s-external-db``), checked offline.

No cluster runs here. Each manifest is validated against the Kubernetes API schemas that ``kubernetes-validate``
bundles (strict: an unknown or misspelt field fails), the kustomizations are rendered with ``kubectl kustomize``
where kubectl is installed (the rendered output is validated again), and what ties the files together is
checked in Python: every manifest listed, every Secret reference generated, Service selectors matching pod
labels, probes on the API's real port and path, the commands parsed by the real ``auxtune`` CLI and equal to
docker-compose.yml's, non-root security contexts, and the worker's grace period.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.test_deploy import COMPOSE, DOCKERFILE, ROOT, argv, assert_the_cli_parses, instructions

kubernetes_validate = pytest.importorskip(
    "kubernetes_validate", reason="kubernetes-validate is not installed: pip install -e '.[dev]'")

K8S = ROOT / "deploy" / "k8s"
EXTERNAL_DB = ROOT / "deploy" / "k8s-external-db"
# The oldest Kubernetes still in its providers' support when this was written, and the newest the package knows.
K8S_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())
# How long one epoch may take for a worker's SIGTERM to hand its trial back before the SIGKILL: the manifests
# promise this much (docs/deploy.md), above docker-compose.yml's 60 s.
LONGEST_EPOCH_S = 300
WORKLOADS = ("Deployment", "StatefulSet")
Doc = dict[str, Any]


# -- reading the files -----------------------------------------------------------------------------------------
def kustomization(folder: Path = K8S) -> Doc:
    return yaml.safe_load((folder / "kustomization.yaml").read_text())  # type: ignore[no-any-return]


def manifests() -> list[Doc]:
    """Every resource the base kustomization lists, in order."""
    return [doc for name in kustomization()["resources"] for doc in yaml.safe_load_all((K8S / name).read_text())
            if doc]


def by_kind(docs: list[Doc], kind: str) -> dict[str, Doc]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def pod_specs(docs: list[Doc]) -> dict[str, Doc]:
    """``{workload name: its pod template}``."""
    return {d["metadata"]["name"]: d["spec"]["template"] for d in docs if d["kind"] in WORKLOADS}


def containers(pod: Doc, init: bool = True) -> list[Doc]:
    spec = pod["spec"]
    return [*(spec.get("initContainers", []) if init else []), *spec["containers"]]


def command_line(container: Doc) -> list[str]:
    return [*container.get("command", []), *container.get("args", [])]


def auxtune_commands(docs: list[Doc]) -> dict[str, list[str]]:
    """``{workload: argv}`` of every container that runs the auxtune CLI."""
    return {name: command_line(c) for name, pod in pod_specs(docs).items() for c in containers(pod)
            if command_line(c)[:1] == ["auxtune"]}


def env_of(container: Doc) -> dict[str, Doc]:
    return {e["name"]: e for e in container.get("env", [])}


def secret_refs(docs: list[Doc]) -> Iterator[tuple[str, str]]:
    """``(secret name, key)`` of every ``secretKeyRef`` in the pod templates."""
    for pod in pod_specs(docs).values():
        for c in containers(pod):
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    yield ref["name"], ref["key"]
            assert not c.get("envFrom"), "whole-Secret envFrom is not used: name each key"


def env_file_keys(path: Path) -> set[str]:
    return {line.partition("=")[0] for line in path.read_text().splitlines()
            if line.strip() and not line.startswith("#")}


def option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def validate_strictly(docs: list[Doc]) -> None:
    for doc in docs:
        for version in K8S_VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)  # raises ValidationError


# -- the schemas -----------------------------------------------------------------------------------------------
def test_every_manifest_passes_the_kubernetes_schemas_strictly() -> None:
    docs = manifests()
    assert {d["kind"] for d in docs} == {"Namespace", "Service", "StatefulSet", "PersistentVolumeClaim",
                                         "Deployment", "NetworkPolicy"}
    validate_strictly(docs)
    # strict means strict: a misspelt field in the worker is refused, not ignored
    [worker] = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "worker"]
    spec = worker["spec"]["template"]["spec"]
    typo = {**worker, "spec": {**worker["spec"], "template": {**worker["spec"]["template"], "spec": {
        **{k: v for k, v in spec.items() if k != "terminationGracePeriodSeconds"},
        "terminationGracePeriodSecond": spec["terminationGracePeriodSeconds"]}}}}
    with pytest.raises(kubernetes_validate.ValidationError, match="terminationGracePeriodSecond"):
        validate_strictly([typo])


# -- what ties the files together ------------------------------------------------------------------------------
def test_the_kustomization_lists_every_manifest_and_generates_every_secret_they_use() -> None:
    kust = kustomization()
    listed = kust["resources"]
    on_disk = sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(listed) == on_disk and len(set(listed)) == len(listed)
    assert kust["namespace"] == "auxtune" and "auxtune" in by_kind(manifests(), "Namespace")

    generated = {g["name"]: g for g in kust["secretGenerator"]}
    assert set(generated) == {"auxtune-postgres", "auxtune-admin"}
    refs = set(secret_refs(manifests()))
    assert {name for name, _ in refs} == set(generated)
    for name, key in refs:
        [env_file] = generated[name]["envs"]
        assert key in env_file_keys(K8S / f"{env_file}.example"), f"{name}: {key} not in {env_file}.example"
    assert not by_kind(manifests(), "Secret"), "no Secret is committed: they are generated from your files"

    # the files holding the real values are git-ignored; the committed examples hold placeholders only
    for folder in (K8S, EXTERNAL_DB):
        for g in kustomization(folder)["secretGenerator"]:
            for env_file in g["envs"]:
                real = (folder / env_file).relative_to(ROOT)
                assert subprocess.run(["git", "check-ignore", "-q", str(real)], cwd=ROOT).returncode == 0, real
    for example in (K8S / "postgres.env.example", K8S / "admin.env.example"):
        values = [line.partition("=")[2] for line in example.read_text().splitlines()
                  if line.strip() and not line.startswith("#")]
        assert values and all(v.startswith("REPLACE-WITH-") for v in values), example


def test_services_select_their_pods_and_target_named_container_ports() -> None:
    docs = manifests()
    pods = pod_specs(docs)
    services = by_kind(docs, "Service")
    assert set(services) == {"api", "postgres"}
    for name, service in services.items():
        selector = service["spec"]["selector"]
        matching = [w for w, pod in pods.items() if selector.items() <= pod["metadata"]["labels"].items()]
        assert matching == [name], f"Service {name} selects {matching}"
        pod = pods[name]
        ports = {p["name"]: p["containerPort"] for c in containers(pod, init=False) for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports and ports[port["targetPort"]] == port["port"]
    for workload in (d for d in docs if d["kind"] in WORKLOADS):  # each controller owns its own pods
        assert workload["spec"]["selector"]["matchLabels"].items() <= \
            workload["spec"]["template"]["metadata"]["labels"].items()
    assert by_kind(docs, "StatefulSet")["postgres"]["spec"]["serviceName"] == "postgres"


def test_the_api_probes_its_real_health_endpoint_on_the_port_it_serves(tmp_path: Path) -> None:
    with warnings.catch_warnings():  # its factories import Starlette's TestClient, which warns about httpx
        warnings.simplefilter("ignore")
        from tests.api.test_server import server

    pod = pod_specs(manifests())["api"]
    [api] = containers(pod, init=False)
    served = int(option(command_line(api), "--port"))
    named = {p["name"]: p["containerPort"] for p in api["ports"]}
    probes = [api[kind]["httpGet"] for kind in ("startupProbe", "readinessProbe", "livenessProbe")]
    for probe in probes:
        port = named.get(probe["port"], probe["port"])
        assert port == served == 8000 and probe["path"] == "/healthz"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUXTUNE_")}
    env["AUXTUNE_DATA_DIR"] = str(tmp_path / "data")  # auth stays on: the probes need no token
    with server(["-m", "api", "--port", "{port}", "--db", f"sqlite:///{tmp_path / 'k.db'}"], env,
                tmp_path / "server.log") as url:
        for probe in probes:  # the path the kubelet asks for answers 200, with no token
            assert httpx.get(f"{url}{probe['path']}", timeout=10).status_code == 200


def test_the_commands_mirror_compose_and_parse_with_the_real_cli() -> None:
    commands = auxtune_commands(manifests())
    assert set(commands) == {"api", "worker"}
    compose = yaml.safe_load(COMPOSE.read_text())["services"]
    assert commands["api"] == argv(compose["api"]) and commands["worker"] == argv(compose["worker"])
    db = option(commands["api"], "--db")
    assert option(commands["worker"], "--db") == db and ":" not in db.split("@")[0].removeprefix("postgresql://")
    postgres = by_kind(manifests(), "Service")["postgres"]
    assert f"@{postgres['metadata']['name']}:{postgres['spec']['ports'][0]['port']}/" in db
    assert_the_cli_parses([argv[1:] for argv in commands.values()])
    with pytest.raises(AssertionError, match="gpu-count"):  # the check does refuse what the CLI does not take
        assert_the_cli_parses([["worker", "--gpu-count", "1"]])

    # the password: from one Secret key, as PGPASSWORD (libpq), in no URL or command line
    pods = pod_specs(manifests())
    pg_env = env_of(containers(pods["postgres"])[0])
    password = pg_env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"]
    for name in ("api", "worker"):
        [main] = containers(pods[name], init=False)
        assert env_of(main)["PGPASSWORD"]["valueFrom"]["secretKeyRef"] == password
    assert "AUXTUNE_ADMIN_TOKEN" in env_of(containers(pods["api"], init=False)[0])
    assert "AUXTUNE_ADMIN_TOKEN" not in env_of(containers(pods["worker"], init=False)[0])  # the API's only


def test_workers_get_one_gpu_each_and_time_to_hand_their_trial_back() -> None:
    worker_deployment = by_kind(manifests(), "Deployment")["worker"]
    assert worker_deployment["spec"]["replicas"] == 2
    pod = worker_deployment["spec"]["template"]
    [worker] = containers(pod, init=False)
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert option(command_line(worker), "--device") == "cuda:0"  # the one GPU it is given
    grace = pod["spec"]["terminationGracePeriodSeconds"]
    compose_grace = yaml.safe_load(COMPOSE.read_text())["services"]["worker"]["stop_grace_period"]
    assert grace >= LONGEST_EPOCH_S > int(compose_grace.removesuffix("s"))
    assert "livenessProbe" not in worker  # it listens on no port; a long epoch is not a hang


def test_every_pod_runs_unprivileged_on_a_read_only_root() -> None:
    uid = next(rest for word, rest in reversed(instructions()) if word == "USER").split(":")[0]
    for name, pod in pod_specs(manifests()).items():
        spec = pod["spec"]
        context = spec["securityContext"]
        assert context["runAsNonRoot"] is True and context["seccompProfile"]["type"] == "RuntimeDefault", name
        assert context["runAsUser"] != 0 and context["fsGroup"] == context["runAsGroup"], name
        assert spec["automountServiceAccountToken"] is False and spec["enableServiceLinks"] is False, name
        if name in ("api", "worker"):
            assert str(context["runAsUser"]) == uid == "10001"  # the image's user (Dockerfile USER)
        empty_dirs = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
        for c in containers(pod):
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"], c["name"]
            assert sc["readOnlyRootFilesystem"] is True and "privileged" not in sc, c["name"]
        for c in containers(pod, init=False):  # a writable /tmp (uploads spool there), not the image's
            mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
            assert mounts["/tmp"] in empty_dirs, c["name"]
    assert by_kind(manifests(), "Namespace")["auxtune"]["metadata"]["labels"][
        "pod-security.kubernetes.io/enforce"] == "restricted"


def test_uploads_live_on_one_read_write_many_volume_the_api_and_the_workers_mount_alike() -> None:
    docs = manifests()
    [claim] = by_kind(docs, "PersistentVolumeClaim").values()
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    image_dir = re.search(r"AUXTUNE_DATA_DIR=(\S+)", DOCKERFILE.read_text())
    assert image_dir and image_dir.group(1) == "/data/datasets"
    compose = yaml.safe_load(COMPOSE.read_text())["services"]
    assert all(f"datasets:{image_dir.group(1)}" in compose[s]["volumes"] for s in ("api", "worker"))  # as there
    pods = pod_specs(docs)
    for name, writes in (("api", True), ("worker", False)):
        spec = pods[name]["spec"]
        [main] = containers(pods[name], init=False)
        [volume] = [v for v in spec["volumes"] if v.get("persistentVolumeClaim")]
        assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
        [mount] = [m for m in main["volumeMounts"] if m["name"] == volume["name"]]
        assert mount["mountPath"] == image_dir.group(1) == env_of(main)["AUXTUNE_DATA_DIR"]["value"]
        assert mount.get("readOnly", False) is not writes, name


# -- rendered by kustomize -------------------------------------------------------------------------------------
def kustomize(folder: Path) -> subprocess.CompletedProcess[str]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed (the manifests are still checked one by one above)")
    return subprocess.run([kubectl, "kustomize", str(folder)], capture_output=True, text=True, timeout=120)


def with_secret_files(tmp_path: Path) -> Path:
    """A copy of deploy/ with each ``*.env`` written from its example, as an operator would."""
    copy = tmp_path / "deploy"
    shutil.copytree(ROOT / "deploy", copy, ignore=shutil.ignore_patterns("*.env"))
    for example in copy.rglob("*.env.example"):
        shutil.copy(example, example.with_suffix(""))
    return copy


def rendered(folder: Path) -> list[Doc]:
    done = kustomize(folder)
    assert done.returncode == 0, done.stderr[-2000:]
    docs = [d for d in yaml.safe_load_all(done.stdout) if d]
    validate_strictly(docs)
    secrets = by_kind(docs, "Secret")
    for name, key in secret_refs(docs):  # the hashed names kustomize gave the Secrets, rewritten everywhere
        assert name in secrets and key in secrets[name]["data"], (name, key)
    assert all(d["metadata"].get("namespace") == "auxtune" for d in docs if d["kind"] != "Namespace")
    return docs


def test_kustomize_renders_the_base_and_refuses_without_the_secret_files(tmp_path: Path) -> None:
    shutil.copytree(K8S, tmp_path / "bare", ignore=shutil.ignore_patterns("*.env"))  # as committed, no secrets
    refused = kustomize(tmp_path / "bare")
    assert refused.returncode != 0 and "postgres.env" in refused.stderr  # names the file to write

    docs = rendered(with_secret_files(tmp_path) / "k8s")
    names = {(d["kind"], d["metadata"]["name"]) for d in manifests()}
    assert {(d["kind"], d["metadata"]["name"]) for d in docs if d["kind"] != "Secret"} == names
    secrets = by_kind(docs, "Secret")
    assert {re.sub(r"-[a-z0-9]{10}$", "", n) for n in secrets} == {"auxtune-postgres", "auxtune-admin"}
    assert any(c["image"] == "auxtune:cuda" for pod in pod_specs(docs).values() for c in containers(pod))
    assert auxtune_commands(docs) == auxtune_commands(manifests())


def test_the_external_database_overlay_drops_postgres_and_reads_the_url_from_a_secret(tmp_path: Path) -> None:
    docs = rendered(with_secret_files(tmp_path) / "k8s-external-db")
    assert "postgres" not in by_kind(docs, "StatefulSet") and "postgres" not in by_kind(docs, "Service")
    assert "postgres" not in by_kind(docs, "NetworkPolicy")
    commands = auxtune_commands(docs)
    assert set(commands) == {"api", "worker"} and not any("--db" in c for c in commands.values())
    assert_the_cli_parses([c[1:] for c in commands.values()])
    secrets = by_kind(docs, "Secret")
    example = env_file_keys(EXTERNAL_DB / "db.env.example")
    assert example == {"AUXTUNE_DB"}
    for name, pod in pod_specs(docs).items():
        assert "initContainers" not in pod["spec"], name  # nothing waits for an in-cluster PostgreSQL
        [main] = containers(pod, init=False)
        ref = env_of(main)["AUXTUNE_DB"]["valueFrom"]["secretKeyRef"]
        url = base64.b64decode(secrets[ref["name"]]["data"][ref["key"]]).decode().strip()
        assert url.startswith("postgresql://") and "sslmode=require" in url
        assert "PGPASSWORD" in env_of(main)  # the password still from auxtune-postgres, not in the URL
