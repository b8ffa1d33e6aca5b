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

from kubespawner import KubeSpawner
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


def _as_list(value) -> list:
    return list(value.values()) if isinstance(value, dict) else list(value)


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

    def apply_kqi_options(self) -> float | None:
        o = self.load_kqi_options()
        remaining = self.start_lifetime()
        self.image = o.image or self.default_image
        self.cpu_limit = self.cpu_guarantee = float(o.cpu)
        self.mem_limit = self.mem_guarantee = f"{int(o.memory * 1024)}M"
        gpu = {"nvidia.com/gpu": str(o.gpu)} if o.gpu else {}
        self.extra_resource_limits = dict(gpu)
        self.extra_resource_guarantees = dict(gpu)
        if o.partition:
            self.node_selector = {**self.node_selector, self.partition_label: o.partition}
        volumes, mounts, init_mounts = kqi_volumes(o, self.storage_claim_name, self.runtime_config_map)
        # z2jh gives volumes as dicts keyed by name; KubeSpawner takes both forms
        self.volumes = _as_list(self.volumes) + volumes
        self.volume_mounts = _as_list(self.volume_mounts) + mounts
        server = ["jupyterhub-singleuser", "--notebook-dir=/kqi/output"]
        spec = self.notebook_spec(server)
        spec_env = {"KQI_NOTEBOOK_SPEC": json.dumps({**spec, "mode": "start"})}
        env = {**self.kqi_env(), **spec_env, "HOME": "/kqi/output"}
        if not o.gpu:
            env["NVIDIA_VISIBLE_DEVICES"] = "none"
        self.environment = {**self.environment, **env}
        self.notebook_dir = "/kqi/output"
        self.working_dir = "/kqi/output"
        self.cmd = RUNTIME
        self.init_containers = _as_list(self.init_containers) + [{
            "name": "kqi-prepare",
            "image": self.image,
            "command": RUNTIME,
            "env": [{"name": "KQI_NOTEBOOK_SPEC", "value": json.dumps({**spec, "mode": "prepare"})}],
            "resources": {"requests": {"cpu": str(o.cpu), "memory": f"{int(o.memory * 1024)}Mi"},
                          "limits": {"cpu": str(o.cpu), "memory": f"{int(o.memory * 1024)}Mi"}},
            "volumeMounts": init_mounts,
        }]
        return remaining

    async def get_pod_manifest(self):
        remaining = self.apply_kqi_options()
        pod = await super().get_pod_manifest()
        if remaining is not None:
            pod.spec.active_deadline_seconds = int(remaining) + 1
        return pod
