"""KqiKubeSpawner: a KQI notebook as a KubeSpawner pod.

The pod gets the notebook's resources (requests = limits, `nvidia.com/gpu` for GPUs), the
partition as node selector, the /kqi of launch.kqi_mounts rendered as the job backend renders
it (kqi_services.jobs.kubernetes.render_mounts: the tenants' store volume with sub-paths for
the persistent /kqi/output, /kqi/raw/Data and the mounted trainings and inferences, read-only;
emptyDirs for input, git and tmp; the runtime ConfigMap), and an init container that runs the
KQI runtime in "prepare" mode with the notebook's own image: clone the model, lay the dataset
out, and install JupyterLab when the image lacks it. That work happens before the pod's main
container starts, so it does not eat the hub's HTTP timeout. The lifetime is the pod's
activeDeadlineSeconds, which Kubernetes enforces whatever the hub or the service do.

Both containers run with the job containers' securityContext (a restricted pod policy's,
root inside the container allowed: no privilege escalation, every capability dropped but
launch.CONTAINER_CAPABILITIES, the runtime's default seccomp profile), the pod with the
default seccomp profile; `container_security_context` and `pod_security_context` replace
them when configured.
"""
from __future__ import annotations

import json

from kubernetes_asyncio.client.models import V1Container, V1Volume, V1VolumeMount
from kubespawner import KubeSpawner
from kubespawner.utils import get_k8s_model
from traitlets import Unicode, default

from kqi_services.jobs.kubernetes import container_security_context, pod_security_context, render_mounts
from kqi_services.jobs.launch import SCRATCH, Mount, kqi_mounts

from .base import LAB_ARGS, LAB_DIR, KqiSpawnerMixin, lab_env

RUNTIME = ["python3", "/kqi/runtime/kqi_runtime.py", "--spec-env", "KQI_NOTEBOOK_SPEC"]
LAB_VOLUME = "kqi-labextension"


def lab_init_container(image: str, pull_policy: str, security_context=None) -> dict:
    """The init container that copies the lab extension from `image` (the hub's, which has
    kqi_labextension installed) into the pod's LAB_DIR emptyDir (pure)."""
    container = {
        "name": "kqi-labextension",
        "image": image,
        "imagePullPolicy": pull_policy,
        "command": ["python3", "-m", "kqi_labextension.install", LAB_DIR],
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}},
        "volumeMounts": [{"name": LAB_VOLUME, "mountPath": LAB_DIR}],
    }
    if security_context is not None:
        container["securityContext"] = security_context
    return container


def kqi_mount_plan(plan: dict) -> list[Mount]:
    """The /kqi of a notebook (launch.kqi_mounts) with the store's sub-paths as the bind sources;
    without a plan (a server started from the hub alone) /kqi/output is the pod's own folder."""
    output_sub = plan.get("outputSubPath")
    mounts = kqi_mounts(
        output_dir=output_sub or "",
        raw_data_dir=plan.get("rawSubPath") or None,
        parent_dirs={int(k): v for k, v in (plan.get("parentSubPaths") or {}).items()},
        inference_dirs={int(k): v for k, v in (plan.get("inferenceSubPaths") or {}).items()},
        home=False,  # a notebook's home is its persistent /kqi/output
    )
    if not output_sub:
        mounts = [Mount(m.target, kind=SCRATCH, writable=True) if m.target == "/kqi/output" else m for m in mounts]
    return mounts


def kqi_volumes(options, claim_name: str, runtime_config_map: str) -> tuple[list, list, list]:
    """(volumes, main container mounts, init container mounts) of a notebook (pure)."""
    volumes, mounts = render_mounts(
        kqi_mount_plan(options.plan), sub_path=lambda m: m.source,
        storage={"persistentVolumeClaim": {"claimName": claim_name}}, runtime_config_map=runtime_config_map,
        storage_name="kqi-store", prefix="kqi-")
    volumes.append({"name": "dshm", "emptyDir": {"medium": "Memory"}})
    init_mounts = list(mounts)  # preparing /kqi needs no shared memory
    mounts.append({"name": "dshm", "mountPath": "/dev/shm"})
    return volumes, mounts, init_mounts


class KqiKubeSpawner(KqiSpawnerMixin, KubeSpawner):
    storage_claim_name = Unicode(
        "kqi-store", help="PersistentVolumeClaim of the tenants' store (local-directory layout) that /kqi uses."
    ).tag(config=True)

    runtime_config_map = Unicode(
        "kqi-runtime", help="ConfigMap holding kqi_runtime.py and layout.py (made by the Helm chart)."
    ).tag(config=True)

    partition_label = Unicode("kqi.partition", help="Node label that names a node's partition.").tag(config=True)

    lab_image = Unicode(
        help="Image with kqi_labextension installed (the hub's image, helm/kqi-hub/image): an init container"
        " copies the lab extension from it into every notebook pod (an emptyDir mounted read-only at"
        " /opt/kqi-labextension), whatever the notebook's image. Empty: notebooks get no lab extension."
        " Default: KQI_LAB_IMAGE.",
    ).tag(config=True)

    @default("lab_image")
    def _lab_image_default(self):
        import os

        return os.environ.get("KQI_LAB_IMAGE", "")

    def lab_on(self) -> bool:
        return bool(self.lab_extension and self.lab_image)

    @default("image_pull_policy")
    def _image_pull_policy_default(self):
        # as for jobs: the registry is asked (with the user's credential) at every start, so that a
        # private image another tenant's pod left on a node is not run without it
        return "Always"

    @default("container_security_context")
    def _container_security_context_default(self):
        return container_security_context()

    @default("pod_security_context")
    def _pod_security_context_default(self):
        return pod_security_context()

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
        server = ["jupyterhub-singleuser", "--notebook-dir=/kqi/output"] + (list(LAB_ARGS) if self.lab_on() else [])
        spec = self.notebook_spec(server)
        environment = (o.plan.get("environment") or {}).get("env") or {}  # the job environment setting's
        env = {**(lab_env() if self.lab_on() else {}), **environment, **self.kqi_env(),
               "KQI_NOTEBOOK_SPEC": json.dumps({**spec, "mode": "start"}), "HOME": "/kqi/output"}
        if not o.gpu:
            env["NVIDIA_VISIBLE_DEVICES"] = "none"
        self._kqi_env = env
        self._kqi_prepare_spec = {**spec, "mode": "prepare"}
        self._kqi_prepare_env = {**environment, "HOME": "/kqi/output"}
        self.notebook_dir = "/kqi/output"
        self.working_dir = "/kqi/output"
        self.cmd = RUNTIME
        return remaining

    def start(self):
        self.take_admission()  # only the start the hub admitted (the kqi service's plan), once
        return super().start()

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
            "env": [{"name": name, "value": value} for name, value in self._kqi_prepare_env.items()]
            + [{"name": "KQI_NOTEBOOK_SPEC", "value": json.dumps(self._kqi_prepare_spec)}],
            "resources": {"requests": {"cpu": str(o.cpu), "memory": memory},
                          "limits": {"cpu": str(o.cpu), "memory": memory}},
            "volumeMounts": init_mounts,
        }
        if notebook.security_context is not None:  # the notebook container's (KubeSpawner made it)
            prepare["securityContext"] = notebook.security_context
        pod.spec.init_containers = list(pod.spec.init_containers or []) + [get_k8s_model(V1Container, prepare)]
        if self.lab_on():  # the lab extension, copied from the hub's image, read-only in the notebook
            pod.spec.volumes.append(get_k8s_model(V1Volume, {"name": LAB_VOLUME, "emptyDir": {}}))
            notebook.volume_mounts.append(get_k8s_model(V1VolumeMount, {"name": LAB_VOLUME, "mountPath": LAB_DIR,
                                                                        "readOnly": True}))
            pod.spec.init_containers.append(get_k8s_model(V1Container, lab_init_container(
                self.lab_image, self.image_pull_policy, prepare.get("securityContext"))))
        if remaining is not None:
            pod.spec.active_deadline_seconds = int(remaining) + 1
        return pod
