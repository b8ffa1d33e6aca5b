"""The Kubernetes job backend: each job is a batch/v1 Job running the same job runtime.

Manifests are built by pure functions (like kubespawner's objects.py) from a LaunchRequest
(image, registry credential, gpu, partition, tenant, user, plain and secret environment, the
/kqi mount plan of launch.kqi_mounts; the engine fills it) and the backend's
ManifestSettings. Per job, in the backend's namespace:

    Job        <key>             backoffLimit 0, restartPolicy Never, ttlSecondsAfterFinished,
                                 one container `main` (the user's image) running
                                 `sh /kqi/runtime/start.sh /kqi/spec/spec.json`
    ConfigMap  <key>-runtime     start.sh, kqi_runtime.py and layout.py, mounted read-only at
                                 /kqi/runtime
    Secret     <key>-secrets     spec.json (it holds the git token and signed download URLs),
                                 mounted read-only at /kqi/spec, and the secret environment
                                 (KQI_TOKEN, MODEL_REPOSITORY_TOKEN, ...), mounted as files at
                                 /var/run/secrets/kqi (one file per variable, mode 0400): the
                                 runtime loads every file of $KQI_SECRETS_DIR into the
                                 environment, so no secret is in the Job's env (CIS 5.4.1)
    Secret     <key>-registry    kubernetes.io/dockerconfigjson from the user's registry
                                 credential, the pod's imagePullSecret (only with a credential)

The Secrets and the ConfigMap carry an ownerReference to the Job, so they are deleted with
it. The Job is created suspended and resumed once its Secrets and ConfigMap exist: no pod
ever starts without them, and a launch interrupted in between leaves a suspended Job
that is reported as ended (and deleted) instead of running forever.

Least privilege, as a cluster's restricted pod policy would have it, with root inside the
container (the guide says jobs run as root): no privilege escalation, not privileged, every
capability dropped but launch.CONTAINER_CAPABILITIES, the runtime's default seccomp
profile, no service account token, no service links.

Storage. The bind mounts of the plan (/kqi/output, /kqi/attach, /kqi/raw/Data,
/kqi/parent[/<id>], /kqi/inference/<id>) are subPaths of one shared volume
(`storage_volume`, by default the PersistentVolumeClaim `kqi-data`, ReadWriteMany) that the
service has mounted at `storage_root`: the host folders of the plan are translated into
subPaths of that volume. So the service sees the log and the outputs while the job writes
them (live log, container files), with a local object store on that volume as well as with
S3 (then the engine uploads the job folder's output and attach at the end, as with the local
backend). The scratch mounts (/kqi/tmp, /kqi/git, /kqi/input, /kqi/home) are emptyDirs on
the node, the runtime mount the ConfigMap, /dev/shm a memory emptyDir.

Results. The runtime writes /kqi/tmp/result.json; the container's command copies it to
/dev/termination-log, so the pod status carries it after the pod ended
(`state.terminated.message`, with FallbackToLogsOnError: the log's tail when the runtime
could not even start). Pod and Job status become a JobResult: the runtime's exit code and
message, OOMKilled, failed image pulls, evictions, deadlines, a vanished Job.

Watching is a poll shared by all jobs: one list of the backend's Jobs and one list of their
pods (label selector `app=kqi,kqi/job`) at most every `status_cache_seconds`, however many
jobs run; the engine asks for each running job's result on every tick and gets it from
that snapshot.

Client. kubernetes_asyncio (already installed with KubeSpawner; there is no second, sync
client) runs on a private event loop in a daemon thread owned by the backend. The engine
calls the backend from its worker threads; each call is handed to that loop with
run_coroutine_threadsafe and waited for with a timeout, so the aiohttp session stays on one
loop and the service's own loop is never blocked.

RBAC the service account needs in `namespace`: jobs (create, get, list, patch, delete),
pods (list), pods/log (get), configmaps and secrets (create, delete); cluster-wide: nodes
(list), unless the capacity is configured (`total_cpu`, `total_memory_gib`, `total_gpu`).
"""
from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import hashlib
import json
import os
import re
import shutil
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from traitlets import Bool, Dict, Float, Integer, List, Unicode, default
from traitlets.config import LoggingConfigurable

from ..runtime import RUNTIME_FILES
from .launch import run_times
from .launch import (BIND, CONTAINER_CAPABILITIES, RUNTIME, RUNTIME_DIR, SCRATCH, JobResult, LaunchRequest, Mount,
                     RegistryCredential, normalize_image, scratch_name)

# ------------------------------------------------------------------------------ constants
APP_LABEL = "app"
APP = "kqi"
LABEL_JOB = "kqi/job"
LABEL_KIND = "kqi/kind"
LABEL_ID = "kqi/id"
LABEL_TENANT = "kqi/tenant"
LABEL_USER = "kqi/user"
SELECTOR = f"{APP_LABEL}={APP},{LABEL_JOB}"

CONTAINER = "main"
SPEC_DIR = "/kqi/spec"
SPEC_KEY = "spec.json"
#: where the secret environment is, one file per variable (KQI_SECRETS_DIR of the runtime)
SECRETS_DIR = "/var/run/secrets/kqi"
TERMINATION_LOG = "/dev/termination-log"
#: a Secret (like any object) is limited to 1 MiB; bigger specs go onto the shared volume
SPEC_SECRET_LIMIT = 700 * 1024

#: plain variables that still never appear inline in a manifest (they go with the secret ones)
_SECRET_NAME = re.compile(r"TOKEN|PASSWORD|PASSWD|SECRET|CREDENTIAL|PRIVATE_KEY|ACCESS_KEY|API_KEY", re.I)
_URL_WITH_USERINFO = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/@\s]+@")
_SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

#: container waiting reasons after which the pod will not start by itself
FATAL_WAITING = frozenset({"ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull",
                           "CreateContainerConfigError"})


# ------------------------------------------------------------------------------ inputs
@dataclass
class ManifestSettings:
    """The backend's configuration that shapes the manifests."""

    namespace: str = "kqi"
    default_image: str = "python:3.12"
    image_pull_policy: str = "Always"
    service_account: str = ""
    partition_label: str = "kqi.partition"
    tenant_node_label: bool = False
    node_selector: dict = field(default_factory=dict)
    gpu_resource: str = "nvidia.com/gpu"
    gpu_tolerations: list = field(default_factory=lambda: [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}])
    ttl_seconds_after_finished: int = 86400
    active_deadline_seconds: int = 0
    termination_grace_seconds: int = 5
    storage_volume: dict = field(default_factory=lambda: {"persistentVolumeClaim": {"claimName": "kqi-data"}})
    storage_root: str = "/srv/kqi"


# ------------------------------------------------------------------------------ security
def container_security_context(capabilities=CONTAINER_CAPABILITIES) -> dict:
    """A container's securityContext: a restricted pod policy's, but root inside the container.

    No privilege escalation (no_new_privs: setuid binaries gain nothing), not privileged, every
    capability dropped but those root in a container needs to install packages and run programs
    as other users (launch.CONTAINER_CAPABILITIES: nothing that reaches the host), the container
    runtime's default seccomp profile.
    """
    return {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "capabilities": {"drop": ["ALL"], "add": list(capabilities)},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def pod_security_context() -> dict:
    """A pod's securityContext: the container runtime's default seccomp profile for every container."""
    return {"seccompProfile": {"type": "RuntimeDefault"}}


# ------------------------------------------------------------------------------ small pure helpers
def label_value(text: str) -> str:
    """A valid label value for any text (user names may be e-mail addresses): unchanged when
    it already is one, otherwise cleaned and suffixed with a hash so that values stay distinct."""
    text = str(text)
    if len(text) <= 63 and _LABEL_VALUE.match(text):
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", text)[:52].strip("-._")
    return f"{cleaned}-{digest}" if cleaned else digest


def job_labels(req: LaunchRequest) -> dict:
    return {
        APP_LABEL: APP,
        LABEL_JOB: label_value(req.key),
        LABEL_KIND: label_value(req.kind),
        LABEL_ID: str(req.job_id),
        LABEL_TENANT: label_value(req.tenant),
        LABEL_USER: label_value(req.user),
    }


def job_annotations(req: LaunchRequest) -> dict:
    """The exact tenant and user names (labels may have had to be cleaned)."""
    return {"kqi/tenant": req.tenant, "kqi/user": req.user}


def cpu_quantity(cpu: float) -> str:
    millis = max(1, int(round(float(cpu) * 1000)))
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def memory_quantity(gib: float) -> str:
    """"<n>Gi" for whole GiB, otherwise MiB (e.g. 1.5 → "1536Mi")."""
    mib = max(1, int(round(float(gib) * 1024)))
    return f"{mib // 1024}Gi" if mib % 1024 == 0 else f"{mib}Mi"


_SUFFIX = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4, "Pi": 1024**5, "Ei": 1024**6,
           "n": 1e-9, "u": 1e-6, "m": 1e-3, "": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18}


def parse_quantity(value) -> float:
    """A Kubernetes quantity ("3920m", "16318040Ki", "2", "1e3") as a number."""
    if isinstance(value, (int, float)):
        return float(value)
    match = re.fullmatch(r"\s*([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*", str(value))
    if not match or match.group(2) not in _SUFFIX:
        raise ValueError(f"not a Kubernetes quantity: {value!r}")
    return float(match.group(1)) * _SUFFIX[match.group(2)]


def looks_secret(name: str, value: str) -> bool:
    """A plain variable that still must not be written into a manifest: a token, a password, a
    URL with credentials (a package index or proxy of the job environment setting)."""
    return bool(_SECRET_NAME.search(name)) or bool(_URL_WITH_USERINFO.match(value or ""))


def split_env(env: dict, secret_env: dict | None = None) -> tuple[dict, dict]:
    """(plain, secret) variables: the request's secret ones, and plain ones that look secret."""
    plain, secret = {}, {name: str(value) for name, value in (secret_env or {}).items()}
    for name, value in env.items():
        if name in secret:
            continue
        (secret if looks_secret(name, str(value)) else plain)[name] = str(value)
    return plain, secret


def secret_key_for(name: str) -> str:
    """The Secret data key of an environment variable (data keys allow fewer characters)."""
    return name if _SECRET_KEY.match(name) and name != SPEC_KEY else "env-" + name.encode().hex()


def secret_file_for(name: str) -> str:
    """The file of a secret variable in SECRETS_DIR: its name (the runtime skips dot files, and
    a Secret volume's own entries begin with '..')."""
    if not name or name.startswith(".") or "/" in name or "=" in name or "\0" in name:
        raise ValueError(f"the secret environment variable {name!r} cannot be passed as a file")
    return name


def _b64(data: bytes | str) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def _under(path: str, root: str) -> str:
    """The path relative to the shared storage root (a subPath), or ValueError."""
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    if os.path.commonpath([real, real_root]) != real_root:
        raise ValueError(f"{path} is not on the shared job storage ({root}): the Kubernetes backend "
                         "needs the object store and the job folders on the volume mounted there")
    rel = os.path.relpath(real, real_root).replace(os.sep, "/")
    return "" if rel == "." else rel


# ------------------------------------------------------------------------------ manifests
def configmap_name(key: str) -> str:
    return f"{key}-runtime"


def secret_name(key: str) -> str:
    return f"{key}-secrets"


def registry_secret_name(key: str) -> str:
    return f"{key}-registry"


def runtime_files() -> dict[str, str]:
    """The job runtime, its start script and the layout module it imports (the files the local
    backend copies into a job's folder)."""
    files = {}
    for name, path in RUNTIME_FILES.items():
        with open(path, encoding="utf-8") as f:
            files[name] = f.read()
    return files


def make_runtime_configmap(key: str, namespace: str, labels: dict, files: dict[str, str] | None = None) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": configmap_name(key), "namespace": namespace, "labels": dict(labels)},
        "data": dict(files if files is not None else runtime_files()),
    }


def make_env_secret(key: str, namespace: str, labels: dict, secret_env: dict, spec_json: str | None) -> dict:
    """The per-job Secret: the secret environment variables and (usually) spec.json."""
    data = {secret_key_for(name): _b64(value) for name, value in secret_env.items()}
    if spec_json is not None:
        data[SPEC_KEY] = _b64(spec_json)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": secret_name(key), "namespace": namespace, "labels": dict(labels)},
        "data": data,
    }


def make_registry_secret(key: str, namespace: str, labels: dict, credential: RegistryCredential) -> dict:
    """A kubernetes.io/dockerconfigjson Secret from the user's registry credential."""
    user = credential.username or ""
    auth = {"username": user, "password": credential.password,
            "auth": _b64(f"{user}:{credential.password}")}
    config = json.dumps({"auths": {credential.server: auth}}, separators=(",", ":"))
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/dockerconfigjson",
        "metadata": {"name": registry_secret_name(key), "namespace": namespace, "labels": dict(labels)},
        "data": {".dockerconfigjson": _b64(config)},
    }


def owned_by(doc: dict, job: dict) -> dict:
    """The document with an ownerReference to the created Job (it is deleted with the Job)."""
    meta = job["metadata"]
    doc = json.loads(json.dumps(doc))
    doc["metadata"]["ownerReferences"] = [{"apiVersion": "batch/v1", "kind": "Job", "name": meta["name"],
                                           "uid": meta["uid"]}]
    return doc


def runtime_command() -> list[str]:
    """Run the runtime (start.sh finds or installs a Python), then hand its result.json to
    Kubernetes as the termination message."""
    script = (f"sh {RUNTIME_DIR}/start.sh {SPEC_DIR}/{SPEC_KEY}; rc=$?; "
              f"if [ -f /kqi/tmp/result.json ]; then cat /kqi/tmp/result.json > {TERMINATION_LOG}; fi; "
              "exit $rc")
    return ["sh", "-c", script]


def render_mounts(mounts: list[Mount], *, sub_path: Callable[[Mount], str | None], storage: dict,
                  runtime_config_map: str, storage_name: str = "storage", prefix: str = "",
                  runtime_mode: int | None = 0o444) -> tuple[list[dict], list[dict]]:
    """(volumes, volumeMounts) of a /kqi mount plan (launch.kqi_mounts), for jobs and notebooks alike.

    bind      a subPath of the shared storage volume `storage` (named `storage_name`):
              `sub_path(mount)` translates the mount's source, or says None to leave it out
    scratch   an emptyDir named <prefix><folder name> (/kqi/tmp -> tmp)
    runtime   the ConfigMap `runtime_config_map`, read-only
    """
    volumes: list[dict] = []
    volume_mounts: list[dict] = []
    uses_storage = False
    for m in mounts:
        if m.kind == SCRATCH:
            name = prefix + scratch_name(m.target)
            volumes.append({"name": name, "emptyDir": {}})
            volume_mounts.append({"name": name, "mountPath": m.target})
        elif m.kind == RUNTIME:
            name = prefix + "runtime"
            config_map = {"name": runtime_config_map}
            if runtime_mode is not None:
                config_map["defaultMode"] = runtime_mode
            volumes.append({"name": name, "configMap": config_map})
            volume_mounts.append({"name": name, "mountPath": m.target, "readOnly": True})
        elif m.kind == BIND:
            sub = sub_path(m)
            if sub is None:
                continue
            entry = {"name": storage_name, "mountPath": m.target}
            if sub:  # a subPath of "" means the whole volume
                entry["subPath"] = sub
            if not m.writable:
                entry["readOnly"] = True
            volume_mounts.append(entry)
            uses_storage = True
        else:
            raise ValueError(f"unknown mount kind {m.kind!r} of {m.target}")
    if uses_storage:
        volumes.insert(0, {"name": storage_name, **json.loads(json.dumps(storage))})
    return volumes, volume_mounts


def _is_kqi_path(target: str) -> bool:
    return target == "/kqi" or target.startswith("/kqi/")


def make_volumes(req: LaunchRequest, settings: ManifestSettings,
                 spec_subpath: str | None = None, secret_files: dict[str, str] | None = None
                 ) -> tuple[list[dict], list[dict]]:
    """(volumes, volumeMounts) of the job's pod: the request's mount plan, the spec, the secret
    environment's files ({variable: Secret data key}) and /dev/shm."""
    root = settings.storage_root

    def sub_path(m: Mount) -> str | None:
        if m.source is None:
            raise ValueError(f"the mount {m.target} has no host folder")
        if _is_kqi_path(m.target):  # /kqi/output, /kqi/attach, data and parents: on the volume, or no job
            return _under(m.source, root)
        try:  # a host path seen at the same path (a local git repository): only when it is on the volume
            return _under(m.source, root)
        except ValueError:
            return None

    volumes, mounts = render_mounts(req.mounts, sub_path=sub_path, storage=settings.storage_volume,
                                    runtime_config_map=configmap_name(req.key))
    if req.kind != "tensorboard" and not any(m["mountPath"] == "/kqi/output" for m in mounts):
        raise ValueError(f"the launch request of {req.key} has no /kqi/output")
    volumes.append({"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": memory_quantity(req.memory_gib or 1)}})
    mounts.append({"name": "shm", "mountPath": "/dev/shm"})
    if spec_subpath is None:
        volumes.append({"name": "spec", "secret": {"secretName": secret_name(req.key), "defaultMode": 0o444,
                                                   "items": [{"key": SPEC_KEY, "path": SPEC_KEY}]}})
        mounts.append({"name": "spec", "mountPath": SPEC_DIR, "readOnly": True})
    else:
        if not any(v["name"] == "storage" for v in volumes):
            volumes.insert(0, {"name": "storage", **json.loads(json.dumps(settings.storage_volume))})
        mounts.append({"name": "storage", "mountPath": SPEC_DIR, "subPath": spec_subpath, "readOnly": True})
    if secret_files:
        items = [{"key": key, "path": secret_file_for(name)} for name, key in sorted(secret_files.items())]
        volumes.append({"name": "secret-env", "secret": {"secretName": secret_name(req.key), "defaultMode": 0o400,
                                                         "items": items}})
        mounts.append({"name": "secret-env", "mountPath": SECRETS_DIR, "readOnly": True})
    return volumes, mounts


def make_env(env: dict, gpu: int, secrets: bool) -> list[dict]:
    out = [{"name": name, "value": value} for name, value in env.items() if name != "KQI_SECRETS_DIR"]
    if secrets:
        out.append({"name": "KQI_SECRETS_DIR", "value": SECRETS_DIR})
    if not gpu:  # NVIDIA's runtime would otherwise expose every GPU of the node
        out = [e for e in out if e["name"] != "NVIDIA_VISIBLE_DEVICES"]
        out.append({"name": "NVIDIA_VISIBLE_DEVICES", "value": "none"})
    return out


def make_affinity(req: LaunchRequest, settings: ManifestSettings) -> dict | None:
    expressions = []
    if req.partition:
        expressions.append({"key": settings.partition_label, "operator": "In", "values": [req.partition]})
    if settings.tenant_node_label:  # KAMONOHASHI's `<tenant>=true` node label
        expressions.append({"key": req.tenant, "operator": "In", "values": ["true"]})
    if not expressions:
        return None
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": expressions}]}}}


def make_job(req: LaunchRequest, settings: ManifestSettings, *, suspend: bool = True,
             spec_subpath: str | None = None) -> dict:
    """The batch/v1 Job of one KQI job (pure: everything comes from the arguments)."""
    labels = job_labels(req)
    plain_env, secret_env = split_env(req.env, req.secret_env)
    resources = {"cpu": cpu_quantity(req.cpu), "memory": memory_quantity(req.memory_gib)}
    if req.gpu:
        resources[settings.gpu_resource] = str(int(req.gpu))
    secret_files = {name: secret_key_for(name) for name in secret_env}
    volumes, mounts = make_volumes(req, settings, spec_subpath=spec_subpath, secret_files=secret_files)
    container = {
        "name": CONTAINER,
        "image": normalize_image(req.image, settings.default_image),
        "imagePullPolicy": settings.image_pull_policy,
        "command": runtime_command(),
        "workingDir": "/kqi",
        "env": make_env(plain_env, req.gpu, bool(secret_files)),
        "resources": {"requests": dict(resources), "limits": dict(resources)},
        "volumeMounts": mounts,
        "securityContext": container_security_context(),
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if req.ports:  # a job's declared ports, a TensorBoard's server: reached through make_service's Service
        container["ports"] = [{"containerPort": int(p), "protocol": "TCP"} for p in req.ports]
    pod_spec = {
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": int(settings.termination_grace_seconds),
        "automountServiceAccountToken": False,  # a job needs no access to the Kubernetes API
        "enableServiceLinks": False,
        "securityContext": pod_security_context(),
        "containers": [container],
        "volumes": volumes,
    }
    if settings.service_account:
        pod_spec["serviceAccountName"] = settings.service_account
    if req.registry is not None:
        pod_spec["imagePullSecrets"] = [{"name": registry_secret_name(req.key)}]
    affinity = make_affinity(req, settings)
    if affinity:
        pod_spec["affinity"] = affinity
    if settings.node_selector:
        pod_spec["nodeSelector"] = dict(settings.node_selector)
    if req.gpu and settings.gpu_tolerations:
        pod_spec["tolerations"] = json.loads(json.dumps(settings.gpu_tolerations))
    spec = {
        "suspend": bool(suspend),
        "parallelism": 1,
        "completions": 1,
        "backoffLimit": 0,
        "ttlSecondsAfterFinished": int(settings.ttl_seconds_after_finished),
        "template": {"metadata": {"labels": dict(labels), "annotations": job_annotations(req)},
                     "spec": pod_spec},
    }
    deadlines = [int(s) for s in (settings.active_deadline_seconds, req.timeout_seconds) if s]
    if deadlines:
        spec["activeDeadlineSeconds"] = min(deadlines)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": req.key, "namespace": settings.namespace, "labels": dict(labels),
                     "annotations": job_annotations(req)},
        "spec": spec,
    }


@dataclass
class Manifests:
    job: dict
    configmap: dict
    secret: dict
    registry_secret: dict | None
    spec_json: str  # also written to the shared volume when it is too large for the Secret
    spec_on_volume: bool


def make_manifests(req: LaunchRequest, settings: ManifestSettings, job_dir: str,
                   files: dict[str, str] | None = None) -> Manifests:
    """Every object of one job (the Job suspended; the others without their ownerReference yet)."""
    labels = job_labels(req)
    _plain, secret = split_env(req.env, req.secret_env)
    spec_json = json.dumps(req.spec, separators=(",", ":"))
    on_volume = len(spec_json.encode()) > SPEC_SECRET_LIMIT
    spec_subpath = _under(os.path.join(job_dir, "spec"), settings.storage_root) if on_volume else None
    job = make_job(req, settings, spec_subpath=spec_subpath)
    return Manifests(
        job=job,
        configmap=make_runtime_configmap(req.key, settings.namespace, labels, files),
        secret=make_env_secret(req.key, settings.namespace, labels, secret, None if on_volume else spec_json),
        registry_secret=(make_registry_secret(req.key, settings.namespace, labels, req.registry)
                         if req.registry is not None else None),
        spec_json=spec_json,
        spec_on_volume=on_volume,
    )


def service_name(key: str) -> str:
    """The Service of a job's ports (a DNS label: at most 63 characters, a letter first)."""
    name = re.sub(r"[^a-z0-9-]+", "-", key.lower()).strip("-")[:63].rstrip("-")
    return name if name[:1].isalpha() else ("p-" + name)[:63].rstrip("-")


def make_service(req: LaunchRequest, settings: ManifestSettings, *, node_port: bool = False) -> dict:
    """The Service in front of a job's ports or a TensorBoard (pure): ClusterIP, reached only from
    inside the cluster by the kqi service's authenticated proxy; NodePort only when an administrator
    opts in (then anyone who reaches a node reaches the port, without the hub's sign-in)."""
    labels = job_labels(req)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": service_name(req.key), "namespace": settings.namespace, "labels": dict(labels),
                     "annotations": job_annotations(req)},
        "spec": {
            "type": "NodePort" if node_port else "ClusterIP",
            "selector": {APP_LABEL: APP, LABEL_JOB: labels[LABEL_JOB]},
            "ports": [{"name": f"port-{int(p)}", "port": int(p), "targetPort": int(p), "protocol": "TCP"}
                      for p in req.ports],
        },
    }


def service_host(key: str, namespace: str) -> str:
    """Where the kqi service reaches a job's Service."""
    return f"{service_name(key)}.{namespace}.svc"


# ------------------------------------------------------------------------------ status → result
def _tail(text: str | None, lines: int = 5) -> str:
    return " | ".join(line.strip() for line in (text or "").strip().splitlines()[-lines:] if line.strip())


def parse_runtime_result(message: str | None) -> dict | None:
    """The runtime's result.json from a termination message (tolerates kubelet's 4 KiB truncation)."""
    if not message or '"exitCode"' not in message:
        return None
    try:
        data = json.loads(message)
        if isinstance(data, dict) and "exitCode" in data:
            return data
    except ValueError:
        pass
    code = re.search(r'"exitCode"\s*:\s*(-?\d+|null)', message)
    if not code:
        return None
    text = re.search(r'"message"\s*:\s*"((?:[^"\\]|\\.)*)', message)
    msg = None
    if text:
        try:
            msg = json.loads('"' + text.group(1) + '"')
        except ValueError:
            msg = text.group(1)
    return {"exitCode": None if code.group(1) == "null" else int(code.group(1)), "message": msg}


def result_from_termination(term: dict) -> JobResult:
    code = term.get("exitCode")
    reason = term.get("reason") or ""
    oom = reason == "OOMKilled"
    data = parse_runtime_result(term.get("message"))
    if data is not None:
        exit_code = data.get("exitCode")
        if exit_code is None and oom:
            exit_code = code
        return JobResult(exit_code=exit_code, message=data.get("message"), oom_killed=oom)
    if oom:
        return JobResult(exit_code=code or 137, message="the container was killed for using more memory than "
                         "its limit (OOMKilled)", oom_killed=True)
    if code == 0:
        return JobResult(exit_code=0, message=None)
    tail = _tail(term.get("message"))
    if code == 127:
        return JobResult(exit_code=None, message="the job runtime could not start: a command it needs is not in"
                         " the image" + (f" ({tail})" if tail else ""))
    return JobResult(exit_code=None, message=f"the job's pod ended without a result (exit status {code}"
                     + (f", {reason}" if reason and reason not in ("Error", "Completed") else "") + ")"
                     + (f": {tail}" if tail else ""))


def _condition(obj: dict | None, kind: str) -> dict | None:
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == kind and c.get("status") == "True":
            return c
    return None


def _main_status(pod: dict) -> dict:
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        if cs.get("name") == CONTAINER:
            return cs
    return {}


def _newest(pods: list[dict]) -> dict | None:
    return max(pods, key=lambda p: ((p.get("metadata") or {}).get("creationTimestamp") or "",
                                    (p.get("metadata") or {}).get("name") or "")) if pods else None


def pod_node(pods: list[dict]) -> str | None:
    """The node of the newest pod (spec.nodeName, set once the scheduler placed it)."""
    pod = _newest(pods)
    return ((pod or {}).get("spec") or {}).get("nodeName") or None


def notebook_pod_nodes(pods: list[dict]) -> dict[tuple[str, str], str]:
    """{(user name, server name): spec.nodeName} of KubeSpawner pods (pure): the names from the
    hub.jupyter.org/username and /servername annotations, else the (escaped) labels; pods not
    yet scheduled and pods being deleted are left out."""
    out = {}
    for pod in pods:
        meta = pod.get("metadata") or {}
        node = (pod.get("spec") or {}).get("nodeName")
        if not node or meta.get("deletionTimestamp"):
            continue
        notes, labels = meta.get("annotations") or {}, meta.get("labels") or {}
        user = notes.get("hub.jupyter.org/username") or labels.get("hub.jupyter.org/username")
        if not user:
            continue
        server = notes.get("hub.jupyter.org/servername") or labels.get("hub.jupyter.org/servername") or ""
        out[(user, server)] = node
    return out


def pod_events(pods: list[dict]) -> list[dict]:
    """What the newest pod's status tells (the resource monitor's events): where it was scheduled, its
    conditions, and why its main container waits or how it ended."""
    pod = _newest(pods)
    if pod is None:
        return []
    status = pod.get("status") or {}
    out = []
    node = (pod.get("spec") or {}).get("nodeName")
    if node:
        out.append({"timestamp": status.get("startTime"), "type": "Normal", "reason": "Scheduled",
                    "message": f"pod {pod['metadata'].get('name')} on {node}"})
    for c in status.get("conditions") or []:
        ok = c.get("status") == "True"
        out.append({"timestamp": c.get("lastTransitionTime"), "type": "Normal" if ok else "Warning",
                    "reason": c.get("reason") or c.get("type") or "Condition",
                    "message": c.get("message") or f"{c.get('type')}: {c.get('status')}"})
    state = _main_status(pod).get("state") or {}
    if state.get("waiting"):
        w = state["waiting"]
        out.append({"timestamp": None, "type": "Warning", "reason": w.get("reason") or "Waiting",
                    "message": w.get("message") or "the container waits"})
    if state.get("terminated"):
        t = state["terminated"]
        out.append({"timestamp": t.get("finishedAt"), "type": "Normal" if t.get("exitCode") == 0 else "Warning",
                    "reason": t.get("reason") or "Terminated", "message": f"exit status {t.get('exitCode')}"})
    return out


def job_state(job: dict | None, pods: list[dict]) -> JobResult | None:
    """None while the job runs (or waits to be scheduled); its JobResult once it ended."""
    if job is None and not pods:
        return JobResult(None, "the job's pod ended without a result: its Kubernetes Job no longer exists")
    pod = max(pods, key=lambda p: ((p.get("metadata") or {}).get("creationTimestamp") or "",
                                   (p.get("metadata") or {}).get("name") or "")) if pods else None
    if pod is not None:
        status = pod.get("status") or {}
        state = _main_status(pod).get("state") or {}
        if state.get("terminated"):
            result = result_from_termination(state["terminated"])
            term = state["terminated"]
            result.started_at, result.finished_at = run_times(parse_runtime_result(term.get("message")),
                                                              term.get("startedAt"), term.get("finishedAt"))
            return result
        if status.get("phase") in ("Succeeded", "Failed"):
            why = ": ".join(x for x in (status.get("reason"), status.get("message")) if x) or status["phase"]
            return JobResult(None, f"the job's pod ended without a result ({why})")
        waiting = state.get("waiting") or {}
        if waiting.get("reason") in FATAL_WAITING:
            what = ("the image could not be pulled" if "Image" in waiting["reason"]
                    else "the container could not be created")
            return JobResult(None, f"{what}: {waiting['reason']}"
                             + (f": {waiting['message']}" if waiting.get("message") else ""))
    failed = _condition(job, "Failed")
    if failed:
        if failed.get("reason") == "DeadlineExceeded":
            return JobResult(None, "the job ran longer than its time limit (activeDeadlineSeconds)")
        return JobResult(None, "the job's pod ended without a result (the Job failed: "
                         + ": ".join(x for x in (failed.get("reason"), failed.get("message")) if x) + ")")
    if _condition(job, "Complete"):
        return JobResult(0, None)
    if job is not None and (job.get("metadata") or {}).get("deletionTimestamp") and pod is None:
        return JobResult(None, "the job's pod ended without a result: its Kubernetes Job was deleted")
    if job is not None and (job.get("spec") or {}).get("suspend"):
        return JobResult(None, "the job's pod ended without a result: its launch was interrupted")
    return None


# ------------------------------------------------------------------------------ capacity
def _tolerated(taint: dict, tolerations: list[dict]) -> bool:
    for t in tolerations:
        if t.get("effect") and t["effect"] != taint.get("effect"):
            continue
        if t.get("operator") == "Exists" and (not t.get("key") or t["key"] == taint.get("key")):
            return True
        if t.get("key") == taint.get("key") and t.get("value") == taint.get("value"):
            return True
    return False


def node_capacity(nodes: list[dict], gpu_resource: str = "nvidia.com/gpu", selector: dict | None = None,
                  tolerations: list[dict] | None = None) -> tuple[float, float, int]:
    """(cpu, memory GiB, gpu) allocatable on the Ready, schedulable nodes jobs may land on."""
    sizes = node_allocatable(nodes, gpu_resource, selector, tolerations).values()
    return sum(s[0] for s in sizes), sum(s[1] for s in sizes), sum(s[2] for s in sizes)


def node_allocatable(nodes: list[dict], gpu_resource: str = "nvidia.com/gpu", selector: dict | None = None,
                     tolerations: list[dict] | None = None) -> dict[str, tuple[float, float, int]]:
    """{node name: (cpu, memory GiB, gpu) allocatable} of the Ready, schedulable nodes jobs may land on."""
    out: dict[str, tuple[float, float, int]] = {}
    for node in nodes:
        meta, spec, status = node.get("metadata") or {}, node.get("spec") or {}, node.get("status") or {}
        if spec.get("unschedulable"):
            continue
        if not any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []):
            continue
        labels = meta.get("labels") or {}
        if any(labels.get(k) != v for k, v in (selector or {}).items()):
            continue
        if any(t.get("effect") in ("NoSchedule", "NoExecute") and not _tolerated(t, tolerations or [])
               for t in spec.get("taints") or []):
            continue
        alloc = status.get("allocatable") or {}
        out[meta.get("name") or ""] = (parse_quantity(alloc.get("cpu", 0)),
                                       parse_quantity(alloc.get("memory", 0)) / 1024**3,
                                       int(parse_quantity(alloc.get(gpu_resource, 0))))
    return out


# ------------------------------------------------------------------------------ the backend
class _Loop:
    """A private asyncio loop in a daemon thread: kubernetes_asyncio's session lives there."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="kqi-kubernetes", daemon=True)
        self.thread.start()

    def run(self, func, *args, timeout: float = 30.0, **kwargs):
        async def call():
            return await func(*args, **kwargs)

        future = asyncio.run_coroutine_threadsafe(call(), self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"the Kubernetes API did not answer within {timeout:g} s") from None

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        if not self.loop.is_running():
            self.loop.close()


class KubernetesBackend(LoggingConfigurable):
    name = "kubernetes"

    namespace = Unicode(help="Namespace of the jobs' Jobs, pods, Secrets and ConfigMaps"
                        " (default: $KQI_NAMESPACE or 'kqi').").tag(config=True)

    @default("namespace")
    def _namespace_default(self):
        return os.environ.get("KQI_NAMESPACE", "kqi")

    kubeconfig = Unicode("", help="Kubeconfig file. Empty: the in-cluster service account when running in a"
                         " pod, otherwise $KUBECONFIG or ~/.kube/config.").tag(config=True)
    kube_context = Unicode("", help="Context of the kubeconfig (empty: its current context).").tag(config=True)
    default_image = Unicode("python:3.12", help="Image of jobs that name none (it needs sh; the runtime installs"
                            " what else it needs, python3 and git, with the image's package manager).").tag(config=True)
    image_pull_policy = Unicode("Always", help="imagePullPolicy of the job container. Always (the default)"
                                " checks the user's registry credential at every start, so that an image that"
                                " another tenant's job left on a node is not run without it; layers already on"
                                " the node are not pulled again.").tag(config=True)
    service_account = Unicode("", help="Service account of the job pods (empty: the namespace's default)."
                              " Its token is not mounted.").tag(config=True)
    partition_label = Unicode("kqi.partition", help="Node label that holds a node's partition: a job with a"
                              " partition requires nodes with <label>=<partition> (required node affinity)."
                              ).tag(config=True)
    tenant_node_label = Bool(False, help="Also require the node label <tenant name>=true, as KAMONOHASHI"
                             " does to keep tenants on their nodes.").tag(config=True)
    node_selector = Dict(help="nodeSelector added to every job pod (also limits the nodes counted for the"
                         " capacity).").tag(config=True)
    gpu_resource = Unicode("nvidia.com/gpu", help="Extended resource name of GPUs.").tag(config=True)
    gpu_tolerations = List(help="Tolerations of pods with GPUs (default: the nvidia.com/gpu NoSchedule taint)."
                           ).tag(config=True)

    @default("gpu_tolerations")
    def _gpu_tolerations_default(self):
        return [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]

    ttl_seconds_after_finished = Integer(86400, help="ttlSecondsAfterFinished of the Jobs: how long Kubernetes"
                                         " keeps a finished Job that the service did not delete.").tag(config=True)
    active_deadline_seconds = Integer(0, help="activeDeadlineSeconds of the Jobs (0: no time limit)."
                                      ).tag(config=True)
    termination_grace_seconds = Integer(5, help="terminationGracePeriodSeconds of the job pods.").tag(config=True)
    storage_volume = Dict(help="Volume source (as in a pod spec) of the storage shared by the service and the"
                          " jobs: /kqi/output, /kqi/attach, /kqi/raw/Data and the parents are subPaths of it."
                          " Default: {'persistentVolumeClaim': {'claimName': 'kqi-data'}} (ReadWriteMany);"
                          " an NFS export works too: {'nfs': {'server': ..., 'path': ...}}.").tag(config=True)

    @default("storage_volume")
    def _storage_volume_default(self):
        return {"persistentVolumeClaim": {"claimName": "kqi-data"}}

    storage_root = Unicode("", help="Where `storage_volume` is mounted in the service (default: the service's"
                           " data directory). The local object store and the job folders must be under it."
                           ).tag(config=True)
    jobs_dir = Unicode("", help="Folder of the job folders (default: <storage_root>/jobs).").tag(config=True)
    total_cpu = Float(0.0, help="CPU cores jobs may use in all (0: the allocatable cpu of the nodes)."
                      ).tag(config=True)
    total_memory_gib = Float(0.0, help="Memory (GiB) jobs may use in all (0: the nodes' allocatable memory)."
                             ).tag(config=True)
    total_gpu = Integer(-1, help="GPUs jobs may use in all (-1: the nodes' allocatable GPUs).").tag(config=True)
    capacity_cache_seconds = Float(30.0, help="How long the nodes' capacity is reused.").tag(config=True)
    status_cache_seconds = Float(0.5, help="How long one listing of the Jobs and pods answers every job's status."
                                 ).tag(config=True)
    request_timeout = Float(30.0, help="Timeout (seconds) of one call to the Kubernetes API.").tag(config=True)
    delete_finished = Bool(True, help="Delete a job's Job (with its pod, Secrets and ConfigMap) as soon as the"
                           " service has taken its result; otherwise ttlSecondsAfterFinished does.").tag(config=True)
    expose_node_ports = Bool(False, help="Also open the Services of jobs' ports and TensorBoards as NodePorts"
                             " (reachable by anyone who reaches a node, without the hub's sign-in). Off: ClusterIP"
                             " only, reached through the kqi service's authenticated proxy.").tag(config=True)
    halt_propagation = Unicode("Foreground", help="propagationPolicy of the deletion that halts a job"
                               " (Foreground: the Job stays visible until its pod is gone; or Background)."
                               ).tag(config=True)

    notebook_namespace = Unicode(help="Namespace of the hub's notebook pods (KubeSpawner's namespace;"
                                 " default: the jobs' namespace).").tag(config=True)

    @default("notebook_namespace")
    def _notebook_namespace_default(self):
        return self.namespace

    notebook_pod_selector = Unicode(
        "component=singleuser-server",
        help="Label selector of the hub's notebook pods (KubeSpawner labels every single-user server pod"
             " component=<component_label>, also under zero-to-jupyterhub, whose common labels replace"
             " KubeSpawner's); the resource monitor reads their spec.nodeName.").tag(config=True)

    #: the engine learns of ended jobs from its ticks (the shared status poll), not from a callback
    on_exit: Callable[[str], None] | None = None
    #: Jobs outlive the service: a restarted service reconciles them
    jobs_end_with_service = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._loop: _Loop | None = None
        self._api = None
        self._configuration = None
        self._batch_api = None
        self._core_api = None
        self._connect_lock = threading.Lock()
        self._snap_lock = threading.Lock()
        self._snapshot_at = 0.0
        self._snapshot: tuple[dict, dict] | None = None
        self._capacity_at = 0.0
        self._capacity: tuple[float, float, int] | None = None
        self._notebooks_at = 0.0
        self._notebooks: dict | None = None

    @classmethod
    def from_app(cls, app) -> "KubernetesBackend":
        backend = cls(parent=app, log=app.log)
        if not backend.storage_root:
            backend.storage_root = app.data_dir
        backend.connect()
        return backend

    # ---------------------------------------------------------------- client
    def connect(self) -> None:
        with self._connect_lock:
            if self._api is not None:
                return
            from kubernetes_asyncio import client

            loop = _Loop()
            try:
                self._api = loop.run(self._make_client, timeout=self.request_timeout)
            except BaseException:
                loop.stop()
                raise
            self._loop = loop
            self._core_api = client.CoreV1Api(self._api)
            self._batch_api = client.BatchV1Api(self._api)

    @property
    def _core(self):
        self.connect()
        return self._core_api

    @property
    def _batch(self):
        self.connect()
        return self._batch_api

    async def _make_client(self):
        from kubernetes_asyncio import client, config

        configuration = client.Configuration()
        if not self.kubeconfig and os.environ.get("KUBERNETES_SERVICE_HOST"):
            config.load_incluster_config(client_configuration=configuration)
        else:
            await config.load_kube_config(config_file=self.kubeconfig or None, context=self.kube_context or None,
                                          client_configuration=configuration, persist_config=False)
        self._configuration = configuration
        return client.ApiClient(configuration=configuration)

    def close(self) -> None:
        if self._loop is None:
            return
        try:
            self._loop.run(self._api.close, timeout=5)
        finally:
            self._loop.stop()
            self._loop = self._api = self._core_api = self._batch_api = None

    def _call(self, method, *args, **kwargs):
        self.connect()
        result = self._loop.run(method, *args, timeout=self.request_timeout, **kwargs)
        if hasattr(result, "to_dict"):
            return self._api.sanitize_for_serialization(result)
        return result

    @staticmethod
    def _status(e) -> int | None:
        return getattr(e, "status", None)

    def _delete(self, method, name: str, propagation: str) -> bool:
        from kubernetes_asyncio.client.exceptions import ApiException

        try:
            self._call(method, name, self.namespace, propagation_policy=propagation)
            return True
        except ApiException as e:
            if e.status == 404:
                return False
            raise

    # ---------------------------------------------------------------- settings
    @property
    def settings(self) -> ManifestSettings:
        return ManifestSettings(
            namespace=self.namespace, default_image=self.default_image,
            image_pull_policy=self.image_pull_policy, service_account=self.service_account,
            partition_label=self.partition_label, tenant_node_label=self.tenant_node_label,
            node_selector=dict(self.node_selector), gpu_resource=self.gpu_resource,
            gpu_tolerations=list(self.gpu_tolerations), ttl_seconds_after_finished=self.ttl_seconds_after_finished,
            active_deadline_seconds=self.active_deadline_seconds,
            termination_grace_seconds=self.termination_grace_seconds,
            storage_volume=dict(self.storage_volume), storage_root=self.storage_root,
        )

    def job_dir(self, key: str) -> str:
        return os.path.join(self.jobs_dir or os.path.join(self.storage_root, "jobs"), key)

    # ---------------------------------------------------------------- capacity
    def _nodes_capacity(self) -> tuple[float, float, int]:
        now = time.monotonic()
        if self._capacity is not None and now - self._capacity_at < self.capacity_cache_seconds:
            return self._capacity
        try:
            nodes = self._call(self._core.list_node).get("items") or []
            self._node_sizes = node_allocatable(nodes, self.gpu_resource, dict(self.node_selector),
                                                list(self.gpu_tolerations))
            self._capacity = node_capacity(nodes, self.gpu_resource, dict(self.node_selector),
                                           list(self.gpu_tolerations))
            self._capacity_at = now
        except Exception as e:
            self.log.warning("Could not read the nodes' capacity: %s", e)
            if self._capacity is None:
                return 0.0, 0.0, 0
        return self._capacity

    _node_sizes: dict = {}

    def node_sizes(self) -> dict[str, tuple[float, float, int]]:
        """{node name: (cpu, memory GiB, gpu)} allocatable on the nodes jobs may land on (the resource monitor)."""
        self._nodes_capacity()
        return dict(self._node_sizes)

    @property
    def capacity_cpu(self) -> float:
        return self.total_cpu or self._nodes_capacity()[0]

    @property
    def capacity_memory_gib(self) -> float:
        return self.total_memory_gib or self._nodes_capacity()[1]

    @property
    def capacity_gpu(self) -> int:
        return self.total_gpu if self.total_gpu >= 0 else self._nodes_capacity()[2]

    # ---------------------------------------------------------------- launching
    def status_note(self, key: str) -> str | None:
        """Nothing to add while a job runs: the nodes pull images (with the user's registry credential)."""
        return None

    def launch(self, req: LaunchRequest) -> str:
        if not self.storage_root:
            raise RuntimeError("KubernetesBackend.storage_root is not set: where the shared job storage is mounted")
        settings = self.settings
        job_dir = self.job_dir(req.key)
        manifests = make_manifests(req, settings, job_dir)
        for m in req.mounts:  # the job's folders on the shared volume (a subPath must exist to be shared)
            if m.kind == BIND and m.source and _is_kqi_path(m.target):
                os.makedirs(m.source, exist_ok=True)
        if manifests.spec_on_volume:
            spec_dir = os.path.join(job_dir, "spec")
            os.makedirs(spec_dir, exist_ok=True)
            path = os.path.join(spec_dir, SPEC_KEY)
            fd = os.open(path + ".partial", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            with os.fdopen(fd, "w") as f:
                f.write(manifests.spec_json)
            os.replace(path + ".partial", path)

        job = self._call(self._batch.create_namespaced_job, self.namespace, manifests.job)
        try:
            self._call(self._core.create_namespaced_secret, self.namespace, owned_by(manifests.secret, job))
            if manifests.registry_secret is not None:
                self._call(self._core.create_namespaced_secret, self.namespace,
                           owned_by(manifests.registry_secret, job))
            self._call(self._core.create_namespaced_config_map, self.namespace, owned_by(manifests.configmap, job))
            if req.ports:  # owned by the Job: deleted with it
                self._call(self._core.create_namespaced_service, self.namespace,
                           owned_by(make_service(req, settings, node_port=self.expose_node_ports), job))
            self._call(self._batch.patch_namespaced_job, req.key, self.namespace, {"spec": {"suspend": False}})
        except BaseException:
            try:  # the owner references take the Secrets and the ConfigMap with it
                self._delete(self._batch.delete_namespaced_job, req.key, "Background")
            except Exception:
                self.log.exception("Could not delete the half-made Job %s", req.key)
            raise
        finally:
            self._invalidate()
        return f"{self.namespace}/{req.key}"

    # ---------------------------------------------------------------- watching
    def _invalidate(self) -> None:
        with self._snap_lock:
            self._snapshot = None

    def _observe(self) -> tuple[dict, dict]:
        """({job name: Job}, {job name: [pods]}) of this backend's jobs, at most status_cache_seconds old."""
        with self._snap_lock:
            now = time.monotonic()
            if self._snapshot is not None and now - self._snapshot_at < self.status_cache_seconds:
                return self._snapshot
            jobs = self._call(self._batch.list_namespaced_job, self.namespace, label_selector=SELECTOR)
            pods = self._call(self._core.list_namespaced_pod, self.namespace, label_selector=SELECTOR)
            by_name = {j["metadata"]["name"]: j for j in jobs.get("items") or []}
            pods_of: dict[str, list] = {}
            for pod in pods.get("items") or []:
                labels = (pod.get("metadata") or {}).get("labels") or {}
                owner = labels.get("job-name") or labels.get("batch.kubernetes.io/job-name") or labels.get(LABEL_JOB)
                pods_of.setdefault(owner, []).append(pod)
            self._snapshot = (by_name, pods_of)
            self._snapshot_at = time.monotonic()
            return self._snapshot

    def result(self, key: str) -> JobResult | None:
        """None while the job runs (or waits for a node); its result once it ended."""
        jobs, pods = self._observe()
        return job_state(jobs.get(key), pods.get(key, []))

    def is_running(self, key: str) -> bool:
        return self.result(key) is None

    def placement(self, key: str) -> str | None:
        """The node the job's (newest) pod was scheduled to; None before it is."""
        _jobs, pods = self._observe()
        return pod_node(pods.get(key) or [])

    def notebook_nodes(self) -> dict[tuple[str, str], str]:
        """{(user name, server name): node} of the hub's notebook pods that were scheduled (one
        listing by notebook_pod_selector, at most status_cache_seconds old). The names are
        KubeSpawner's annotations (the labels hold escaped names); "" is a user's default server."""
        with self._snap_lock:
            now = time.monotonic()
            if self._notebooks is not None and now - self._notebooks_at < self.status_cache_seconds:
                return self._notebooks
        pods = self._call(self._core.list_namespaced_pod, self.notebook_namespace,
                          label_selector=self.notebook_pod_selector)
        found = notebook_pod_nodes(pods.get("items") or [])
        with self._snap_lock:
            self._notebooks, self._notebooks_at = found, time.monotonic()
        return found

    def events(self, key: str) -> list[dict]:
        """What the job's pod went through (the resource monitor's /events)."""
        _jobs, pods = self._observe()
        return pod_events(pods.get(key) or [])

    def pod_name(self, key: str) -> str | None:
        self._invalidate()
        _jobs, pods = self._observe()
        mine = pods.get(key) or []
        if not mine:
            return None
        return max(mine, key=lambda p: (p["metadata"].get("creationTimestamp") or "", p["metadata"]["name"])
                   )["metadata"]["name"]

    def logs(self, key: str, tail_lines: int | None = None) -> str:
        """The job container's log as Kubernetes keeps it ('' before the pod exists)."""
        from kubernetes_asyncio.client.exceptions import ApiException

        pod = self.pod_name(key)
        if pod is None:
            return ""
        kwargs = {"container": CONTAINER}
        if tail_lines is not None:
            kwargs["tail_lines"] = int(tail_lines)
        try:
            return self._call(self._core.read_namespaced_pod_log, pod, self.namespace, **kwargs) or ""
        except ApiException as e:
            if e.status in (400, 404):  # not started yet, or gone
                return ""
            raise

    async def open_shell(self, key: str, rows: int = 24, cols: int = 80):
        """The pods/exec API (tty, stdin) of the job's pod, on the caller's loop with its own client."""
        from .shell import KubeExecShell, end_command, kube_exec_call, new_marker, shell_command

        loop = asyncio.get_running_loop()
        pod = await loop.run_in_executor(None, self.pod_name, key)
        if pod is None:
            raise RuntimeError(f"the job {key} has no pod")
        marker = new_marker()
        return await KubeExecShell(self._configuration,
                                   kube_exec_call(pod, self.namespace, CONTAINER, shell_command(marker)), rows, cols,
                                   end_call=kube_exec_call(pod, self.namespace, CONTAINER, end_command(marker),
                                                           interactive=False)).start()

    # ---------------------------------------------------------------- ending
    #: where a TensorBoard listens in its pod (the Service forwards to the pod's address)
    listen_host = "0.0.0.0"

    def port_host(self, key: str) -> str:
        """The host a job's or a TensorBoard's port is reached at from the service: its Service."""
        return service_host(key, self.namespace)

    def halt(self, key: str) -> None:
        self._delete(self._batch.delete_namespaced_job, key, self.halt_propagation)
        self._invalidate()

    def cleanup(self, key: str) -> None:
        # a spec that was too large for the Secret (it holds the git token) does not outlive the job
        shutil.rmtree(os.path.join(self.job_dir(key), "spec"), ignore_errors=True)
        if self.delete_finished:
            try:
                self._delete(self._batch.delete_namespaced_job, key, "Background")
            except Exception:
                self.log.exception("Could not delete the Job %s (its TTL will)", key)
            self._invalidate()

    def remove_orphans(self, active_keys: set[str]) -> None:
        """Delete the Jobs of this backend whose job is not running any more (the service was
        killed between a job's end and its cleanup, or the job was halted while it was down).
        Finished Jobs stay when `delete_finished` is off (their TTL removes them)."""
        self._invalidate()
        jobs, _pods = self._observe()
        for key, job in sorted(jobs.items()):
            if key in active_keys or key.startswith("tensorboard-"):  # (TensorBoards: kqi_services.tensorboard)
                continue
            if not self.delete_finished and (_condition(job, "Complete") or _condition(job, "Failed")):
                continue
            self.log.info("Deleting the Job %s: its job is not running", key)
            shutil.rmtree(os.path.join(self.job_dir(key), "spec"), ignore_errors=True)
            try:
                self._delete(self._batch.delete_namespaced_job, key, "Background")
            except Exception:
                self.log.exception("Could not delete the orphaned Job %s", key)
        self._invalidate()


