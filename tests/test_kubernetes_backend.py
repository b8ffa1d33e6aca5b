"""The Kubernetes backend: its manifests (validated against the Kubernetes 1.33 schemas) and the
calls it makes, against a small fake Kubernetes API server run by the test (tornado on
127.0.0.1, reached through a generated kubeconfig). No cluster and no mocks of the client."""
from __future__ import annotations

import asyncio
import base64
import copy
import json
import os
import re
import shutil
import subprocess
import threading
import uuid
from datetime import datetime, timezone
from urllib.parse import parse_qs

import kubernetes_validate
import pytest
from tornado import httpserver, netutil, web

from kqi_services.jobs import kubernetes as k8s
from kqi_services.jobs.launch import (CONTAINER_CAPABILITIES, JobResult, LaunchRequest, Mount, RegistryCredential,
                                     kqi_mounts)

K8S_VERSION = "1.33.0"
TOKEN = "fake-cluster-token"


def validate(doc: dict) -> None:
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


# ================================================================================ the fake API server
def _selects(selector: str | None, labels: dict) -> bool:
    for term in filter(None, (selector or "").split(",")):
        if "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k) == v:
                return False
        elif "=" in term:
            k, v = term.replace("==", "=").split("=", 1)
            if labels.get(k) != v:
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def _merge(target: dict, patch: dict) -> dict:
    for k, v in patch.items():
        if v is None:
            target.pop(k, None)
        elif isinstance(v, dict) and isinstance(target.get(k), dict):
            _merge(target[k], v)
        else:
            target[k] = copy.deepcopy(v)
    return target


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


KINDS = {"jobs": ("batch/v1", "Job"), "pods": ("v1", "Pod"), "secrets": ("v1", "Secret"),
         "configmaps": ("v1", "ConfigMap"), "services": ("v1", "Service")}
ROUTES = [
    (re.compile(r"^/api/v1/nodes$"), "nodes"),
    (re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/pods/(?P<name>[^/]+)/log$"), "log"),
    (re.compile(r"^/api/v1/namespaces/(?P<ns>[^/]+)/(?P<res>pods|secrets|configmaps|services)(?:/(?P<name>[^/]+))?$"), "obj"),
    (re.compile(r"^/apis/batch/v1/namespaces/(?P<ns>[^/]+)/(?P<res>jobs)(?:/(?P<name>[^/]+))?$"), "obj"),
]


class FakeKubernetes:
    """Just the REST endpoints the backend calls: create/read/list/patch/delete of Jobs, Secrets,
    ConfigMaps, list of pods by label selector, pod logs, list of nodes. Every created object is
    validated (strict, Kubernetes 1.33 schemas); an invalid one gets 422 like a real server. The
    test plays the job controller and the kubelet with run_pod/end_pod/wait_pod."""

    def __init__(self):
        self.objects: dict[tuple[str, str, str], dict] = {}
        self.requests: list[dict] = []
        self.invalid: list[str] = []
        self.nodes: list[dict] = []
        self.logs: dict[str, str] = {}
        self.fail_create: set[str] = set()
        self.lock = threading.Lock()
        self.version = 0

    # ---------------------------------------------------------------- server
    def start(self) -> "FakeKubernetes":
        ready = threading.Event()

        def run():
            self.loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self.loop)

            async def listen():
                sockets = netutil.bind_sockets(0, "127.0.0.1")
                self.port = sockets[0].getsockname()[1]
                self.server = httpserver.HTTPServer(web.Application([(r"/.*", _Handler, {"fake": self})]))
                self.server.add_sockets(sockets)

            self.loop.run_until_complete(listen())
            ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, name="fake-kubernetes", daemon=True)
        self.thread.start()
        assert ready.wait(10)
        return self

    def stop(self) -> None:
        def shutdown():
            self.server.stop()
            self.loop.stop()

        self.loop.call_soon_threadsafe(shutdown)
        self.thread.join(10)

    def kubeconfig(self, path: str) -> str:
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": f"http://127.0.0.1:{self.port}"}}],
            "users": [{"name": "kqi", "user": {"token": TOKEN}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "kqi", "namespace": "ignored"}}],
        }
        with open(path, "w") as f:
            json.dump(config, f)  # JSON is YAML
        return path

    # ---------------------------------------------------------------- store
    def get(self, res: str, name: str, ns: str = "kqi-test") -> dict | None:
        with self.lock:
            return copy.deepcopy(self.objects.get((res, ns, name)))

    def names(self, res: str, ns: str = "kqi-test") -> list[str]:
        with self.lock:
            return sorted(n for (r, s, n) in self.objects if r == res and s == ns)

    def calls(self, method: str | None = None, path_part: str = "") -> list[dict]:
        return [r for r in self.requests if (method is None or r["method"] == method) and path_part in r["path"]]

    def _meta(self, obj: dict) -> None:
        self.version += 1
        meta = obj.setdefault("metadata", {})
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", _now())
        meta["resourceVersion"] = str(self.version)

    def _delete(self, res: str, ns: str, name: str) -> None:
        """Deletes the object and, like the garbage collector, what it owns (and a Job's pods)."""
        obj = self.objects.pop((res, ns, name), None)
        if obj is None:
            return
        uid = obj["metadata"]["uid"]
        for key, other in list(self.objects.items()):
            owners = other["metadata"].get("ownerReferences") or []
            if key[1] == ns and any(o["uid"] == uid for o in owners):
                self._delete(*key)

    # ---------------------------------------------------------------- the test plays the cluster
    def run_pod(self, job_name: str, ns: str = "kqi-test", node: str = "node-1") -> str:
        """The job controller makes the pod from the template, the scheduler binds it, it runs."""
        with self.lock:
            job = self.objects[("jobs", ns, job_name)]
            assert not job["spec"].get("suspend"), "a suspended Job gets no pod"
            template = copy.deepcopy(job["spec"]["template"])
            name = f"{job_name}-{uuid.uuid4().hex[:5]}"
            labels = {**template["metadata"].get("labels", {}), "job-name": job_name,
                      "batch.kubernetes.io/job-name": job_name,
                      "controller-uid": job["metadata"]["uid"]}
            pod = {"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": name, "namespace": ns, "labels": labels,
                                "annotations": template["metadata"].get("annotations", {}),
                                "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": job_name,
                                                     "uid": job["metadata"]["uid"], "controller": True}]},
                   "spec": {**template["spec"], "nodeName": node}}
            validate(pod)  # the template makes a valid Pod
            pod["status"] = {"phase": "Running", "containerStatuses": [
                {"name": "main", "ready": True, "restartCount": 0, "image": pod["spec"]["containers"][0]["image"],
                 "imageID": "", "state": {"running": {"startedAt": _now()}}}]}
            self._meta(pod)
            self.objects[("pods", ns, name)] = pod
            job.setdefault("status", {})["active"] = 1
            return name

    def end_pod(self, pod_name: str, exit_code: int, reason: str | None = None, message: str | None = None,
                ns: str = "kqi-test") -> None:
        """The kubelet reports the container's end; the job controller marks the Job."""
        with self.lock:
            pod = self.objects[("pods", ns, pod_name)]
            term = {"exitCode": exit_code, "reason": reason or ("Completed" if exit_code == 0 else "Error"),
                    "startedAt": _now(), "finishedAt": _now()}
            if message is not None:
                term["message"] = message
            pod["status"]["containerStatuses"][0]["state"] = {"terminated": term}
            pod["status"]["phase"] = "Succeeded" if exit_code == 0 else "Failed"
            job = self.objects[("jobs", ns, pod["metadata"]["labels"]["job-name"])]
            kind = "Complete" if exit_code == 0 else "Failed"
            job["status"] = {"conditions": [{"type": kind, "status": "True",
                                             "reason": None if exit_code == 0 else "BackoffLimitExceeded"}],
                             "succeeded" if exit_code == 0 else "failed": 1}

    def wait_pod(self, pod_name: str, reason: str, message: str, ns: str = "kqi-test") -> None:
        with self.lock:
            pod = self.objects[("pods", ns, pod_name)]
            pod["status"]["phase"] = "Pending"
            pod["status"]["containerStatuses"][0]["state"] = {"waiting": {"reason": reason, "message": message}}


class _Handler(web.RequestHandler):
    def initialize(self, fake: FakeKubernetes):
        self.fake = fake

    def _status(self, code: int, reason: str, message: str):
        self.set_status(code)
        self.set_header("Content-Type", "application/json")
        self.finish({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                     "message": message, "reason": reason, "code": code})

    def _json(self, obj, code: int = 200):
        self.set_status(code)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(obj))

    async def _dispatch(self):
        fake = self.fake
        query = {k: v[-1] for k, v in parse_qs(self.request.query).items()}
        body = json.loads(self.request.body) if self.request.body else None
        fake.requests.append({"method": self.request.method, "path": self.request.path, "query": query,
                              "body": body, "content_type": self.request.headers.get("Content-Type")})
        if self.request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return self._status(401, "Unauthorized", "Unauthorized")
        for pattern, kind in ROUTES:
            m = pattern.match(self.request.path)
            if m:
                break
        else:
            return self._status(404, "NotFound", f"no route {self.request.path}")
        method = self.request.method
        with fake.lock:
            if kind == "nodes":
                return self._json({"kind": "NodeList", "apiVersion": "v1", "metadata": {}, "items": fake.nodes})
            if kind == "log":
                if ("pods", m["ns"], m["name"]) not in fake.objects:
                    return self._status(404, "NotFound", f'pods "{m["name"]}" not found')
                text = fake.logs.get(m["name"], "")
                if "tailLines" in query:
                    text = "".join(text.splitlines(True)[-int(query["tailLines"]):])
                self.set_header("Content-Type", "text/plain")
                return self.finish(text)
            ns, res, name = m["ns"], m["res"], m["name"]
            api_version, kind_name = KINDS[res]
            key = (res, ns, name)
            if method == "POST" and name is None:
                if res in fake.fail_create:
                    return self._status(500, "InternalError", f"creating {res} failed (as the test asked)")
                if body.get("kind") != kind_name or body.get("apiVersion") != api_version:
                    return self._status(400, "BadRequest", f"not a {kind_name}")
                if body["metadata"].get("namespace", ns) != ns:
                    return self._status(400, "BadRequest", "the namespace of the object does not match")
                try:
                    validate(body)
                except kubernetes_validate.ValidationError as e:
                    fake.invalid.append(f"{kind_name}: {e.message} at {list(e.path)}")
                    return self._status(422, "Invalid", e.message)
                key = (res, ns, body["metadata"]["name"])
                if key in fake.objects:
                    return self._status(409, "AlreadyExists", f'{res} "{key[2]}" already exists')
                obj = copy.deepcopy(body)
                obj["metadata"]["namespace"] = ns
                fake._meta(obj)
                fake.objects[key] = obj
                return self._json(obj, 201)
            if method == "GET" and name is None:
                items = [o for (r, s, _), o in sorted(fake.objects.items())
                         if r == res and s == ns
                         and _selects(query.get("labelSelector"), o["metadata"].get("labels") or {})]
                return self._json({"kind": kind_name + "List", "apiVersion": api_version,
                                   "metadata": {"resourceVersion": str(fake.version)}, "items": items})
            if key not in fake.objects:
                return self._status(404, "NotFound", f'{res} "{name}" not found')
            if method == "GET":
                return self._json(fake.objects[key])
            if method == "PATCH":
                obj = _merge(fake.objects[key], body)
                fake._meta(obj)
                return self._json(obj)
            if method == "DELETE":
                fake._delete(res, ns, name)
                return self._json({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"})
        return self._status(405, "MethodNotAllowed", method)

    async def get(self):
        await self._dispatch()

    async def post(self):
        await self._dispatch()

    async def patch(self):
        await self._dispatch()

    async def delete(self):
        await self._dispatch()


# ================================================================================ fixtures
@pytest.fixture(scope="module")
def fake():
    server = FakeKubernetes().start()
    yield server
    server.stop()


@pytest.fixture
def backend(fake, tmp_path):
    fake.requests.clear()
    fake.invalid.clear()
    fake.fail_create.clear()
    b = k8s.KubernetesBackend(
        kubeconfig=fake.kubeconfig(str(tmp_path / "kubeconfig")),
        namespace="kqi-test", storage_root=str(tmp_path / "storage"), status_cache_seconds=0,
        capacity_cache_seconds=0, request_timeout=10,
    )
    yield b
    b.close()


def settings(root: str, **kw) -> k8s.ManifestSettings:
    return k8s.ManifestSettings(namespace="kqi-test", storage_root=root, **kw)


def request(root: str, key="training-12", job_id=12, cpu=2.0, memory=4.0, parents=None, inferences=None,
            raw=False, spec_extra=None, extra_ro=(), kind="training", tenant="team-a", user="alice",
            image="registry.example.com/ml/torch:2.3", gpu=0, partition=None, registry=None,
            timeout_seconds=None, env_extra=None) -> LaunchRequest:
    """A LaunchRequest as the engine makes it (jobs/engine.py: _launch_request, then KQI_TOKEN)."""
    store = os.path.join(root, "store", "tenants", "team-a")
    spec = {"kind": kind, "id": job_id, "entryPoint": "python train.py", "zip": True,
            "logName": f"{kind}_stdout_stderr_{job_id}.log", "datasetId": None, "env": {},
            "git": {"url": "https://git.example.com/ml/model.git", "commit": "a" * 40, "token": "git-secret-token"}}
    spec.update(spec_extra or {})
    env = {"COLUMNS": "120", "HOME": "/kqi/home", "LC_ALL": "C.UTF-8", "TRAINING_ID": str(job_id), "PARENT_ID": "",
           "KQI_SERVER": "https://kqi.example.com/services/kqi", "MODEL_REPOSITORY": "https://git.example.com/ml/model.git",
           "COMMIT_ID": "a" * 40, "LEARNING_RATE": "0.1", "TENANT_NAME": "team-a", **(env_extra or {})}
    secret_env = {"KQI_TOKEN": f"kqi-job.{job_id}.s3cr3t", "MODEL_REPOSITORY_TOKEN": "git-secret-token"}
    output = "InferenceContainerOutputFiles" if kind == "inference" else "TrainingContainerOutputFiles"
    attach = "InferenceContainerAttachedFiles" if kind == "inference" else "TrainingContainerAttachedFiles"
    mounts = kqi_mounts(
        output_dir=os.path.join(store, output, str(job_id)),
        attach_dir=os.path.join(store, attach, str(job_id)),
        raw_data_dir=os.path.join(store, "Data") if raw else None,
        parent_dirs={p: os.path.join(store, "TrainingContainerOutputFiles", str(p)) for p in (parents or [])},
        inference_dirs={i: os.path.join(store, "InferenceContainerOutputFiles", str(i)) for i in (inferences or [])},
        extra_ro_paths=list(extra_ro),
    )
    return LaunchRequest(
        key=key, kind=kind, job_id=job_id, tenant=tenant, user=user, image=image, spec=spec, env=env,
        secret_env=secret_env, cpu=cpu, memory_gib=memory, gpu=gpu, partition=partition, registry=registry,
        mounts=mounts, timeout_seconds=timeout_seconds,
    )


def container(job: dict) -> dict:
    (c,) = job["spec"]["template"]["spec"]["containers"]
    return c


def mounts(job: dict) -> dict[str, dict]:
    return {m["mountPath"]: m for m in container(job)["volumeMounts"]}


def env_of(job: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container(job)["env"]}


def decode(secret: dict, key: str) -> str:
    return base64.b64decode(secret["data"][key]).decode()


# ================================================================================ manifests
def test_validator_is_strict():
    """The schema check used below does catch mistakes (else the other tests would prove nothing)."""
    job = k8s.make_job(request("/srv"), settings("/srv"))
    validate(job)
    for broken in (lambda d: d["spec"].update(backoffLimit="0"),
                   lambda d: container(d).update(imagee="x"),
                   lambda d: d["spec"]["template"]["spec"].update(restartPolicy=7)):
        doc = copy.deepcopy(job)
        broken(doc)
        with pytest.raises(kubernetes_validate.ValidationError):
            validate(doc)


def test_cpu_job_manifests(tmp_path):
    root = str(tmp_path)
    req = request(root)
    m = k8s.make_manifests(req, settings(root, ttl_seconds_after_finished=600), os.path.join(root, "jobs", req.key))
    for doc in (m.job, m.configmap, m.secret):
        validate(doc)
    assert m.registry_secret is None
    job = m.job
    assert job["apiVersion"] == "batch/v1" and job["kind"] == "Job"
    assert job["metadata"]["name"] == "training-12" and job["metadata"]["namespace"] == "kqi-test"
    labels = {"app": "kqi", "kqi/job": "training-12", "kqi/kind": "training", "kqi/id": "12",
              "kqi/tenant": "team-a", "kqi/user": "alice"}
    assert job["metadata"]["labels"] == labels
    assert job["spec"]["template"]["metadata"]["labels"] == labels
    assert m.configmap["metadata"]["labels"] == labels and m.secret["metadata"]["labels"] == labels
    spec = job["spec"]
    assert spec["backoffLimit"] == 0 and spec["completions"] == 1 and spec["parallelism"] == 1
    assert spec["ttlSecondsAfterFinished"] == 600 and "activeDeadlineSeconds" not in spec
    assert spec["suspend"] is True  # resumed once the Secrets and the ConfigMap exist
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False
    assert "affinity" not in pod and "tolerations" not in pod and "imagePullSecrets" not in pod
    c = container(job)
    assert c["image"] == "registry.example.com/ml/torch:2.3" and c["imagePullPolicy"] == "Always"
    assert c["resources"] == {"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}}
    assert c["command"][:2] == ["sh", "-c"]
    assert "sh /kqi/runtime/start.sh /kqi/spec/spec.json" in c["command"][2]
    assert "/dev/termination-log" in c["command"][2] and c["terminationMessagePolicy"] == "FallbackToLogsOnError"

    # least privilege, root inside the container
    assert_restricted(pod)

    # env: plain values inline; the secret ones only as files of the Secret (CIS 5.4.1)
    env = env_of(job)
    assert env["TRAINING_ID"] == {"name": "TRAINING_ID", "value": "12"}
    assert env["LEARNING_RATE"]["value"] == "0.1" and env["HOME"]["value"] == "/kqi/home"
    assert env["NVIDIA_VISIBLE_DEVICES"] == {"name": "NVIDIA_VISIBLE_DEVICES", "value": "none"}
    assert env["KQI_SECRETS_DIR"] == {"name": "KQI_SECRETS_DIR", "value": "/var/run/secrets/kqi"}
    assert all("valueFrom" not in e for e in env.values())
    assert not {"KQI_TOKEN", "MODEL_REPOSITORY_TOKEN"} & set(env)
    for name in ("KQI_TOKEN", "MODEL_REPOSITORY_TOKEN"):
        assert decode(m.secret, name) == req.secret_env[name]
    text = json.dumps(job) + json.dumps(m.configmap)
    assert "s3cr3t" not in text and "git-secret-token" not in text
    assert json.loads(decode(m.secret, "spec.json")) == req.spec  # the git token travels in the Secret

    # the ConfigMap is the same runtime the local backend runs
    from kqi_services.domain import layout
    from kqi_services.runtime import kqi_runtime
    assert m.configmap["metadata"]["name"] == "training-12-runtime"
    assert m.configmap["data"]["kqi_runtime.py"] == open(kqi_runtime.__file__).read()
    assert m.configmap["data"]["layout.py"] == open(layout.__file__).read()
    assert m.configmap["data"]["start.sh"] == open(os.path.join(os.path.dirname(kqi_runtime.__file__),
                                                                "start.sh")).read()

    # volumes: the mount plan of launch.kqi_mounts
    vols = {v["name"]: v for v in pod["volumes"]}
    assert vols["storage"] == {"name": "storage", "persistentVolumeClaim": {"claimName": "kqi-data"}}
    assert vols["runtime"]["configMap"] == {"name": "training-12-runtime", "defaultMode": 0o444}
    assert vols["spec"]["secret"] == {"secretName": "training-12-secrets", "defaultMode": 0o444,
                                      "items": [{"key": "spec.json", "path": "spec.json"}]}
    assert vols["secret-env"]["secret"] == {"secretName": "training-12-secrets", "defaultMode": 0o400,
                                            "items": [{"key": "KQI_TOKEN", "path": "KQI_TOKEN"},
                                                      {"key": "MODEL_REPOSITORY_TOKEN",
                                                       "path": "MODEL_REPOSITORY_TOKEN"}]}
    for name in ("tmp", "git", "input", "home"):
        assert vols[name]["emptyDir"] == {}
    assert vols["shm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "4Gi"}
    mm = mounts(job)
    assert mm["/kqi/output"] == {"name": "storage", "mountPath": "/kqi/output",
                                 "subPath": "store/tenants/team-a/TrainingContainerOutputFiles/12"}
    assert mm["/kqi/attach"]["subPath"] == "store/tenants/team-a/TrainingContainerAttachedFiles/12"
    assert not mm["/kqi/output"].get("readOnly") and not mm["/kqi/attach"].get("readOnly")
    assert mm["/kqi/runtime"]["readOnly"] and mm["/kqi/spec"]["readOnly"]
    assert mm["/var/run/secrets/kqi"] == {"name": "secret-env", "mountPath": "/var/run/secrets/kqi", "readOnly": True}
    assert {p: mm[p]["name"] for p in ("/kqi/tmp", "/kqi/git", "/kqi/input", "/kqi/home")} == {
        "/kqi/tmp": "tmp", "/kqi/git": "git", "/kqi/input": "input", "/kqi/home": "home"}
    assert mm["/dev/shm"]["name"] == "shm"
    assert not any(p.startswith(("/kqi/parent", "/kqi/raw", "/kqi/inference")) for p in mm)
    # every mount of the plan is there, and nothing else under /kqi
    assert {p for p in mm if p.startswith("/kqi")} == {m.target for m in req.mounts} | {"/kqi/spec"}


def assert_restricted(pod_spec: dict) -> None:
    """A restricted pod policy's securityContext, with root inside the container (the guide)."""
    assert pod_spec["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}}
    assert pod_spec["automountServiceAccountToken"] is False
    for c in pod_spec["containers"] + pod_spec.get("initContainers", []):
        assert c["securityContext"] == {
            "allowPrivilegeEscalation": False, "privileged": False,
            "capabilities": {"drop": ["ALL"], "add": list(CONTAINER_CAPABILITIES)},
            "seccompProfile": {"type": "RuntimeDefault"}}, c["name"]
        assert not {"SYS_ADMIN", "NET_RAW", "NET_ADMIN", "SYS_PTRACE", "MKNOD"} & set(
            c["securityContext"]["capabilities"]["add"])


def test_plain_variables_that_look_secret_go_to_the_secret_files(tmp_path):
    root = str(tmp_path)
    req = request(root, env_extra={"HF_TOKEN": "hf-123", "PIP_INDEX_URL": "https://u:pw@pypi.example.com/simple",
                                   "WANDB_API_KEY": "wb-1", "MY_VAR": "plain"})
    m = k8s.make_manifests(req, settings(root), os.path.join(root, "jobs", req.key))
    validate(m.job)
    env = env_of(m.job)
    assert env["MY_VAR"]["value"] == "plain"
    assert not {"HF_TOKEN", "PIP_INDEX_URL", "WANDB_API_KEY"} & set(env)
    items = {i["path"]: i["key"] for v in m.job["spec"]["template"]["spec"]["volumes"] if v["name"] == "secret-env"
             for i in v["secret"]["items"]}
    assert set(items) == {"KQI_TOKEN", "MODEL_REPOSITORY_TOKEN", "HF_TOKEN", "PIP_INDEX_URL", "WANDB_API_KEY"}
    assert decode(m.secret, items["PIP_INDEX_URL"]) == "https://u:pw@pypi.example.com/simple"
    assert "pw@" not in json.dumps(m.job) and "hf-123" not in json.dumps(m.job)
    # a variable whose name cannot be a Secret data key keeps its file name; no name can clash with spec.json
    odd = request(root, key="training-14", job_id=14)
    odd.secret_env = {"spec.json": "x", "A_B": "y"}
    m = k8s.make_manifests(odd, settings(root), os.path.join(root, "jobs", odd.key))
    validate(m.job)
    validate(m.secret)
    assert json.loads(decode(m.secret, "spec.json")) == odd.spec
    items = {i["path"]: i["key"] for v in m.job["spec"]["template"]["spec"]["volumes"] if v["name"] == "secret-env"
             for i in v["secret"]["items"]}
    assert items == {"A_B": "A_B", "spec.json": "env-" + b"spec.json".hex()}
    # a name that cannot be a file in the folder is refused
    odd.secret_env = {".hidden": "x"}
    with pytest.raises(ValueError, match="cannot be passed as a file"):
        k8s.make_manifests(odd, settings(root), os.path.join(root, "jobs", odd.key))
    # no secret at all: no folder, no variable
    none = request(root, key="training-15", job_id=15)
    none.secret_env = {}
    job = k8s.make_job(none, settings(root))
    validate(job)
    assert "KQI_SECRETS_DIR" not in env_of(job) and "/var/run/secrets/kqi" not in mounts(job)


def test_gpu_job_with_partition_and_registry(tmp_path):
    root = str(tmp_path)
    cred = RegistryCredential(server="registry.example.com:5000", username="bob", password="hunter2")
    req = request(root, key="training-13", job_id=13, cpu=0.5, memory=1.5, user="Bob.Smith@Example.com",
                  image="registry.example.com:5000/ml/cuda:12.4", gpu=2, partition="a100", registry=cred)
    s = settings(root, active_deadline_seconds=7200, tenant_node_label=True, service_account="kqi-jobs",
                 node_selector={"kubernetes.io/os": "linux"})
    m = k8s.make_manifests(req, s, os.path.join(root, "jobs", req.key))
    for doc in (m.job, m.configmap, m.secret, m.registry_secret):
        validate(doc)
    job = m.job
    c = container(job)
    res = {"cpu": "500m", "memory": "1536Mi", "nvidia.com/gpu": "2"}
    assert c["resources"] == {"requests": res, "limits": res}
    assert "NVIDIA_VISIBLE_DEVICES" not in env_of(job)
    pod = job["spec"]["template"]["spec"]
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [{"matchExpressions": [{"key": "kqi.partition", "operator": "In", "values": ["a100"]},
                                           {"key": "team-a", "operator": "In", "values": ["true"]}]}]
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert pod["serviceAccountName"] == "kqi-jobs"
    assert job["spec"]["activeDeadlineSeconds"] == 7200
    assert_restricted(pod)
    assert pod["imagePullSecrets"] == [{"name": "training-13-registry"}]
    # the pull secret
    reg = m.registry_secret
    assert reg["type"] == "kubernetes.io/dockerconfigjson" and reg["metadata"]["name"] == "training-13-registry"
    auths = json.loads(decode(reg, ".dockerconfigjson"))["auths"]
    assert auths == {"registry.example.com:5000": {"username": "bob", "password": "hunter2",
                                                   "auth": base64.b64encode(b"bob:hunter2").decode()}}
    assert "hunter2" not in json.dumps(job)
    # an e-mail user name becomes a valid, distinct label value; the annotation keeps it exactly
    user_label = job["metadata"]["labels"]["kqi/user"]
    assert re.fullmatch(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?", user_label) and len(user_label) <= 63
    assert user_label.startswith("Bob.Smith-Example.com-")
    assert user_label != k8s.label_value("Bob.Smith#Example.com")
    assert job["metadata"]["annotations"]["kqi/user"] == "Bob.Smith@Example.com"
    # a time limit of the request and of the settings: the shorter one
    assert k8s.make_job(request(root, timeout_seconds=600), s)["spec"]["activeDeadlineSeconds"] == 600
    assert k8s.make_job(request(root, timeout_seconds=9000), s)["spec"]["activeDeadlineSeconds"] == 7200
    # an image as KAMONOHASHI names it, or none: a full reference, as podman resolves it too
    assert container(k8s.make_job(request(root, image="pytorch/pytorch:2.3"), s))["image"] == \
        "docker.io/pytorch/pytorch:2.3"
    assert container(k8s.make_job(request(root, image=None), s))["image"] == "docker.io/library/python:3.12"


def test_parents_inferences_and_dataset_mounts(tmp_path):
    root = str(tmp_path)
    one = k8s.make_job(request(root, parents=[7], raw=True), settings(root))
    validate(one)
    mm = mounts(one)
    assert mm["/kqi/parent"] == {"name": "storage", "mountPath": "/kqi/parent", "readOnly": True,
                                 "subPath": "store/tenants/team-a/TrainingContainerOutputFiles/7"}
    assert mm["/kqi/raw/Data"] == {"name": "storage", "mountPath": "/kqi/raw/Data", "readOnly": True,
                                   "subPath": "store/tenants/team-a/Data"}
    assert not mm["/kqi/output"].get("readOnly")

    repo = os.path.join(root, "git", "model.git")
    several = k8s.make_job(request(root, parents=[9, 7], inferences=[21], extra_ro=[repo, "/elsewhere/repo"]),
                           settings(root))
    validate(several)
    mm = mounts(several)
    assert "/kqi/parent" not in mm
    for pid in (7, 9):
        assert mm[f"/kqi/parent/{pid}"]["readOnly"] is True
        assert mm[f"/kqi/parent/{pid}"]["subPath"] == f"store/tenants/team-a/TrainingContainerOutputFiles/{pid}"
    assert mm["/kqi/inference/21"] == {"name": "storage", "mountPath": "/kqi/inference/21", "readOnly": True,
                                       "subPath": "store/tenants/team-a/InferenceContainerOutputFiles/21"}
    assert mm[repo] == {"name": "storage", "mountPath": repo, "subPath": "git/model.git", "readOnly": True}
    assert "/elsewhere/repo" not in mm  # not on the shared volume: not mountable
    assert "/kqi/raw/Data" not in mm  # no data mount (S3: the runtime downloads the files)


def test_nfs_storage_volume_and_paths_off_the_volume(tmp_path):
    root = str(tmp_path / "srv")
    s = settings(root, storage_volume={"nfs": {"server": "nfs.example.com", "path": "/export/kqi"}})
    job = k8s.make_job(request(root), s)
    validate(job)
    vols = {v["name"]: v for v in job["spec"]["template"]["spec"]["volumes"]}
    assert vols["storage"] == {"name": "storage", "nfs": {"server": "nfs.example.com", "path": "/export/kqi"}}
    for target in ("/kqi/output", "/kqi/attach", "/kqi/parent"):
        bad = request(root, parents=[3])
        bad.mounts = [Mount(m.target, str(tmp_path / "not-shared" / "x"), m.writable, m.kind)
                      if m.target == target else m for m in bad.mounts]
        with pytest.raises(ValueError, match="not on the shared job storage"):
            k8s.make_job(bad, s)
    no_output = request(root)
    no_output.mounts = [m for m in no_output.mounts if m.target != "/kqi/output"]
    with pytest.raises(ValueError, match="has no /kqi/output"):
        k8s.make_job(no_output, s)


def test_large_spec_goes_to_the_shared_volume(tmp_path):
    root = str(tmp_path)
    pairs = [{"dataPath": f"training/1/f{i:06d}.bin", "storedPath": f"Data/1/{'x' * 200}{i}"} for i in range(4000)]
    req = request(root, spec_extra={"dataset": {"method": "symlink", "pairs": pairs, "rawDir": "/kqi/raw"}})
    m = k8s.make_manifests(req, settings(root), os.path.join(root, "jobs", req.key))
    assert m.spec_on_volume and "spec.json" not in m.secret["data"]
    for doc in (m.job, m.secret):
        validate(doc)
    assert mounts(m.job)["/kqi/spec"] == {"name": "storage", "mountPath": "/kqi/spec", "readOnly": True,
                                          "subPath": "jobs/training-12/spec"}
    assert "spec" not in {v["name"] for v in m.job["spec"]["template"]["spec"]["volumes"]}


def test_large_spec_launch_writes_it_and_cleanup_removes_it(fake, backend):
    pairs = [{"dataPath": f"training/1/f{i:06d}.bin", "storedPath": f"Data/1/{'x' * 200}{i}"} for i in range(4000)]
    req = request(backend.storage_root, key="training-47", job_id=47,
                  spec_extra={"dataset": {"method": "symlink", "pairs": pairs, "rawDir": "/kqi/raw"}})
    backend.launch(req)
    assert fake.invalid == []
    path = os.path.join(backend.job_dir("training-47"), "spec", "spec.json")
    assert json.load(open(path)) == req.spec
    assert "spec.json" not in fake.get("secrets", "training-47-secrets")["data"]
    backend.cleanup("training-47")
    assert not os.path.exists(path) and "training-47" not in fake.names("jobs")


def _run_container_command(tmp_path, m, secrets: dict[str, str], path: str) -> tuple:
    """The Job's container command with /kqi moved to a temporary folder: the runtime from the
    ConfigMap runs the spec from the Secret with the secret variables as files, and its result
    becomes the termination message. Returns (process, termination message, kqi folder)."""
    kqi = tmp_path / "kqi"
    for sub in ("runtime", "spec", "tmp", "attach", "git", "input", "home", "secrets"):
        (kqi / sub).mkdir(parents=True)
    for name, text in m.configmap["data"].items():  # (start.sh names /kqi/tmp itself)
        (kqi / "runtime" / name).write_text(text.replace("/kqi/", f"{kqi}/") if name == "start.sh" else text)
    (kqi / "spec" / "spec.json").write_text(decode(m.secret, "spec.json"))
    # the Secret volume as the kubelet lays it out: files are links into a ..data folder
    data = kqi / "secrets" / "..2026_01_01_00_00_00.000000000"
    data.mkdir()
    (kqi / "secrets" / "..data").symlink_to(data.name)
    for volume in m.job["spec"]["template"]["spec"]["volumes"]:
        if volume["name"] == "secret-env":
            for item in volume["secret"]["items"]:
                (data / item["path"]).write_text(secrets[item["path"]])
                (kqi / "secrets" / item["path"]).symlink_to(f"..data/{item['path']}")
    termination = tmp_path / "termination-log"
    termination.write_text("")
    c = container(m.job)
    script = c["command"][2].replace("/kqi/", f"{kqi}/").replace("/dev/termination-log", str(termination))
    env = {e["name"]: e["value"] for e in c["env"]}
    env.update({"PATH": path, "KQI_ROOT": str(kqi), "PYTHONPATH": "", "HOME": str(kqi / "home"),
                "KQI_SECRETS_DIR": str(kqi / "secrets")})
    run = subprocess.run(c["command"][:2] + [script], env=env, capture_output=True, text=True, timeout=120)
    return run, termination.read_text(), kqi


def test_the_container_command_runs_the_runtime(tmp_path):
    root = str(tmp_path)
    req = request(root, spec_extra={"git": None, "entryPoint": 'echo "hello from the job, token $KQI_TOKEN"; exit 3',
                                    "zip": False, "tools": []})
    m = k8s.make_manifests(req, settings(root), os.path.join(root, "jobs"))
    run, message, kqi = _run_container_command(tmp_path, m, req.secret_env, os.environ["PATH"])
    assert run.returncode == 3, run.stdout + run.stderr
    log = (kqi / "attach" / "training_stdout_stderr_12.log").read_text()
    assert "hello from the job, token kqi-job.12.s3cr3t" in log  # the secret file reached the command
    term = {"exitCode": run.returncode, "reason": "Error", "message": message}
    assert k8s.result_from_termination(term) == JobResult(3, None, False)


def test_the_container_command_without_python(tmp_path):
    """An image without Python and without a package manager: start.sh says so in result.json."""
    root = str(tmp_path)
    req = request(root, spec_extra={"git": None, "entryPoint": "true", "zip": False})
    m = k8s.make_manifests(req, settings(root), os.path.join(root, "jobs"))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("sh", "dirname", "mkdir", "cat"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    run, message, _kqi = _run_container_command(tmp_path, m, req.secret_env, str(bin_dir))
    assert run.returncode == 125, run.stdout + run.stderr
    result = k8s.result_from_termination({"exitCode": 125, "reason": "Error", "message": message})
    assert result.exit_code is None and "no Python 3" in result.message


def test_helpers():
    assert [k8s.cpu_quantity(c) for c in (1, 0.25, 1.5, 16)] == ["1", "250m", "1500m", "16"]
    assert [k8s.memory_quantity(g) for g in (1, 0.5, 64)] == ["1Gi", "512Mi", "64Gi"]
    assert k8s.parse_quantity("3920m") == pytest.approx(3.92)
    assert k8s.parse_quantity("16318040Ki") == 16318040 * 1024
    assert k8s.parse_quantity("2") == 2 and k8s.parse_quantity("1G") == 1e9
    with pytest.raises(ValueError):
        k8s.parse_quantity("lots")
    plain, secret = k8s.split_env({"A": "1", "AWS_SECRET_ACCESS_KEY": "k", "REPO": "https://u:p@host/x.git",
                                   "HF_TOKEN": "h", "KQI_TOKEN": "old"}, {"KQI_TOKEN": "t"})
    assert plain == {"A": "1"} and secret == {"KQI_TOKEN": "t", "AWS_SECRET_ACCESS_KEY": "k",
                                              "REPO": "https://u:p@host/x.git", "HF_TOKEN": "h"}
    assert k8s.label_value("team-a") == "team-a" and k8s.label_value("x" * 64) != "x" * 64


# ================================================================================ status → result
def _pod(state: dict, phase: str = "Running", **status) -> dict:
    return {"metadata": {"name": "p", "creationTimestamp": "2025-01-01T00:00:00Z"},
            "status": {"phase": phase, "containerStatuses": [{"name": "main", "state": state}], **status}}


def test_job_state_mapping():
    running_job = {"metadata": {"name": "training-1"}, "spec": {"suspend": False}, "status": {}}
    assert k8s.job_state(running_job, []) is None  # waiting for its pod
    assert k8s.job_state(running_job, [_pod({"running": {}})]) is None
    assert k8s.job_state(running_job, [_pod({"waiting": {"reason": "ContainerCreating"}}, "Pending")]) is None
    ok = k8s.job_state(running_job, [_pod({"terminated": {"exitCode": 0, "message":
                                           '{"exitCode": 0, "failedStep": null, "message": null}'}}, "Succeeded")])
    assert ok == JobResult(0, None, False)
    # a message cut by the kubelet's 4 KiB limit still gives the exit code
    cut = '{"exitCode": null, "failedStep": true, "message": "git clone failed: fatal: ' + "x" * 5000
    r = k8s.result_from_termination({"exitCode": 125, "message": cut[:4096]})
    assert r.exit_code is None and r.message.startswith("git clone failed: fatal: xxx")
    # the runtime could not start: the log's tail (FallbackToLogsOnError) explains it
    r = k8s.result_from_termination({"exitCode": 127, "message": "sh: 1: git: not found\n"})
    assert r.exit_code is None and "could not start" in r.message and "git: not found" in r.message
    r = k8s.job_state(running_job, [_pod({}, "Failed", reason="Evicted", message="The node was low on memory.")])
    assert r.exit_code is None and "ended without a result (Evicted: The node was low on memory.)" in r.message
    deadline = {**running_job, "status": {"conditions": [{"type": "Failed", "status": "True",
                                                          "reason": "DeadlineExceeded"}]}}
    assert "time limit" in k8s.job_state(deadline, []).message
    assert k8s.job_state({**running_job, "status": {"conditions": [{"type": "Complete", "status": "True"}]}}, []) \
        == JobResult(0, None)
    assert "interrupted" in k8s.job_state({"metadata": {}, "spec": {"suspend": True}}, []).message
    assert "no longer exists" in k8s.job_state(None, []).message


def test_node_capacity():
    def node(name, cpu, mem, gpu=None, ready="True", unschedulable=False, taints=None, labels=None):
        alloc = {"cpu": cpu, "memory": mem, "pods": "110"}
        if gpu is not None:
            alloc["nvidia.com/gpu"] = gpu
        spec = {"unschedulable": unschedulable} if unschedulable else {}
        if taints:
            spec["taints"] = taints
        return {"metadata": {"name": name, "labels": labels or {}}, "spec": spec,
                "status": {"allocatable": alloc, "conditions": [{"type": "Ready", "status": ready}]}}

    nodes = [node("a", "3920m", "16Gi", labels={"pool": "x"}),
             node("b", "8", "32Gi", "2", taints=[{"key": "nvidia.com/gpu", "effect": "NoSchedule"}]),
             node("c", "8", "32Gi", unschedulable=True), node("d", "8", "32Gi", ready="False"),
             node("cp", "4", "8Gi", taints=[{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}])]
    tol = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    cpu, mem, gpu = k8s.node_capacity(nodes, tolerations=tol)
    assert (round(cpu, 2), mem, gpu) == (11.92, 48.0, 2)
    assert k8s.node_capacity(nodes, selector={"pool": "x"}, tolerations=tol)[0] == pytest.approx(3.92)


# ================================================================================ against the fake API server
def test_launch_creates_valid_objects_then_resumes(fake, backend, tmp_path):
    req = request(backend.storage_root, key="training-20", job_id=20,
                  registry=RegistryCredential("registry.example.com", "alice", "pw"))
    ref = backend.launch(req)
    assert ref == "kqi-test/training-20"
    assert fake.invalid == []
    assert os.path.isdir(req.output_dir) and os.path.isdir(req.attach_dir)
    posts = [(r["path"], r["body"]["kind"]) for r in fake.calls("POST")]
    assert posts == [("/apis/batch/v1/namespaces/kqi-test/jobs", "Job"),
                     ("/api/v1/namespaces/kqi-test/secrets", "Secret"),
                     ("/api/v1/namespaces/kqi-test/secrets", "Secret"),
                     ("/api/v1/namespaces/kqi-test/configmaps", "ConfigMap")]
    created_job = fake.calls("POST", "/jobs")[0]["body"]
    assert created_job["spec"]["suspend"] is True
    (patch,) = fake.calls("PATCH")
    assert patch["path"] == "/apis/batch/v1/namespaces/kqi-test/jobs/training-20"
    assert patch["body"] == {"spec": {"suspend": False}}
    job = fake.get("jobs", "training-20")
    assert job["spec"]["suspend"] is False
    uid = job["metadata"]["uid"]
    for res, name in (("secrets", "training-20-secrets"), ("secrets", "training-20-registry"),
                      ("configmaps", "training-20-runtime")):
        obj = fake.get(res, name)
        assert obj["metadata"]["ownerReferences"] == [{"apiVersion": "batch/v1", "kind": "Job",
                                                       "name": "training-20", "uid": uid}]
    assert json.loads(decode(fake.get("secrets", "training-20-secrets"), "spec.json")) == req.spec
    # running: no pod yet, then a running pod
    assert backend.result("training-20") is None and backend.is_running("training-20")
    pod = fake.run_pod("training-20")
    assert backend.result("training-20") is None
    lists = fake.calls("GET", "/pods")
    assert lists and all(r["query"]["labelSelector"] == "app=kqi,kqi/job" for r in lists)
    # succeeded
    fake.end_pod(pod, 0, message=json.dumps({"exitCode": 0, "failedStep": None, "message": None}))
    assert backend.result("training-20") == JobResult(0, None, False)
    assert not backend.is_running("training-20")
    # cleanup deletes the Job; the garbage collector takes the rest
    backend.cleanup("training-20")
    (delete,) = fake.calls("DELETE")
    assert delete["path"].endswith("/jobs/training-20") and delete["query"]["propagationPolicy"] == "Background"
    assert "training-20" not in fake.names("jobs")
    assert not [n for n in fake.names("secrets") + fake.names("configmaps") if n.startswith("training-20-")]
    assert not [n for n in fake.names("pods") if n.startswith("training-20-")]


@pytest.mark.parametrize("exit_code,reason,message,expected", [
    (3, None, '{"exitCode": 3, "failedStep": null, "message": null}', JobResult(3, None, False)),
    (125, None, '{"exitCode": null, "failedStep": true, "message": "git clone failed: no such repository"}',
     JobResult(None, "git clone failed: no such repository", False)),
    (137, "OOMKilled", None, None),
])
def test_failed_and_oom_killed_pods(fake, backend, exit_code, reason, message, expected):
    key = f"training-{30 + exit_code}"
    backend.launch(request(backend.storage_root, key=key, job_id=30 + exit_code))
    pod = fake.run_pod(key)
    fake.end_pod(pod, exit_code, reason=reason, message=message)
    result = backend.result(key)
    if expected is not None:
        assert result == expected
    else:
        assert result.exit_code == 137 and result.oom_killed is True and "OOMKilled" in result.message
    assert fake.invalid == []


def test_image_pull_failure_ends_the_job(fake, backend):
    backend.launch(request(backend.storage_root, key="training-40", job_id=40))
    pod = fake.run_pod("training-40")
    fake.wait_pod(pod, "ErrImagePull", "pull access denied")
    assert backend.result("training-40") is None  # a first failure may be transient
    fake.wait_pod(pod, "ImagePullBackOff", 'Back-off pulling image "registry.example.com/ml/torch:2.3"')
    result = backend.result("training-40")
    assert result.exit_code is None and result.message.startswith("the image could not be pulled: ImagePullBackOff")


def test_halt_deletes_the_job_in_the_foreground(fake, backend):
    backend.launch(request(backend.storage_root, key="training-41", job_id=41))
    fake.run_pod("training-41")
    assert backend.is_running("training-41")
    backend.halt("training-41")
    (delete,) = fake.calls("DELETE")
    assert delete["path"] == "/apis/batch/v1/namespaces/kqi-test/jobs/training-41"
    assert delete["query"]["propagationPolicy"] == "Foreground"
    assert "training-41" not in fake.names("jobs")
    result = backend.result("training-41")
    assert result is not None and result.exit_code is None and "no longer exists" in result.message
    backend.halt("training-41")  # again: already gone, no error
    backend.cleanup("training-41")


def test_logs_from_the_pod(fake, backend):
    assert backend.logs("training-42") == ""  # no such job
    backend.launch(request(backend.storage_root, key="training-42", job_id=42))
    assert backend.logs("training-42") == ""  # no pod yet
    pod = fake.run_pod("training-42")
    fake.logs[pod] = "".join(f"line {i}\n" for i in range(10))
    assert backend.logs("training-42") == fake.logs[pod]
    assert backend.logs("training-42", tail_lines=2) == "line 8\nline 9\n"
    (last,) = fake.calls("GET", "/log")[-1:]
    assert last["path"] == f"/api/v1/namespaces/kqi-test/pods/{pod}/log"
    assert last["query"] == {"container": "main", "tailLines": "2"}


def test_launch_failure_removes_the_half_made_job(fake, backend):
    fake.fail_create.add("configmaps")
    with pytest.raises(Exception):
        backend.launch(request(backend.storage_root, key="training-43", job_id=43))
    assert "training-43" not in fake.names("jobs")
    assert "training-43-secrets" not in fake.names("secrets")  # owned by the Job: gone with it
    assert [r["query"].get("propagationPolicy") for r in fake.calls("DELETE")] == ["Background"]


def test_invalid_manifest_is_refused_by_the_server(fake, backend):
    """The fake server validates what it receives: a broken manifest fails the launch."""
    backend.node_selector = {"pool": 5}  # nodeSelector values are strings
    with pytest.raises(Exception):
        backend.launch(request(backend.storage_root, key="training-44", job_id=44, image="python:3.12", gpu=1,
                               partition="a100"))
    assert fake.invalid and fake.invalid[0].startswith("Job:")
    assert "training-44" not in fake.names("jobs")


def test_restart_finds_running_and_ended_jobs(fake, backend, tmp_path):
    backend.launch(request(backend.storage_root, key="training-45", job_id=45))
    backend.launch(request(backend.storage_root, key="training-46", job_id=46))
    fake.run_pod("training-45")
    done = fake.run_pod("training-46")
    fake.end_pod(done, 1, message='{"exitCode": 1, "failedStep": null, "message": null}')
    again = k8s.KubernetesBackend(kubeconfig=backend.kubeconfig, namespace="kqi-test",
                                  storage_root=backend.storage_root)
    try:
        assert again.is_running("training-45")
        assert not again.is_running("training-46") and again.result("training-46") == JobResult(1, None)
        assert not again.is_running("training-99")
    finally:
        again.close()


def test_capacity_from_the_nodes(fake, backend):
    fake.nodes = [
        {"metadata": {"name": "gpu-1", "labels": {"kqi.partition": "a100"}},
         "spec": {"taints": [{"key": "nvidia.com/gpu", "effect": "NoSchedule"}]},
         "status": {"allocatable": {"cpu": "15900m", "memory": "64Gi", "nvidia.com/gpu": "4"},
                    "conditions": [{"type": "Ready", "status": "True"}]}},
        {"metadata": {"name": "cpu-1"}, "spec": {},
         "status": {"allocatable": {"cpu": "8", "memory": "33554432Ki"},
                    "conditions": [{"type": "Ready", "status": "True"}]}},
    ]
    try:
        assert backend.capacity_cpu == pytest.approx(23.9)
        assert backend.capacity_memory_gib == pytest.approx(96.0)
        assert backend.capacity_gpu == 4
        assert fake.calls("GET", "/api/v1/nodes")
        backend.total_cpu, backend.total_gpu = 4.0, 0
        assert backend.capacity_cpu == 4.0 and backend.capacity_gpu == 0
    finally:
        fake.nodes = []


def test_wrong_credentials_are_refused(fake, tmp_path):
    """The fake server checks the kubeconfig's token: the backend really authenticates."""
    path = fake.kubeconfig(str(tmp_path / "kc"))
    config = json.load(open(path))
    config["users"][0]["user"]["token"] = "wrong"
    json.dump(config, open(path, "w"))
    b = k8s.KubernetesBackend(kubeconfig=path, namespace="kqi-test",
                              storage_root=str(tmp_path), status_cache_seconds=0)
    try:
        from kubernetes_asyncio.client.exceptions import ApiException
        with pytest.raises(ApiException) as info:
            b.result("training-1")
        assert info.value.status == 401
    finally:
        b.close()


# ================================================================================ configuration
def test_from_app_reads_config(fake, tmp_path):
    """The backend reads its configuration only: everything about a job comes in the LaunchRequest."""
    from traitlets.config import Application, Config

    from kqi_services.jobs.launch import JobBackend

    app = Application(config=Config({"KubernetesBackend": {
        "namespace": "kqi-test", "kubeconfig": fake.kubeconfig(str(tmp_path / "kc")), "partition_label": "pool",
        "ttl_seconds_after_finished": 120, "image_pull_policy": "IfNotPresent"}}))
    app.data_dir = str(tmp_path / "data")
    backend = k8s.KubernetesBackend.from_app(app)
    try:
        # the engine's protocol, without hasattr checks
        for name in ("name", "on_exit", "jobs_end_with_service", "capacity_cpu", "capacity_memory_gib",
                     "capacity_gpu"):
            assert hasattr(backend, name), name
        for name in ("job_dir", "launch", "is_running", "result", "halt", "cleanup", "remove_orphans",
                     "status_note"):
            assert callable(getattr(backend, name)), name
            assert name in JobBackend.__dict__, name
        assert backend.on_exit is None and backend.jobs_end_with_service is False and backend.status_note("training-1") is None
        assert backend.namespace == "kqi-test" and backend.ttl_seconds_after_finished == 120
        assert backend.storage_root == app.data_dir
        assert backend.job_dir("training-1") == os.path.join(app.data_dir, "jobs", "training-1")
        cred = RegistryCredential("registry.example.com:5000", "alice", "registry-pw")
        req = request(app.data_dir, key="training-61", job_id=61, image="registry.example.com:5000/ml/torch:2.3",
                      gpu=1, partition="a100", registry=cred)
        fake.requests.clear()
        backend.launch(req)
        assert fake.invalid == []
        job = fake.get("jobs", "training-61")
        assert job["spec"]["ttlSecondsAfterFinished"] == 120
        pod = job["spec"]["template"]["spec"]
        assert pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
            "nodeSelectorTerms"][0]["matchExpressions"] == [{"key": "pool", "operator": "In", "values": ["a100"]}]
        assert pod["containers"][0]["image"] == "registry.example.com:5000/ml/torch:2.3"
        assert pod["containers"][0]["imagePullPolicy"] == "IfNotPresent"
        auths = json.loads(decode(fake.get("secrets", "training-61-registry"), ".dockerconfigjson"))
        assert auths["auths"]["registry.example.com:5000"]["password"] == "registry-pw"
        backend.halt("training-61")
    finally:
        backend.close()
    # the module no longer reaches into the database
    source = open(k8s.__file__).read()
    assert "session_factory" not in source and "..db" not in source


def test_remove_orphans(fake, backend):
    """After a restart: Jobs whose job is not running any more are deleted, running ones stay."""
    for key, job_id in (("training-70", 70), ("training-71", 71), ("inference-72", 72)):
        backend.launch(request(backend.storage_root, key=key, job_id=job_id))
    fake.run_pod("training-70")
    done = fake.run_pod("inference-72")
    fake.end_pod(done, 0, message='{"exitCode": 0, "failedStep": null, "message": null}')
    fake.requests.clear()
    backend.delete_finished = False
    backend.remove_orphans({"training-70"})
    assert "training-70" in fake.names("jobs") and "training-71" not in fake.names("jobs")
    assert "inference-72" in fake.names("jobs")  # finished: kept for its TTL when delete_finished is off
    backend.delete_finished = True
    backend.remove_orphans({"training-70"})
    assert [n for n in fake.names("jobs") if n.endswith(("-70", "-71", "-72"))] == ["training-70"]
    assert {r["query"].get("propagationPolicy") for r in fake.calls("DELETE")} == {"Background"}
    backend.remove_orphans(set())
    assert not [n for n in fake.names("jobs") if n.endswith(("-70", "-71", "-72"))]


async def test_notebook_pods_nodes_for_the_resource_monitor(fake, backend, tmp_path):
    """The monitor's node of a notebook: the spec.nodeName of its KubeSpawner pod, found with the labels
    KubeSpawner gives the hub's pods (real KqiKubeSpawner manifests) and named by its annotations (the
    labels hold escaped user names); job pods, unscheduled and other namespaces' pods are not taken."""
    from types import SimpleNamespace

    from jupyterhub import orm

    from kqi_services.domain.resources import notebook_node, notebook_nodes

    from .test_kube_spawner import make_spawner, pod_for, service_options

    hub_db = orm.new_session_factory("sqlite://")()
    placed = {}
    for user, server, node in (("alice", "kqi-5", "gpu-1"), ("bob@example.com", "kqi-6", "cpu-1"),
                               ("carol", "kqi-7", None)):
        spawner = make_spawner(hub_db, server=server, user=user)
        spawner.user_options = service_options(user, server)
        pod = await pod_for(spawner)
        pod["metadata"]["namespace"] = "kqi-test"
        if node:  # the scheduler bound it
            pod["spec"]["nodeName"] = node
        placed[(user, server)] = pod
    hub_db.close()
    assert placed[("bob@example.com", "kqi-6")]["metadata"]["labels"]["hub.jupyter.org/username"] != "bob@example.com"
    elsewhere = copy.deepcopy(placed[("alice", "kqi-5")])
    elsewhere["metadata"].update(namespace="other", name="jupyter-alice-other")
    del elsewhere["spec"]["nodeName"]
    with fake.lock:
        for pod in placed.values():
            fake._meta(pod)
            fake.objects[("pods", "kqi-test", pod["metadata"]["name"])] = pod
        fake.objects[("pods", "other", "jupyter-alice-other")] = elsewhere
    backend.launch(request(backend.storage_root, key="training-80", job_id=80))
    fake.run_pod("training-80", node="cpu-9")  # a job's pod: not a notebook
    try:
        fake.requests.clear()
        assert backend.notebook_nodes() == {("alice", "kqi-5"): "gpu-1", ("bob@example.com", "kqi-6"): "cpu-1"}
        (call,) = fake.calls("GET", "/api/v1/namespaces/kqi-test/pods")
        assert call["query"]["labelSelector"] == "component=singleuser-server"
        # the monitor asks through the job backend, in the kubernetes profile only
        app = SimpleNamespace(profile="kubernetes", jobs=SimpleNamespace(backend=backend), log=backend.log)
        assert notebook_node(app, "alice", "kqi-5") == "gpu-1" and notebook_node(app, "carol", "kqi-7") is None
        assert notebook_nodes(app)[("bob@example.com", "kqi-6")] == "cpu-1"
        backend.notebook_namespace = "other"
        assert backend.notebook_nodes() == {}  # not scheduled there
        with fake.lock:
            fake.objects[("pods", "other", "jupyter-alice-other")]["spec"]["nodeName"] = "gpu-2"
        assert backend.notebook_nodes() == {("alice", "kqi-5"): "gpu-2"}
        # the node is gone when the pod goes
        backend.notebook_namespace = "kqi-test"
        with fake.lock:
            fake.objects.pop(("pods", "kqi-test", placed[("alice", "kqi-5")]["metadata"]["name"]))
        assert ("alice", "kqi-5") not in backend.notebook_nodes()
    finally:
        backend.halt("training-80")
        with fake.lock:
            for key in [k for k in fake.objects if k[0] == "pods" and (k[1] == "other" or "jupyter" in k[2])]:
                fake.objects.pop(key)
