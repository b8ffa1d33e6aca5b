"""The Helm chart helm/kqi-hub, checked offline with helm-python-sdk and kubernetes-validate.

The chart depends on the Zero to JupyterHub chart (Chart.yaml: `jupyterhub` from
https://hub.jupyter.org/helm-chart/), which cannot be downloaded here. So most tests lint
and render a copy of the chart with the dependency entry removed from its Chart.yaml: that
renders exactly our own templates (values.yaml's `jupyterhub:` section is carried along
unused), and every rendered document that has an apiVersion is validated with
kubernetes-validate in strict mode. The `jupyterhub:` section is then checked as data
against what our templates and the hub configuration need, and the hub-side glue that it
loads (files/z2jh_kqi.py) is run the way z2jh's jupyterhub_config.py runs hub.extraConfig.

The test_full_chart_* tests also render the whole chart with its dependency (z2jh validates
our `jupyterhub:` values against its schema), validate every document, and load the hub's
configuration as the hub pod would: z2jh's own jupyterhub_config.py from the rendered
ConfigMap with our hub.extraConfig, then JupyterHub.initialize() on SQLite. The dependency is
KQI_Z2JH_CHART when set (an unpacked z2jh chart of the pinned version, `helm pull
jupyterhub/jupyterhub --version <v> --untar`, or a folder holding it as jupyterhub/), else
charts/jupyterhub-*.tgz after `helm dependency update helm/kqi-hub`, else the vendored copy
beside the repository, ../shared/vendor/z2jh-<pinned version>/ (on the developers' machines
and in CI; it is never copied into the repository). They are skipped only when none is there.
"""
from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import shutil
import sys
import types
from pathlib import Path
from unittest import mock

import pytest
import yaml

# KqiService takes some trait defaults from the environment when its module is imported:
# import it here, outside the environments the tests patch in.
import kqi_services.app  # noqa: F401

helm = pytest.importorskip("helm_python", reason="helm-python-sdk is not installed (pip install -e .[test])")
kubernetes_validate = pytest.importorskip("kubernetes_validate")

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "helm" / "kqi-hub"
FILES = CHART / "files"
JOB_BACKEND = ROOT / "kqi_services" / "jobs" / "kubernetes.py"
RUNTIME_FILES = {
    "kqi_runtime.py": ROOT / "kqi_services" / "runtime" / "kqi_runtime.py",
    "layout.py": ROOT / "kqi_services" / "domain" / "layout.py",
}
RELEASE, NAMESPACE = "kqi", "ai"
#: the oldest Kubernetes the chart accepts (Chart.yaml kubeVersion, as z2jh 4.x) and a current one
KUBE_VERSIONS = ("1.28.0", "1.33.0")
MISSING_DEPENDENCY = "chart directory is missing these dependencies: jupyterhub"


# ------------------------------------------------------------------------------ helpers
def chart_yaml(path: Path = CHART) -> dict:
    return yaml.safe_load((path / "Chart.yaml").read_text())


def values_yaml() -> dict:
    return yaml.safe_load((CHART / "values.yaml").read_text())


def copy_chart(dest: Path, with_dependency: bool) -> Path:
    shutil.copytree(CHART, dest, ignore=shutil.ignore_patterns("charts", "image", "__pycache__"))
    if not with_dependency:
        meta = chart_yaml(dest)
        meta.pop("dependencies", None)
        (dest / "Chart.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    return dest


@pytest.fixture(scope="module")
def own_chart(tmp_path_factory) -> Path:
    """The chart with the z2jh dependency entry removed: our templates only."""
    return copy_chart(tmp_path_factory.mktemp("chart") / "kqi-hub", with_dependency=False)


def render(chart: Path, values: dict | None = None, namespace: str = NAMESPACE, name: str = RELEASE) -> dict:
    with helm.Chart.load(str(chart)) as c:
        return c.render(values or {}, name=name, namespace=namespace, is_install=True)


def documents(rendered: dict) -> list[dict]:
    """Every Kubernetes object of a rendering (NOTES.txt and other non-YAML output left out)."""
    docs = []
    for path, text in sorted(rendered.items()):
        if not path.endswith((".yaml", ".yml")):
            continue
        docs.extend(d for d in yaml.safe_load_all(text) if d and "apiVersion" in d)
    return docs


def notes(rendered: dict) -> str:
    return next(text for path, text in rendered.items() if path.endswith("templates/NOTES.txt"))


def find(docs: list[dict], kind: str, name: str) -> dict:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found in {[(d['kind'], d['metadata']['name']) for d in docs]}"
    return found[0]


def secret_data(secret: dict) -> dict:
    return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}


def validate_all(docs: list[dict], versions=KUBE_VERSIONS) -> None:
    for doc in docs:
        for version in versions:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                pytest.fail(f"{doc['kind']}/{doc['metadata'].get('name')} is not valid for Kubernetes {version}:"
                            f" {'.'.join(map(str, e.path))}: {e.message}")


def z2jh_env(name: str) -> dict:
    """values.yaml's jupyterhub.hub.extraEnv entry `name` (z2jh accepts a dict of name -> value)."""
    return values_yaml()["jupyterhub"]["hub"]["extraEnv"][name]


# ------------------------------------------------------------------------------ the chart itself
def test_runtime_files_are_the_repositorys():
    for name, source in RUNTIME_FILES.items():
        assert (FILES / name).read_text() == source.read_text(), (
            f"helm/kqi-hub/files/{name} differs from {source.relative_to(ROOT)}: copy it again "
            f"(cp {source.relative_to(ROOT)} helm/kqi-hub/files/{name})")


def test_chart_depends_on_a_pinned_zero_to_jupyterhub_4():
    meta = chart_yaml()
    assert meta["apiVersion"] == "v2" and meta["name"] == "kqi-hub"
    (dep,) = meta["dependencies"]
    assert dep["name"] == "jupyterhub"
    assert dep["repository"] == "https://hub.jupyter.org/helm-chart/"
    assert re.fullmatch(r"4\.\d+\.\d+", str(dep["version"])), "pin one 4.x release"
    # the hub image starts from z2jh's hub image of the same version
    dockerfile = (CHART / "image" / "Dockerfile").read_text()
    assert f"ARG Z2JH_VERSION={dep['version']}\n" in dockerfile
    assert "FROM quay.io/jupyterhub/k8s-hub:${Z2JH_VERSION}" in dockerfile
    # and installs this project from the repository root
    for path in ("setup.py", "hub_config", "spawner", "kqi_services"):
        assert re.search(rf"^COPY .*\b{path}\b", dockerfile, re.M), path
        assert (ROOT / path).exists()


def test_lint(own_chart):
    report = helm.lint(str(CHART), strict=True, kube_version="v1.33.0")
    has_dependency = any((CHART / "charts").glob("jupyterhub*")) if (CHART / "charts").exists() else False
    assert report["errors"] == ([] if has_dependency else [MISSING_DEPENDENCY]), report
    for kube_version in ("v1.28.0", "v1.33.0"):
        report = helm.lint(str(own_chart), strict=True, kube_version=kube_version)
        assert report["errors"] == [], report
        assert [m for m in report["messages"] if m["severity"] >= 2] == [], report


def test_default_rendering_is_valid(own_chart):
    rendered = render(own_chart)
    docs = documents(rendered)
    validate_all(docs)
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in docs)
    assert kinds == sorted([
        ("Secret", "kqi-hub-secrets"),
        ("PersistentVolumeClaim", "kqi-store"),
        ("ConfigMap", "kqi-runtime"),
        ("ConfigMap", "kqi-hub-config"),
        ("Role", "kqi-jobs"),
        ("RoleBinding", "kqi-jobs"),
        ("ClusterRole", "ai-kqi-kqi-nodes"),
        ("ClusterRoleBinding", "ai-kqi-kqi-nodes"),
        ("ServiceAccount", "kqi-job"),
        ("ConfigMap", "kqi-postgresql-init"),
        ("Service", "kqi-postgresql"),
        ("StatefulSet", "kqi-postgresql"),
        ("NetworkPolicy", "kqi-jobs"),
        ("NetworkPolicy", "kqi-postgresql"),
    ])
    for doc in docs:
        if not doc["kind"].startswith("Cluster"):
            assert doc["metadata"]["namespace"] == NAMESPACE, doc["kind"]
        assert doc["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE
    text = notes(rendered)
    assert "kqi account login -s http://localhost:8080/services/kqi" in text
    assert "get secret kqi-hub-secrets" in text and "admin-password" in text
    assert "set publicUrl" in text


def test_runtime_configmap_holds_the_runtime(own_chart):
    cm = find(documents(render(own_chart)), "ConfigMap", "kqi-runtime")
    assert cm["data"] == {name: path.read_text() for name, path in RUNTIME_FILES.items()}


def test_values_flow_into_the_objects(own_chart):
    values = {
        "publicUrl": "https://kqi.example.com/",
        "partitionLabel": "example.com/partition",
        "service": {"port": 12345, "extraConfig": "c.KqiService.io_threads = 3"},
        "storage": {"claimName": "shared", "size": "2Ti", "storageClassName": "nfs", "keep": False,
                    "mountPath": "/data/kqi"},
        "jobs": {"defaultImage": "python:3.11-slim", "serviceAccount": {"create": True, "name": "runner"},
                 "nodeSelector": {"pool": "gpu"}, "activeDeadlineSeconds": 7200,
                 "capacity": {"cpu": 64, "memoryGiB": 256, "gpu": 8}},
        "secret": {"name": "my-secrets", "secretKey": "k" * 40, "adminPassword": "first-password"},
        "postgresql": {"enabled": False},
        "database": {"hubUrl": "postgresql+psycopg://hub:pw@db:5432/hub",
                     "kqiUrl": "postgresql+psycopg://kqi:pw@db:5432/kqi"},
        "rbac": {"readNodes": False, "hubServiceAccount": "my-hub"},
    }
    rendered = render(own_chart, values, namespace="ml-platform", name="lab")
    docs = documents(rendered)
    validate_all(docs)
    assert {d["metadata"].get("namespace") for d in docs} == {"ml-platform"}
    assert not [d for d in docs if "postgresql" in d["metadata"]["name"] or d["kind"].startswith("Cluster")]

    pvc = find(docs, "PersistentVolumeClaim", "shared")
    assert pvc["spec"] == {"accessModes": ["ReadWriteMany"], "storageClassName": "nfs",
                           "resources": {"requests": {"storage": "2Ti"}}}
    assert "annotations" not in pvc["metadata"]

    secret = secret_data(find(docs, "Secret", "my-secrets"))
    assert secret == {"secret-key": "k" * 40, "admin-password": "first-password",
                      "hub-db-url": values["database"]["hubUrl"], "kqi-db-url": values["database"]["kqiUrl"]}

    binding = find(docs, "RoleBinding", "kqi-jobs")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "my-hub", "namespace": "ml-platform"}]
    assert find(docs, "ServiceAccount", "runner")["automountServiceAccountToken"] is False

    config = find(docs, "ConfigMap", "kqi-hub-config")["data"]
    settings = json.loads(config["settings.json"])
    assert settings["namespace"] == "ml-platform"
    assert settings["publicUrl"] == "https://kqi.example.com/"
    assert settings["servicePort"] == 12345
    assert settings["dataDir"] == "/data/kqi/data"
    assert settings["storage"] == {"claimName": "shared", "mountPath": "/data/kqi"}
    assert settings["partitionLabel"] == "example.com/partition"
    assert settings["jobs"]["serviceAccount"] == "runner"
    assert settings["jobs"]["nodeSelector"] == {"pool": "gpu"}
    assert settings["jobs"]["capacity"] == {"cpu": 64, "memoryGiB": 256, "gpu": 8}
    assert config["kqi_service_config.py"].startswith((FILES / "kqi_service_config.py").read_text())
    assert config["kqi_service_config.py"].rstrip().endswith("c.KqiService.io_threads = 3")
    assert config["z2jh_kqi.py"] == (FILES / "z2jh_kqi.py").read_text()

    text = notes(rendered)
    assert "kqi account login -s https://kqi.example.com/services/kqi" in text
    assert "file:///data/kqi" in text and "set publicUrl" not in text


def test_job_network_policy(own_chart):
    """kqi-jobs selects the pods of KubernetesBackend's Jobs: the hub pod reaches them, they
    reach anything but the cloud metadata server."""
    from kqi_services.jobs import kubernetes as k8s
    from kqi_services.jobs.launch import LaunchRequest, kqi_mounts

    policy = find(documents(render(own_chart)), "NetworkPolicy", "kqi-jobs")["spec"]
    req = LaunchRequest(key="training-1", kind="training", job_id=1, tenant="t", user="u", image=None, spec={},
                        env={}, mounts=kqi_mounts(output_dir="/srv/kqi/o"))
    labels = k8s.make_job(req, k8s.ManifestSettings(storage_root="/srv/kqi"))["spec"]["template"]["metadata"]["labels"]

    def selects(selector, labels):
        ok = selector.get("matchLabels", {}).items() <= labels.items()
        for e in selector.get("matchExpressions", []):
            ok &= (labels.get(e["key"]) in e["values"]) if e["operator"] == "In" else (e["key"] in labels)
        return ok

    assert selects(policy["podSelector"], labels)
    assert not selects(policy["podSelector"], {"component": "singleuser-server", "app": "jupyterhub"})
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert policy["ingress"] == [{"from": [{"podSelector": {"matchLabels": {"component": "hub", "release": RELEASE}}}]}]
    assert policy["egress"][0] == {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["169.254.169.254/32"]}}]}
    off = documents(render(own_chart, {"jobs": {"networkPolicy": {"enabled": False}},
                                       "postgresql": {"enabled": False},
                                       "database": {"hubUrl": "postgresql+psycopg://h", "kqiUrl": "postgresql+psycopg://k"}}))
    assert not [d for d in off if d["kind"] == "NetworkPolicy"]


def test_storage_and_secret_can_be_made_outside_the_chart(own_chart):
    docs = documents(render(own_chart, {"storage": {"create": False}, "secret": {"create": False},
                                        "jobs": {"serviceAccount": {"create": False}},
                                        "rbac": {"create": False}}))
    kinds = {d["kind"] for d in docs}
    assert not kinds & {"PersistentVolumeClaim", "Secret", "ServiceAccount", "Role", "RoleBinding"}
    assert {"ConfigMap", "StatefulSet"} <= kinds


def test_generated_secrets_and_the_bundled_postgresql(own_chart):
    docs = documents(render(own_chart))
    secret = find(docs, "Secret", "kqi-hub-secrets")
    assert secret["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    data = secret_data(secret)
    assert set(data) == {"secret-key", "admin-password", "hub-db-url", "kqi-db-url", "postgres-password"}
    assert len(data["secret-key"]) == 64 and len(data["admin-password"]) == 24
    password = data["postgres-password"]
    server = f"kqi:{password}@kqi-postgresql.{NAMESPACE}.svc:5432"
    assert data["hub-db-url"] == f"postgresql+psycopg://{server}/hub"
    assert data["kqi-db-url"] == f"postgresql+psycopg://{server}/kqi"
    statefulset = find(docs, "StatefulSet", "kqi-postgresql")
    (container,) = statefulset["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["POSTGRES_DB"]["value"] == "hub"
    # the password as a file of the Secret (the image reads POSTGRES_PASSWORD_FILE), never as a variable
    assert "POSTGRES_PASSWORD" not in env
    assert env["POSTGRES_PASSWORD_FILE"]["value"] == "/run/secrets/kqi/postgres-password"
    pod = statefulset["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/run/secrets/kqi"]["readOnly"] is True
    assert volumes[mounts["/run/secrets/kqi"]["name"]]["secret"] == {
        "secretName": "kqi-hub-secrets", "defaultMode": 0o440,
        "items": [{"key": "postgres-password", "path": "postgres-password"}]}
    # the postgres user (999), a read-only root filesystem with its socket and /tmp folders apart
    assert pod["securityContext"] == {"runAsUser": 999, "runAsGroup": 999, "runAsNonRoot": True, "fsGroup": 999,
                                      "seccompProfile": {"type": "RuntimeDefault"}}
    assert container["securityContext"] == {"allowPrivilegeEscalation": False, "privileged": False,
                                            "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}}
    assert {"/var/run/postgresql", "/tmp", "/var/lib/postgresql/data"} <= set(mounts)
    assert pod["automountServiceAccountToken"] is False
    assert container["resources"]["limits"] and container["resources"]["requests"]
    # only the hub pod reaches it
    policy = find(docs, "NetworkPolicy", "kqi-postgresql")["spec"]
    assert policy["podSelector"]["matchLabels"].items() <= statefulset["spec"]["template"]["metadata"][
        "labels"].items()
    assert policy["ingress"] == [{"from": [{"podSelector": {"matchLabels": {"component": "hub", "release": RELEASE}}}],
                                  "ports": [{"port": 5432, "protocol": "TCP"}]}]
    assert "CREATE DATABASE kqi;" in find(docs, "ConfigMap", "kqi-postgresql-init")["data"]["10-kqi.sql"]
    service = find(docs, "Service", "kqi-postgresql")
    assert service["spec"]["selector"].items() <= statefulset["spec"]["template"]["metadata"]["labels"].items()
    # without the bundled PostgreSQL the URLs are required
    with pytest.raises(helm.HelmError, match="database.hubUrl is required"):
        render(own_chart, {"postgresql": {"enabled": False}})


# ------------------------------------------------------------------------------ RBAC
_RESOURCES = {  # kubernetes_asyncio method suffix -> (API group, resource, namespaced)
    "job": ("batch", "jobs", True),
    "pod": ("", "pods", True),
    "pod_log": ("", "pods/log", True),
    "config_map": ("", "configmaps", True),
    "secret": ("", "secrets", True),
    "service": ("", "services", True),
    "node": ("", "nodes", False),
}
_VERBS = {"create": "create", "read": "get", "list": "list", "watch": "watch", "patch": "patch",
          "delete": "delete", "replace": "update"}


def job_backend_api_calls() -> set[tuple[str, str, str, bool]]:
    """(group, resource, verb, namespaced) of every Kubernetes API call of the job backend."""
    if not JOB_BACKEND.exists():
        pytest.skip("the Kubernetes job backend (kqi_services/jobs/kubernetes.py) is not there")
    calls = set()
    for method in set(re.findall(r"\b_(?:core|batch)(?:_api)?\.(\w+)", JOB_BACKEND.read_text())):
        match = re.fullmatch(r"(create|read|list|watch|patch|delete|replace)_(namespaced_)?(\w+)", method)
        assert match, f"unknown Kubernetes API call {method} in {JOB_BACKEND.name}"
        verb, _, resource = match.groups()
        assert resource in _RESOURCES, f"{JOB_BACKEND.name} calls {method}: add its resource to the chart's RBAC"
        group, plural, namespaced = _RESOURCES[resource]
        calls.add((group, plural, _VERBS[verb], namespaced))
    return calls


def granted(rules: list[dict]) -> set[tuple[str, str, str]]:
    return {(g, r, v) for rule in rules for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}


def test_rbac_covers_the_job_backend(own_chart):
    calls = job_backend_api_calls()
    assert ("batch", "jobs", "create", True) in calls  # the scan found the calls
    docs = documents(render(own_chart))
    role = granted(find(docs, "Role", "kqi-jobs")["rules"])
    cluster_role = granted(find(docs, "ClusterRole", "ai-kqi-kqi-nodes")["rules"])
    for group, resource, verb, namespaced in sorted(calls):
        assert (group, resource, verb) in (role if namespaced else cluster_role), (group, resource, verb)
    # what the brief of the backend names, and watching what it lists
    for resource in ("configmaps", "secrets"):
        for verb in ("create", "get", "list", "watch", "delete"):
            assert ("", resource, verb) in role
    assert {("batch", "jobs", v) for v in ("get", "list", "watch", "delete", "patch")} <= role
    assert {("", "pods", "list"), ("", "pods", "watch"), ("", "pods/log", "get")} <= role
    # the rights go to the hub pod's service account: the kqi service is a process in it
    for kind in ("RoleBinding", "ClusterRoleBinding"):
        binding = find(docs, kind, "kqi-jobs" if kind == "RoleBinding" else "ai-kqi-kqi-nodes")
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "hub", "namespace": NAMESPACE}]


@pytest.mark.parametrize("z2jh_values, account", [
    ({"hub": {"serviceAccount": {"name": "custom"}}}, "custom"),
    ({"fullnameOverride": "jh"}, "jh-hub"),
    ({"fullnameOverride": None}, "kqi-jupyterhub-hub"),
    ({"hub": {"serviceAccount": {"create": False}}}, "default"),
])
def test_rolebinding_follows_the_hub_service_account_name(own_chart, z2jh_values, account):
    docs = documents(render(own_chart, {"jupyterhub": z2jh_values}))
    assert find(docs, "RoleBinding", "kqi-jobs")["subjects"][0]["name"] == account


# ------------------------------------------------------------------------------ the jupyterhub: section
def test_jupyterhub_values_agree_with_the_chart(own_chart):
    values = values_yaml()
    z2jh = values["jupyterhub"]
    hub = z2jh["hub"]
    docs = documents(render(own_chart))
    secret = find(docs, "Secret", values["secret"]["name"])

    # every secretKeyRef names our Secret and one of its keys
    refs = [e["valueFrom"]["secretKeyRef"] for e in hub["extraEnv"].values()
            if isinstance(e, dict) and "secretKeyRef" in e.get("valueFrom", {})]
    assert refs
    for ref in refs:
        assert ref["name"] == values["secret"]["name"] and ref["key"] in secret["data"], ref
    assert hub["extraEnv"]["KQI_PROFILE"] == "kubernetes"
    assert z2jh_env("KQI_NAMESPACE") == {"valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}

    # the shared volume and the ConfigMap are mounted where the settings say
    volumes = {v["name"]: v for v in hub["extraVolumes"]}
    mounts = {m["name"]: m for m in hub["extraVolumeMounts"]}
    assert volumes["kqi-store"]["persistentVolumeClaim"]["claimName"] == values["storage"]["claimName"]
    assert mounts["kqi-store"]["mountPath"] == values["storage"]["mountPath"]
    config_map = find(docs, "ConfigMap", volumes["kqi-config"]["configMap"]["name"])
    etc = mounts["kqi-config"]["mountPath"]
    (snippet,) = hub["extraConfig"].values()
    assert f'open("{etc}/z2jh_kqi.py")' in snippet and "z2jh_kqi.py" in config_map["data"]

    # the kqi service's port: on the hub Service, and let through both network policies
    port = values["service"]["port"]
    assert json.loads(config_map["data"]["settings.json"])["servicePort"] == port
    (extra_port,) = hub["service"]["extraPorts"]
    assert extra_port == {"name": "kqi", "port": port, "targetPort": port}
    assert [p["port"] for rule in hub["networkPolicy"]["ingress"] for p in rule["ports"]] == [port]
    egress = z2jh["proxy"]["chp"]["networkPolicy"]["egress"]
    assert [p["port"] for rule in egress for p in rule["ports"]] == [port]
    assert egress[0]["to"] == [{"podSelector": {"matchLabels": {"component": "hub"}}}]

    # what KQI notebooks need from z2jh
    assert hub["db"]["type"] == "postgres" and hub["allowNamedServers"] is True
    assert z2jh["singleuser"]["storage"]["type"] == "none"  # /kqi/output is the home; KubeSpawner.volumes stays {}
    assert z2jh["cull"]["enabled"] is False  # notebooks end with their lifetime
    assert z2jh["singleuser"]["cloudMetadata"]["blockWithIptables"] is False  # no privileged init container
    assert z2jh["fullnameOverride"] == ""  # the hub Service is `hub`, its service account `hub`
    assert hub["image"]["name"] and hub["image"]["tag"]


def test_jupyterhub_values_give_the_kubernetes_profile_its_environment():
    """profiles/kubernetes.py: every required("...") variable comes from hub.extraEnv, every
    other KQI_* variable it reads from hub.extraEnv or from the glue (z2jh_kqi.py)."""
    profile = (ROOT / "hub_config" / "profiles" / "kubernetes.py").read_text()
    required = set(re.findall(r'required\(\s*"(KQI_\w+)"', profile))
    read = set(re.findall(r'environ(?:\.get\(|\[)\s*"(KQI_\w+)"', profile)) | required
    assert "KQI_HUB_DB_URL" in required
    extra_env = set(values_yaml()["jupyterhub"]["hub"]["extraEnv"])
    glue_env = set(re.findall(r'^\s+"(KQI_\w+)":', (FILES / "z2jh_kqi.py").read_text(), re.M))
    glue_env |= set(re.findall(r'env\["(KQI_\w+)"\]', (FILES / "z2jh_kqi.py").read_text()))
    assert required <= extra_env, f"not in jupyterhub.hub.extraEnv: {sorted(required - extra_env)}"
    assert read <= extra_env | glue_env, f"not provided: {sorted(read - extra_env - glue_env)}"


# ------------------------------------------------------------------------------ the hub glue and the service config
class HubPod:
    """The files and environment the hub pod would have: our ConfigMap at <tmp>/kqi."""

    def __init__(self, tmp_path: Path, docs: list[dict]):
        self.tmp = tmp_path
        self.kqi_etc = tmp_path / "kqi"
        self.kqi_etc.mkdir()
        for name, text in find(docs, "ConfigMap", "kqi-hub-config")["data"].items():
            (self.kqi_etc / name).write_text(text)
        self.secrets = {d["metadata"]["name"]: secret_data(d) for d in docs if d["kind"] == "Secret"}

    def localize(self, text: str) -> str:
        return text.replace("/usr/local/etc/kqi", str(self.kqi_etc))

    def container_env(self, env_list: list[dict]) -> dict:
        env = {}
        for e in env_list:
            if "value" in e:
                env[e["name"]] = e["value"]
            elif "secretKeyRef" in e["valueFrom"]:
                ref = e["valueFrom"]["secretKeyRef"]
                env[e["name"]] = self.secrets[ref["name"]][ref["key"]]
            else:
                assert e["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
                env[e["name"]] = NAMESPACE
        # Kubernetes' own variables; the data directory in the test's folder, not /srv/kqi
        env.update({"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443",
                    "KQI_DATA_DIR": str(self.tmp / "data")})
        return env


def clean_environ(env: dict):
    """os.environ with `env` and without any KQI_* variable of the test run, restored afterwards."""
    patch = mock.patch.dict(os.environ, env)
    patch.start()
    for key in list(os.environ):
        if key.startswith("KQI_") and key not in env:
            del os.environ[key]
    return patch


def extra_env_as_list(extra_env: dict) -> list[dict]:
    return [{"name": k, **(v if isinstance(v, dict) else {"value": str(v)})} for k, v in extra_env.items()]


def check_hub_config(cfg, pod: HubPod, port: int = 10101) -> dict:
    """What KQI Hub needs of the hub's final configuration; returns the kqi service entry."""
    hub = cfg.JupyterHub
    assert hub.spawner_class == "kqi-kube" and hub.authenticator_class == "kqi"
    assert hub.allow_named_servers is True
    assert hub.db_url == pod.secrets["kqi-hub-secrets"]["hub-db-url"]
    # z2jh's networking is untouched
    assert cfg.ConfigurableHTTPProxy.api_url == "http://proxy-api:8001"
    assert cfg.ConfigurableHTTPProxy.should_start is False
    assert "auth_token" not in cfg.ConfigurableHTTPProxy  # from CONFIGPROXY_AUTH_TOKEN
    assert hub.hub_bind_url == "http://:8081" and hub.hub_connect_url == "http://hub:8081"
    assert not {"ip", "port", "hub_ip", "hub_port", "hub_connect_ip", "cookie_secret_file"} & set(hub)
    # the kqi service beside z2jh's services, reachable from the proxy pod
    (kqi,) = [s for s in hub.services if s["name"] == "kqi"]
    assert kqi["url"] == f"http://hub:{port}"
    env = kqi["environment"]
    assert env["KQI_PROFILE"] == "kubernetes"
    assert env["KQI_SERVICE_CONFIG"] == str(pod.kqi_etc / "kqi_service_config.py")
    assert env["KUBERNETES_SERVICE_HOST"] == "10.96.0.1" and env["KUBERNETES_SERVICE_PORT"] == "443"
    assert env["KQI_DB_URL"] == pod.secrets["kqi-hub-secrets"]["kqi-db-url"]
    assert env["KQI_SECRET_KEY"] == pod.secrets["kqi-hub-secrets"]["secret-key"]
    assert {"kqi-system-admin", "kqi-service"} <= {r["name"] for r in hub.load_roles}
    # notebooks
    spawner = cfg.KqiKubeSpawner
    assert spawner.namespace == NAMESPACE
    assert spawner.storage_claim_name == "kqi-store" and spawner.runtime_config_map == "kqi-runtime"
    assert spawner.default_image == cfg.KubeSpawner.image
    return kqi


def check_service_config(kqi_service: dict, settings: dict) -> None:
    """The kqi service process as the hub starts it: its config file and the job backend's traits."""
    if not JOB_BACKEND.exists():
        pytest.skip("the Kubernetes job backend (kqi_services/jobs/kubernetes.py) is not there")
    from kqi_services.app import KqiService
    from kqi_services.jobs.kubernetes import KubernetesBackend

    env = {**kqi_service["environment"], "JUPYTERHUB_SERVICE_URL": kqi_service["url"],
           "JUPYTERHUB_SERVICE_NAME": "kqi"}
    patch = clean_environ(env)
    try:
        app = KqiService()
        app.load_config_file(env["KQI_SERVICE_CONFIG"])
        assert (app.ip, app.port) == ("0.0.0.0", settings["servicePort"])
        # (KqiService.profile's default is read from KQI_PROFILE when the module is imported)
        assert env["KQI_PROFILE"] == "kubernetes" and app.job_backend == "kubernetes"
        backend = KubernetesBackend(parent=app)
    finally:
        patch.stop()
    jobs = settings["jobs"]
    assert backend.namespace == settings["namespace"]
    assert backend.storage_volume == {"persistentVolumeClaim": {"claimName": settings["storage"]["claimName"]}}
    assert backend.storage_root == settings["storage"]["mountPath"]
    assert backend.jobs_dir == settings["dataDir"] + "/jobs"
    assert settings["dataDir"].startswith(backend.storage_root + "/")  # the job folders are on the volume
    assert backend.default_image == jobs["defaultImage"] and backend.service_account == jobs["serviceAccount"]
    assert backend.partition_label == settings["partitionLabel"]
    assert backend.node_selector == jobs["nodeSelector"]
    assert (backend.total_cpu, backend.total_memory_gib, backend.total_gpu) == (
        jobs["capacity"]["cpu"], jobs["capacity"]["memoryGiB"], jobs["capacity"]["gpu"])
    assert backend.active_deadline_seconds == jobs["activeDeadlineSeconds"]


Z2JH_LIKE_CONFIG = '''
c = get_config()
# what z2jh's jupyterhub_config.py has set when it runs hub.extraConfig
c.JupyterHub.spawner_class = "kubespawner.KubeSpawner"
c.ConfigurableHTTPProxy.api_url = "http://proxy-api:8001"
c.ConfigurableHTTPProxy.should_start = False
c.JupyterHub.hub_bind_url = "http://:8081"
c.JupyterHub.hub_connect_url = "http://hub:8081"
c.JupyterHub.allow_named_servers = True
c.JupyterHub.cookie_secret = "00ff"
c.JupyterHub.authenticator_class = "dummy"
c.KubeSpawner.namespace = "ai"
c.KubeSpawner.image = "quay.io/jupyter/base-notebook:latest"
c.KubeSpawner.volumes = {}
c.JupyterHub.services = [{"name": "jupyterhub-idle-culler", "command": ["python3", "-m", "jupyterhub_idle_culler"]}]
c.JupyterHub.load_roles = [{"name": "jupyterhub-idle-culler", "scopes": ["list:users"],
                            "services": ["jupyterhub-idle-culler"]}]
from z2jh import get_config  # z2jh's helper shadows traitlets' get_config, as in the real file
'''


def test_hub_glue_loads_kqi_into_a_z2jh_configuration(own_chart, tmp_path):
    """hub.extraConfig of values.yaml, run in a stand-in of z2jh's jupyterhub_config.py."""
    from traitlets.config.loader import PyFileConfigLoader

    docs = documents(render(own_chart))
    pod = HubPod(tmp_path, docs)
    (snippet,) = values_yaml()["jupyterhub"]["hub"]["extraConfig"].values()
    outer = tmp_path / "jupyterhub_config.py"
    outer.write_text(Z2JH_LIKE_CONFIG + "exec(" + repr(pod.localize(snippet)) + ")\n")
    fake_z2jh = types.ModuleType("z2jh")
    fake_z2jh.get_name = lambda name: name  # z2jh's default names: hub, proxy-api, ...
    fake_z2jh.get_config = lambda key, default=None: default

    env = pod.container_env(extra_env_as_list(values_yaml()["jupyterhub"]["hub"]["extraEnv"]))
    env["CONFIGPROXY_AUTH_TOKEN"] = "token"
    patch = clean_environ(env)
    try:
        with mock.patch.dict(sys.modules, {"z2jh": fake_z2jh}):
            cfg = PyFileConfigLoader(outer.name, path=str(tmp_path)).load_config()
        settings_env = {k: os.environ.get(k) for k in ("KQI_PUBLIC_URL", "KQI_NOTEBOOK_IMAGE", "KQI_HUB_SERVICE_HOST")}
    finally:
        patch.stop()
    kqi = check_hub_config(cfg, pod)
    # z2jh's own services and roles are kept
    assert [s["name"] for s in cfg.JupyterHub.services] == ["jupyterhub-idle-culler", "kqi"]
    assert "jupyterhub-idle-culler" in {r["name"] for r in cfg.JupyterHub.load_roles}
    assert cfg.JupyterHub.cookie_secret == "00ff"
    assert cfg.KqiKubeSpawner.default_image == "quay.io/jupyter/base-notebook:latest"
    assert settings_env == {"KQI_PUBLIC_URL": "http://localhost:8080",
                            "KQI_NOTEBOOK_IMAGE": "quay.io/jupyter/base-notebook:latest",
                            "KQI_HUB_SERVICE_HOST": "hub"}
    check_service_config(kqi, json.loads((pod.kqi_etc / "settings.json").read_text()))


def test_service_config_follows_the_values(own_chart, tmp_path):
    values = {"storage": {"claimName": "shared", "mountPath": "/data/kqi"}, "service": {"port": 12345},
              "partitionLabel": "pool", "jobs": {"nodeSelector": {"pool": "gpu"}, "activeDeadlineSeconds": 60,
                                                 "capacity": {"cpu": 8, "memoryGiB": 32.5, "gpu": 2}}}
    pod = HubPod(tmp_path, documents(render(own_chart, values, namespace="ml")))
    settings = json.loads((pod.kqi_etc / "settings.json").read_text())
    assert settings["namespace"] == "ml" and settings["dataDir"] == "/data/kqi/data"
    service = {"url": "http://hub:12345", "environment": {
        "KQI_PROFILE": "kubernetes", "KQI_SERVICE_CONFIG": str(pod.kqi_etc / "kqi_service_config.py"),
        "KQI_DATA_DIR": settings["dataDir"]}}
    check_service_config(service, settings)


# ------------------------------------------------------------------------------ with the z2jh chart
def _unpacked_chart(folder: Path) -> Path:
    """An unpacked chart: the folder itself, or its jupyterhub/ (as the vendored copy lays it out)."""
    return folder if (folder / "Chart.yaml").exists() or not (folder / "jupyterhub" / "Chart.yaml").exists() \
        else folder / "jupyterhub"


def z2jh_chart() -> Path | None:
    """The z2jh dependency: KQI_Z2JH_CHART, charts/jupyterhub-*.tgz of the chart, or the vendored
    copy in ../shared/vendor/z2jh-<pinned version> beside the repository."""
    if os.environ.get("KQI_Z2JH_CHART"):
        return _unpacked_chart(Path(os.environ["KQI_Z2JH_CHART"]))
    found = sorted((CHART / "charts").glob("jupyterhub-*.tgz")) if (CHART / "charts").exists() else []
    if found:
        return found[-1]
    vendored = ROOT.parent / "shared" / "vendor" / f"z2jh-{chart_yaml()['dependencies'][0]['version']}"
    return _unpacked_chart(vendored) if vendored.is_dir() else None


def render_full_chart(dest: Path, source: Path) -> Path:
    """A copy of the chart with the z2jh dependency `source` in its charts/."""
    chart = copy_chart(dest, with_dependency=True)
    (chart / "charts").mkdir()
    if source.is_dir():
        # (the vendored copy has no write bits: the copy gets them, so that pytest can remove it)
        shutil.copytree(source, chart / "charts" / "jupyterhub", copy_function=shutil.copyfile)
        for folder, _dirs, _files in os.walk(chart / "charts"):
            os.chmod(folder, 0o755)
        version = chart_yaml(source)["version"]
    else:
        shutil.copy(source, chart / "charts" / source.name)
        version = source.name[len("jupyterhub-"):-len(".tgz")]
    assert version == chart_yaml()["dependencies"][0]["version"], f"z2jh {version} is not the pinned version"
    return chart


@pytest.fixture(scope="module")
def full_chart(tmp_path_factory) -> Path:
    source = z2jh_chart()
    if source is None:
        pytest.skip("the Zero to JupyterHub chart is not here: run `helm dependency update helm/kqi-hub`,"
                    " set KQI_Z2JH_CHART to an unpacked z2jh chart, or lay shared/vendor/ beside the repository")
    return render_full_chart(tmp_path_factory.mktemp("full") / "kqi-hub", source)


def test_full_chart_renders_valid_objects(full_chart):
    report = helm.lint(str(full_chart), strict=True, kube_version="v1.33.0")
    assert report["errors"] == [], report
    docs = documents(render(full_chart))
    validate_all(docs, versions=KUBE_VERSIONS[-1:])  # z2jh's own objects too (one version: they are many)
    deployment = find(docs, "Deployment", "hub")
    spec = deployment["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == "hub"
    assert find(docs, "RoleBinding", "kqi-jobs")["subjects"][0]["name"] == "hub"
    assert {"name": "kqi-store", "persistentVolumeClaim": {"claimName": "kqi-store"}} in spec["volumes"]
    (container,) = spec["containers"]
    assert {"name": "kqi-store", "mountPath": "/srv/kqi"} in container["volumeMounts"]
    assert container["image"] == "kqi-hub:0.1.0"
    service = find(docs, "Service", "hub")
    assert {"name": "kqi", "port": 10101, "targetPort": 10101} in service["spec"]["ports"]
    ingress = find(docs, "NetworkPolicy", "hub")["spec"]["ingress"]
    assert any(p.get("port") == 10101 for rule in ingress for p in rule.get("ports", []))
    egress = find(docs, "NetworkPolicy", "proxy")["spec"]["egress"]
    assert any(p.get("port") == 10101 for rule in egress for p in rule.get("ports", []))
    assert not [d for d in docs if d["kind"] == "PersistentVolumeClaim" and d["metadata"]["name"] == "hub-db-dir"]
    # resources of the hub (hub and kqi service) and the proxy; the proxy has no API token
    assert container["resources"]["limits"] and container["resources"]["requests"]
    proxy = find(docs, "Deployment", "proxy")["spec"]["template"]["spec"]
    assert proxy["automountServiceAccountToken"] is False
    assert proxy["containers"][0]["resources"]["limits"] and proxy["containers"][0]["resources"]["requests"]


@contextlib.contextmanager
def z2jh_hub_configuration(docs: list[dict], tmp_path: Path):
    """The hub's configuration as the hub pod of a full rendering loads it: z2jh's
    jupyterhub_config.py from the rendered ConfigMap, with the rendered values in the hub Secret
    and our hub.extraConfig. Yields (config, HubPod, environment) with the pod's environment set."""
    from traitlets.config.loader import PyFileConfigLoader

    pod = HubPod(tmp_path, docs)
    etc = tmp_path / "etc"
    for sub in ("secret", "config"):
        (etc / sub).mkdir(parents=True)

    def localize(text):
        return pod.localize(text.replace("/usr/local/etc/jupyterhub/", f"{etc}/"))

    for key, value in secret_data(find(docs, "Secret", "hub")).items():
        (etc / "secret" / key).write_text(localize(value))
    config_map = find(docs, "ConfigMap", "hub")["data"]
    for key, value in config_map.items():
        (etc / "config" / key).write_text(value)
    for key in ("jupyterhub_config.py", "z2jh.py"):
        (etc / key).write_text(localize(config_map[key]))
    (container,) = find(docs, "Deployment", "hub")["spec"]["template"]["spec"]["containers"]
    env = pod.container_env(container["env"])
    env.update({"PROXY_API_SERVICE_PORT": "8001", "HUB_SERVICE_PORT": "8081"})  # Kubernetes' service variables

    patch = clean_environ(env)
    try:
        with mock.patch.dict(sys.modules), mock.patch.object(sys, "path", list(sys.path)), \
                mock.patch("tornado.httpclient.AsyncHTTPClient.configure"):  # pycurl is in the hub image only
            sys.modules.pop("z2jh", None)
            cfg = PyFileConfigLoader("jupyterhub_config.py", path=str(etc)).load_config()
        yield cfg, pod, env
    finally:
        patch.stop()


def test_full_chart_hub_configuration_starts_jupyterhub(full_chart, tmp_path):
    """z2jh's jupyterhub_config.py from the rendered ConfigMap, with the rendered values in the hub
    Secret and our hub.extraConfig, then JupyterHub.initialize() on SQLite."""
    docs = documents(render(full_chart))
    with z2jh_hub_configuration(docs, tmp_path) as (cfg, pod, env):
        kqi = check_hub_config(cfg, pod)
        assert cfg.KubeSpawner.volumes == {} and cfg.KubeSpawner.image == "quay.io/jupyter/base-notebook:latest"
        assert [s["name"] for s in cfg.JupyterHub.services] == ["kqi"]  # cull is off
        # no privileged iptables init container in notebook pods (the NetworkPolicy blocks the
        # cloud metadata server instead)
        assert not cfg.KubeSpawner.get("init_containers")

        from jupyterhub.app import JupyterHub

        cfg.JupyterHub.db_url = f"sqlite:///{tmp_path / 'hub.sqlite'}"

        async def initialize():
            app = JupyterHub(config=cfg)
            app.load_config_file = lambda *args, **kwargs: None
            with mock.patch("kubespawner.spawner.load_config"):
                await app.initialize([])
            try:
                assert app.spawner_class.__name__ == "KqiKubeSpawner"
                assert type(app.authenticator).__name__ == "KqiAuthenticator"
                assert app.proxy.api_url == "http://proxy-api:8001" and app.proxy.auth_token == env[
                    "CONFIGPROXY_AUTH_TOKEN"]
                assert app.hub.url == "http://hub:8081/hub/"
                service = app._service_map["kqi"]
                assert (service.url, service.managed) == ("http://hub:10101", True)
            finally:
                app.db.close()

        asyncio.run(initialize())
    check_service_config(kqi, json.loads((pod.kqi_etc / "settings.json").read_text()))
