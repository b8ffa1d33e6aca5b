"""TensorBoard and job ports on Kubernetes, and the TensorBoard launch request, without a cluster:
the pure builders (the TensorBoard's Job and pod, the ClusterIP Services) validated with
kubernetes-validate, with the job pods' restricted securityContext, and the backend driven
against the fake API server of test_kubernetes_backend (the Service made with the Job, owned by
it, gone with it)."""
from __future__ import annotations

import os

from kqi_services.jobs import kubernetes as k8s
from kqi_services.jobs.launch import BIND, RUNTIME, SCRATCH
from kqi_services.tensorboard import (proxy_prefix, tensorboard_command, tensorboard_key, tensorboard_mounts,
                                      tensorboard_request)

from .test_kubernetes_backend import assert_restricted, backend, fake, request, validate  # noqa: F401


def board_request(root: str, host: str = "0.0.0.0"):
    store = os.path.join(root, "store", "tenants", "team-a", "TrainingContainerOutputFiles")
    return tensorboard_request(
        training_id=12, tenant="team-a", user="alice", image="registry.example.com/tb:2.18",
        log_dirs={12: os.path.join(store, "12"), 7: os.path.join(store, "7")}, port=6123, expires=1800,
        path_prefix=proxy_prefix("/services/kqi/", 12), host=host)


def test_the_command_and_the_mounts():
    assert proxy_prefix("/services/kqi/", 5) == "/services/kqi/proxy/tensorboard/5/"
    assert tensorboard_key(5) == "tensorboard-5"
    assert tensorboard_command([5, 3], 6006, "/services/kqi/proxy/tensorboard/5/") == [
        "tensorboard", "--logdir_spec", "5:/kqi/logs/5,3:/kqi/logs/3", "--host", "127.0.0.1", "--port", "6006",
        "--path_prefix", "/services/kqi/proxy/tensorboard/5", "--reload_interval", "5"]
    mounts = {m.target: m for m in tensorboard_mounts({5: "/s/5", 3: "/s/3"})}
    assert mounts["/kqi/logs/5"].source == "/s/5" and mounts["/kqi/logs/3"].source == "/s/3"
    assert all(not m.writable and m.kind == BIND for t, m in mounts.items() if t.startswith("/kqi/logs"))
    assert mounts["/kqi/tmp"].kind == SCRATCH and mounts["/kqi/runtime"].kind == RUNTIME
    assert set(mounts) == {"/kqi/tmp", "/kqi/runtime", "/kqi/logs/5", "/kqi/logs/3"}


def test_local_request_listens_on_the_loopback_only(tmp_path):
    req = board_request(str(tmp_path), host="127.0.0.1")
    assert req.kind == "tensorboard" and req.key == "tensorboard-12" and req.timeout_seconds == 1800
    assert req.spec["mode"] == "serve" and req.ports == [6123] and req.network == "host"
    command = req.spec["serverCommand"]
    assert command[command.index("--host") + 1] == "127.0.0.1" and "--bind_all" not in command
    assert command[command.index("--logdir_spec") + 1] == "12:/kqi/logs/12,7:/kqi/logs/7"
    assert not req.secret_env  # a TensorBoard gets no token


def test_tensorboard_job_and_service_on_kubernetes(tmp_path):
    root = str(tmp_path)
    req = board_request(root)
    settings = k8s.ManifestSettings(namespace="kqi-test", storage_root=root)
    m = k8s.make_manifests(req, settings, os.path.join(root, "jobs", req.key))
    service = k8s.make_service(req, settings)
    for doc in (m.job, m.configmap, m.secret, service):
        validate(doc)
    pod = m.job["spec"]["template"]["spec"]
    assert_restricted(pod)
    assert m.job["spec"]["activeDeadlineSeconds"] == 1800  # it ends by itself, with or without the service
    (container,) = pod["containers"]
    assert container["image"] == "registry.example.com/tb:2.18"
    assert container["ports"] == [{"containerPort": 6123, "protocol": "TCP"}]
    mounts = {v["mountPath"]: v for v in container["volumeMounts"]}
    for training_id in (12, 7):
        mount = mounts[f"/kqi/logs/{training_id}"]
        assert mount["readOnly"] is True
        assert mount["subPath"] == f"store/tenants/team-a/TrainingContainerOutputFiles/{training_id}"
    assert not any(p.startswith(("/kqi/output", "/kqi/attach", "/kqi/input", "/kqi/git")) for p in mounts)
    # the Service: ClusterIP, selecting exactly this pod's labels, the TensorBoard's port
    labels = m.job["spec"]["template"]["metadata"]["labels"]
    spec = service["spec"]
    assert spec["type"] == "ClusterIP" and spec["selector"].items() <= labels.items()
    assert spec["selector"] == {"app": "kqi", "kqi/job": "tensorboard-12"}
    assert spec["ports"] == [{"name": "port-6123", "port": 6123, "targetPort": 6123, "protocol": "TCP"}]
    assert service["metadata"]["name"] == "tensorboard-12"
    assert k8s.service_host("tensorboard-12", "kqi-test") == "tensorboard-12.kqi-test.svc"
    # NodePort only when an administrator opts in
    assert k8s.make_service(req, settings, node_port=True)["spec"]["type"] == "NodePort"
    # the runtime's serve mode runs the server: the command travels in the spec
    command = req.spec["serverCommand"]
    assert command[command.index("--host") + 1] == "0.0.0.0"


def test_a_job_with_ports_gets_a_service(tmp_path):
    root = str(tmp_path)
    req = request(root)
    req.ports = [8080, 9000]
    settings = k8s.ManifestSettings(namespace="kqi-test", storage_root=root)
    job = k8s.make_job(req, settings)
    service = k8s.make_service(req, settings)
    validate(job)
    validate(service)
    assert_restricted(job["spec"]["template"]["spec"])
    assert [p["port"] for p in service["spec"]["ports"]] == [8080, 9000]
    assert service["spec"]["selector"].items() <= job["spec"]["template"]["metadata"]["labels"].items()
    assert service["metadata"]["name"] == "training-12"
    # without ports: no container ports
    req.ports = []
    assert "ports" not in k8s.make_job(req, settings)["spec"]["template"]["spec"]["containers"][0]
    assert k8s.service_name("Inference_X-9") == "inference-x-9" and k8s.service_name("9-a") == "p-9-a"


def test_the_backend_makes_the_service_with_the_job(fake, backend):  # noqa: F811
    req = board_request(backend.storage_root)
    backend.launch(req)
    assert fake.invalid == []
    service = fake.get("services", "tensorboard-12")
    job = fake.get("jobs", "tensorboard-12")
    assert service["spec"]["type"] == "ClusterIP"
    assert service["metadata"]["ownerReferences"] == [{"apiVersion": "batch/v1", "kind": "Job",
                                                       "name": "tensorboard-12", "uid": job["metadata"]["uid"]}]
    assert backend.port_host("tensorboard-12") == "tensorboard-12.kqi-test.svc"
    # the engine's orphan sweep leaves TensorBoards alone (they are not jobs)
    backend.remove_orphans(set())
    assert "tensorboard-12" in fake.names("jobs")
    backend.halt("tensorboard-12")
    assert "tensorboard-12" not in fake.names("jobs") and "tensorboard-12" not in fake.names("services")
