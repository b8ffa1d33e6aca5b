"""KqiKubeSpawner: a KQI notebook as a KubeSpawner pod.

The pod gets the notebook's resources (requests = limits, `nvidia.com/gpu` for GPUs), the
partition as node selector, volumes for /kqi (the tenant's store volume with sub-paths for
the persistent /kqi/output, /kqi/raw and the mounted trainings and inferences, read-only;
emptyDirs for input, git and tmp), and an init container that runs the KQI runtime in
"prepare" mode with the notebook's own image: clone the model, lay the dataset out, and
install JupyterLab when the image lacks it. That work happens before the pod's main
container starts, so it does not eat the hub's HTTP timeout. The lifetime is the pod's
activeDeadlineSeconds, which Kubernetes enforces whatever the hub or the service do.
"""
from __future__ import annotations

import json

from kubernetes_asyncio.client.models import V1Container, V1Volume, V1VolumeMount
from kubespawner import KubeSpawner
from kubespawner.utils import get_k8s_model
from traitlets import Unicode

from .base import KqiSpawnerMixin

RUNTIME = ["python3", "/kqi/runtime/kqi_runtime.py", "--spec-env", "KQI_NOTEBOOK_SPEC"]


def kqi_volumes(options, claim_name: str, runtime_config_map: str) -> tuple[list, list, list]:
    """(volumes, main container mounts, init container mounts) of a notebook (pure)."""
    plan = options.plan
    volumes = [
        {"name": "kqi-store", "persistentVolumeClaim": {"claimName": claim_name}},
        {"name": "kqi-runtime", "configMap": {"name": runtime_config_map}},
        {"name": "kqi-input", "emptyDir": {}},
        {"name": "kqi-git", "emptyDir": {}},
        {"name": "kqi-tmp", "emptyDir": {}},
        {"name": "dshm", "emptyDir": {"medium": "Memory"}},
    ]
    mounts = [
        {"name": "kqi-runtime", "mountPath": "/kqi/runtime", "readOnly": True},
        {"name": "kqi-input", "mountPath": "/kqi/input"},
        {"name": "kqi-git", "mountPath": "/kqi/git"},
        {"name": "kqi-tmp", "mountPath": "/kqi/tmp"},
        {"name": "dshm", "mountPath": "/dev/shm"},
    ]
    output_sub = plan.get("outputSubPath")
    if output_sub:
        mounts.append({"name": "kqi-store", "mountPath": "/kqi/output", "subPath": output_sub})
    else:
        volumes.append({"name": "kqi-output", "emptyDir": {}})
        mounts.append({"name": "kqi-output", "mountPath": "/kqi/output"})
    if plan.get("rawSubPath"):
        mounts.append({"name": "kqi-store", "mountPath": "/kqi/raw/Data", "subPath": plan["rawSubPath"],
                       "readOnly": True})
    parents = plan.get("parentSubPaths") or {}
    for parent_id, sub in parents.items():
        path = "/kqi/parent" if len(parents) == 1 else f"/kqi/parent/{parent_id}"
        mounts.append({"name": "kqi-store", "mountPath": path, "subPath": sub, "readOnly": True})
    for inference_id, sub in (plan.get("inferenceSubPaths") or {}).items():
        mounts.append({"name": "kqi-store", "mountPath": f"/kqi/inference/{inference_id}", "subPath": sub,
                       "readOnly": True})
    init_mounts = [m for m in mounts if m["mountPath"] != "/dev/shm"]
    return volumes, mounts, init_mounts


class KqiKubeSpawner(KqiSpawnerMixin, KubeSpawner):
    storage_claim_name = Unicode(
        "kqi-store", help="PersistentVolumeClaim of the tenants' store (local-directory layout) that /kqi uses."
    ).tag(config=True)

    runtime_config_map = Unicode(
        "kqi-runtime", help="ConfigMap holding kqi_runtime.py and layout.py (made by the Helm chart)."
    ).tag(config=True)

    partition_label = Unicode("kqi.partition", help="Node label that names a node's partition.").tag(config=True)

    def get_state(self):
        return self.kqi_state(super().get_state())

    def load_state(self, state):
        super().load_state(state)
        self.load_kqi_state(state)

    def clear_state(self):
        super().clear_state()
        self.clear_kqi_state()

    _kqi_env: dict | None = None
    _base_node_selector: dict | None = None

    def apply_kqi_options(self) -> float | None:
        """Set the spawner's own traits from the options (idempotent: a spawner object serves every
        start of its named server). What KubeSpawner would template-expand (volumes, init
        containers, environment: the spec is JSON full of braces, and user input) is added to the
        pod in get_pod_manifest / get_env instead."""
        o = self.load_kqi_options()
        remaining = self.start_lifetime()
        self.image = o.image or self.default_image
        self.cpu_limit = self.cpu_guarantee = float(o.cpu)
        self.mem_limit = self.mem_guarantee = f"{int(o.memory * 1024)}M"
        gpu = {"nvidia.com/gpu": str(o.gpu)} if o.gpu else {}
        self.extra_resource_limits = dict(gpu)
        self.extra_resource_guarantees = dict(gpu)
        if self._base_node_selector is None:
            self._base_node_selector = dict(self.node_selector)
        self.node_selector = {**self._base_node_selector, **({self.partition_label: o.partition} if o.partition else {})}
        server = ["jupyterhub-singleuser", "--notebook-dir=/kqi/output"]
        spec = self.notebook_spec(server)
        env = {**self.kqi_env(), "KQI_NOTEBOOK_SPEC": json.dumps({**spec, "mode": "start"}), "HOME": "/kqi/output"}
        if not o.gpu:
            env["NVIDIA_VISIBLE_DEVICES"] = "none"
        self._kqi_env = env
        self._kqi_prepare_spec = {**spec, "mode": "prepare"}
        self.notebook_dir = "/kqi/output"
        self.working_dir = "/kqi/output"
        self.cmd = RUNTIME
        return remaining

    def get_env(self):
        env = super().get_env()
        env.update(self._kqi_env or {})
        return env

    async def get_pod_manifest(self):
        remaining = self.apply_kqi_options()
        pod = await super().get_pod_manifest()
        o = self.kqi_options
        volumes, mounts, init_mounts = kqi_volumes(o, self.storage_claim_name, self.runtime_config_map)
        pod.spec.volumes = list(pod.spec.volumes or []) + [get_k8s_model(V1Volume, v) for v in volumes]
        notebook = pod.spec.containers[0]
        notebook.volume_mounts = list(notebook.volume_mounts or []) + [get_k8s_model(V1VolumeMount, m)
                                                                      for m in mounts]
        memory = f"{int(o.memory * 1024)}Mi"
        prepare = {
            "name": "kqi-prepare",
            "image": self.image,
            "imagePullPolicy": self.image_pull_policy,
            "command": RUNTIME,
            "workingDir": "/kqi",
            "env": [{"name": "KQI_NOTEBOOK_SPEC", "value": json.dumps(self._kqi_prepare_spec)},
                    {"name": "HOME", "value": "/kqi/output"}],
            "resources": {"requests": {"cpu": str(o.cpu), "memory": memory},
                          "limits": {"cpu": str(o.cpu), "memory": memory}},
            "volumeMounts": init_mounts,
        }
        if notebook.security_context is not None:
            prepare["securityContext"] = notebook.security_context
        pod.spec.init_containers = list(pod.spec.init_containers or []) + [get_k8s_model(V1Container, prepare)]
        if remaining is not None:
            pod.spec.active_deadline_seconds = int(remaining) + 1
        return pod
