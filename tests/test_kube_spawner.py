"""KqiKubeSpawner pod manifests, without a cluster (the documented way: kubespawner's load_config
patched, `_mock=True` for the hub object; the user and its named server are real JupyterHub
objects on an in-memory hub database). Every manifest passes kubernetes-validate in strict mode;
the tests check the volumes (sub-paths of the tenants' store, read-only mounts: the mount plan
of launch.kqi_mounts), the init container that prepares /kqi, the securityContext of both
containers and of the pod, the resources (requests = limits, nvidia.com/gpu), the partition's
node selector, the lifetime as activeDeadlineSeconds and the environment.
"""
from __future__ import annotations

import json
import time
from unittest import mock

import kubernetes_validate
import pytest
from jupyterhub import orm
from jupyterhub.user import User
from kubernetes_asyncio.client import ApiClient
from tornado import web

from kqi_services.jobs.launch import CONTAINER_CAPABILITIES, kqi_mounts
from kqi_spawner.kube import RUNTIME, KqiKubeSpawner, kqi_mount_plan, kqi_volumes
from kqi_spawner.options import issue_plan, plan_key

SECRET = "the-kqi-service-secret-key"
TENANT = "tenants/t-0001"
K8S_VERSION = "1.33.0"


def service_options(user: str, server: str, **fields) -> dict:
    """User options as the kqi service makes them for a notebook (domain/notebooks.py): the
    checked fields, the plan for a store on S3 (dataset files by URL) and its signature."""
    options = {
        "name": "gpu-notebook", "cpu": 4, "memory": 16, "gpu": 2, "lifetimeEnabled": True, "lifetimeHours": 2,
        "jupyterlabVersion": "4.2.5", "image": "registry.example.com/team/torch:2.3", "datasetId": 7,
        "datasetMethod": "copy", "trainingIds": [11], "inferenceIds": [21],
        "git": {"gitId": 1, "owner": "team", "repository": "model", "branch": "main", "commitId": None},
        "startupCommand": "pip install -e /kqi/git && echo {ready}", "env": {"MY_VAR": "a {b} c"},
        "partition": "a100", "memo": None, "notebookId": 5,
        "plan": {
            "infiniteAllowed": False, "KQI_SERVER": "https://kqi.example.com/services/kqi",
            "outputSubPath": f"{TENANT}/NotebookContainerOutputFiles/5", "rawSubPath": f"{TENANT}/Data",
            "parentSubPaths": {"11": f"{TENANT}/TrainingContainerOutputFiles/11"},
            "inferenceSubPaths": {"21": f"{TENANT}/InferenceContainerOutputFiles/21"},
            "parentDirs": {}, "inferenceDirs": {},
            "pairs": [{"dataPath": "training/3/a.txt", "storedPath": "Data/3/a.txt"},
                      {"dataPath": "testing/4/b.txt", "storedPath": "Data/4/b.txt"}],
            "urls": {"Data/3/a.txt": "https://s3.example.com/a?sig=1", "Data/4/b.txt": "https://s3.example.com/b?sig=2"},
            "git": {"url": "https://git.example.com/team/model.git", "commit": "0123456789abcdef0123456789abcdef01234567",
                    "token": None},
        },
    }
    options.update(fields)
    return issue_plan(plan_key(SECRET), user, server, options)  # a one-time ticket of the service


@pytest.fixture
def hub_db():
    db = orm.new_session_factory("sqlite://")()
    yield db
    db.close()


def make_spawner(hub_db, server: str = "kqi-5", user: str = "alice", **config) -> KqiKubeSpawner:
    orm_user = hub_db.query(orm.User).filter_by(name=user).first()
    if orm_user is None:
        orm_user = orm.User(name=user)
        hub_db.add(orm_user)
        hub_db.commit()
    hub_user = User(orm_user, settings={}, db=hub_db)
    orm_spawner = hub_user._new_orm_spawner(server, server)
    with mock.patch("kubespawner.spawner.load_config"):
        spawner = KqiKubeSpawner(_mock=True, user=hub_user, orm_spawner=orm_spawner, namespace="kqi",
                                 plan_secret=SECRET, **config)
    spawner.api_token = "hub-token-of-the-server"
    return spawner


async def manifest(spawner: KqiKubeSpawner) -> dict:
    await spawner._run_apply_user_options(spawner.user_options)  # what the hub does before start()
    pod = await spawner.get_pod_manifest()
    async with ApiClient() as api:
        doc = api.sanitize_for_serialization(pod)
    doc.setdefault("apiVersion", "v1")
    doc.setdefault("kind", "Pod")
    return doc


async def pod_for(spawner: KqiKubeSpawner) -> dict:
    doc = await manifest(spawner)
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    return doc


RESTRICTED = {"allowPrivilegeEscalation": False, "privileged": False,
              "capabilities": {"drop": ["ALL"], "add": list(CONTAINER_CAPABILITIES)},
              "seccompProfile": {"type": "RuntimeDefault"}}


def env_of(container: dict) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container.get("env") or []}


def mounts_of(container: dict) -> dict[str, dict]:
    return {m["mountPath"]: m for m in container.get("volumeMounts") or []}


def quantity_bytes(value) -> int:
    if isinstance(value, (int, float)):
        return int(value)
    units = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "K": 1000, "M": 1000**2, "G": 1000**3}
    for suffix in sorted(units, key=len, reverse=True):
        if value.endswith(suffix):
            return int(float(value[: -len(suffix)]) * units[suffix])
    return int(value)


# ------------------------------------------------------------------------------ the GPU notebook
async def test_gpu_notebook_with_dataset_and_parent_mount(hub_db):
    spawner = make_spawner(hub_db, partition_label="kqi.example.com/partition",
                           node_selector={"kqi.example.com/pool": "notebooks"})
    spawner.user_options = service_options("alice", "kqi-5")
    started = time.time()
    pod = await pod_for(spawner)
    spec = pod["spec"]
    (notebook,) = spec["containers"]
    (prepare,) = spec["initContainers"]

    # the notebook's image, the runtime as command (it execs the single-user server)
    assert notebook["image"] == prepare["image"] == "registry.example.com/team/torch:2.3"
    assert notebook["imagePullPolicy"] == prepare["imagePullPolicy"] == "Always"
    assert notebook["args"][:4] == RUNTIME  # (the runtime passes any server arguments on)
    assert notebook["ports"] == [{"containerPort": 8888, "name": "notebook-port"}]
    assert notebook["workingDir"] == "/kqi/output"
    assert pod["metadata"]["labels"]["hub.jupyter.org/username"] == "alice"
    assert pod["metadata"]["labels"]["hub.jupyter.org/servername"] == "kqi-5"

    # resources: requests = limits, GPUs as nvidia.com/gpu
    resources = notebook["resources"]
    assert resources["requests"] == resources["limits"]
    assert float(resources["limits"]["cpu"]) == 4.0
    assert quantity_bytes(resources["limits"]["memory"]) == 16 * 1024**3
    assert resources["limits"]["nvidia.com/gpu"] == "2"
    init_resources = prepare["resources"]
    assert init_resources["requests"] == init_resources["limits"]
    assert quantity_bytes(init_resources["limits"]["memory"]) == 16 * 1024**3
    assert "nvidia.com/gpu" not in init_resources["limits"]  # preparing needs no GPU

    # least privilege, as a restricted pod policy would have it (root inside the container allowed)
    assert spec["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}}
    assert notebook["securityContext"] == RESTRICTED and prepare["securityContext"] == RESTRICTED
    assert spec["automountServiceAccountToken"] is False

    # the partition is a node selector, beside the configured one
    assert spec["nodeSelector"] == {"kqi.example.com/pool": "notebooks", "kqi.example.com/partition": "a100"}

    # the lifetime: Kubernetes ends the pod after 2 hours whatever the hub and the service do
    assert 2 * 3600 - 5 <= spec["activeDeadlineSeconds"] <= 2 * 3600 + 2
    assert spawner.expires_at == pytest.approx(started + 2 * 3600, abs=5)

    # volumes: the tenants' store (claim) with sub-paths, emptyDirs for what a start makes anew
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["kqi-store"]["persistentVolumeClaim"] == {"claimName": "kqi-store"}
    assert volumes["kqi-runtime"]["configMap"]["name"] == "kqi-runtime"
    for name in ("kqi-input", "kqi-git", "kqi-tmp"):
        assert volumes[name]["emptyDir"] == {}
    assert volumes["dshm"]["emptyDir"] == {"medium": "Memory"}
    assert "kqi-output" not in volumes  # the output is the store's folder of the notebook

    mounts = mounts_of(notebook)
    assert mounts["/kqi/output"] == {"name": "kqi-store", "mountPath": "/kqi/output",
                                     "subPath": f"{TENANT}/NotebookContainerOutputFiles/5"}
    assert mounts["/kqi/parent"] == {"name": "kqi-store", "mountPath": "/kqi/parent", "readOnly": True,
                                     "subPath": f"{TENANT}/TrainingContainerOutputFiles/11"}
    assert mounts["/kqi/inference/21"] == {"name": "kqi-store", "mountPath": "/kqi/inference/21", "readOnly": True,
                                           "subPath": f"{TENANT}/InferenceContainerOutputFiles/21"}
    assert mounts["/kqi/raw/Data"] == {"name": "kqi-store", "mountPath": "/kqi/raw/Data", "readOnly": True,
                                       "subPath": f"{TENANT}/Data"}
    assert mounts["/kqi/runtime"]["readOnly"] is True
    for path in ("/kqi/input", "/kqi/git", "/kqi/tmp", "/dev/shm"):
        assert not mounts[path].get("readOnly")
    # the writable store mount is the notebook's own folder only
    assert [m["subPath"] for m in mounts.values() if m["name"] == "kqi-store" and not m.get("readOnly")] == [
        f"{TENANT}/NotebookContainerOutputFiles/5"]

    # the mount plan is launch.kqi_mounts' (the same /kqi as jobs, without /kqi/attach and /kqi/home)
    plan_targets = {m.target for m in kqi_mounts(output_dir="o", raw_data_dir="r", parent_dirs={11: "p"},
                                                 inference_dirs={21: "i"}, home=False)}
    assert {p for p in mounts if p.startswith("/kqi")} == plan_targets

    # the init container prepares the same /kqi (no /dev/shm) with the runtime in prepare mode
    init_mounts = mounts_of(prepare)
    assert set(init_mounts) == set(mounts) - {"/dev/shm"}
    assert all(init_mounts[p] == mounts[p] for p in init_mounts)
    assert prepare["name"] == "kqi-prepare" and prepare["command"] == RUNTIME
    prepare_spec = json.loads(env_of(prepare)["KQI_NOTEBOOK_SPEC"])
    assert prepare_spec["mode"] == "prepare"
    assert prepare_spec["jupyterlabVersion"] == "4.2.5"
    assert prepare_spec["git"] == {"url": "https://git.example.com/team/model.git",
                                   "commit": "0123456789abcdef0123456789abcdef01234567", "token": None}
    assert prepare_spec["dataset"]["method"] == "copy" and prepare_spec["dataset"]["rawDir"] == "/kqi/raw"
    assert [p["dataPath"] for p in prepare_spec["dataset"]["pairs"]] == ["training/3/a.txt", "testing/4/b.txt"]
    assert prepare_spec["dataset"]["urls"]["Data/3/a.txt"] == "https://s3.example.com/a?sig=1"

    # the notebook's environment: the guide's variables, the spec of the start mode (braces of
    # user input kept as they are: nothing is template-expanded), HOME, no GPU hiding
    env = env_of(notebook)
    assert env["NOTEBOOK_ID"] == "5" and env["DATASET_ID"] == "7"
    assert env["PARENT_ID"] == "11" and env["INFERENCE_ID"] == "21"
    assert env["MODEL_REPOSITORY"] == "https://git.example.com/team/model.git"
    assert env["COMMIT_ID"] == "0123456789abcdef0123456789abcdef01234567"
    assert env["KQI_SERVER"] == "https://kqi.example.com/services/kqi"
    assert env["JUPYTERLAB_VERSION"] == "4.2.5" and env["HOME"] == "/kqi/output"
    assert env["LC_ALL"] == env["LANG"] == "C.UTF-8"
    assert 2 * 3600 - 5 <= int(env["EXPIRES_IN"]) <= 2 * 3600
    assert "NVIDIA_VISIBLE_DEVICES" not in env
    assert env["JUPYTERHUB_API_TOKEN"] == "hub-token-of-the-server"
    assert env["JUPYTERHUB_SERVICE_URL"] == "http://0.0.0.0:8888/"
    start_spec = json.loads(env["KQI_NOTEBOOK_SPEC"])
    assert start_spec["mode"] == "start"
    assert start_spec["startupCommand"] == "pip install -e /kqi/git && echo {ready}"
    assert start_spec["env"] == {"MY_VAR": "a {b} c"}
    assert start_spec["serverCommand"] == ["jupyterhub-singleuser", "--notebook-dir=/kqi/output"]


async def test_job_environment_and_z2jh_security_settings(hub_db):
    """The plan's job environment (a company's package index or proxy) reaches both containers;
    z2jh's singleuser uid / fsGid join the restricted context; a configured context replaces it."""
    spawner = make_spawner(hub_db, uid=1000, fs_gid=100)
    options = service_options("alice", "kqi-5")
    options["plan"]["environment"] = {"env": {"PIP_INDEX_URL": "https://pypi.example.com/simple",
                                              "LC_ALL": "overridden"}, "network": "host"}
    spawner.user_options = issue_plan(plan_key(SECRET), "alice", "kqi-5", options)
    pod = await pod_for(spawner)
    (notebook,) = pod["spec"]["containers"]
    (prepare,) = pod["spec"]["initContainers"]
    for c in (notebook, prepare):
        assert env_of(c)["PIP_INDEX_URL"] == "https://pypi.example.com/simple"
        assert c["securityContext"] == {**RESTRICTED, "runAsUser": 1000}
    assert env_of(notebook)["LC_ALL"] == "C.UTF-8"  # the guide's variables win
    assert pod["spec"]["securityContext"] == {"fsGroup": 100, "seccompProfile": {"type": "RuntimeDefault"}}

    custom = make_spawner(hub_db, server="kqi-8", container_security_context={"runAsNonRoot": True},
                          pod_security_context={"runAsNonRoot": True})
    custom.user_options = service_options("alice", "kqi-8")
    pod = await pod_for(custom)
    assert pod["spec"]["securityContext"] == {"runAsNonRoot": True}
    assert pod["spec"]["initContainers"][0]["securityContext"] == {"runAsNonRoot": True,
                                                                   "allowPrivilegeEscalation": False}


def test_mount_plan_of_a_notebook():
    plan = {"outputSubPath": "t/NotebookContainerOutputFiles/5", "rawSubPath": "t/Data",
            "parentSubPaths": {"12": "t/TrainingContainerOutputFiles/12", "11": "t/TrainingContainerOutputFiles/11"},
            "inferenceSubPaths": {}}
    mounts = {m.target: m for m in kqi_mount_plan(plan)}
    assert set(mounts) == {"/kqi/tmp", "/kqi/git", "/kqi/input", "/kqi/runtime", "/kqi/output", "/kqi/raw/Data",
                           "/kqi/parent/11", "/kqi/parent/12"}
    assert mounts["/kqi/output"].source == "t/NotebookContainerOutputFiles/5" and mounts["/kqi/output"].writable
    assert mounts["/kqi/parent/12"].source == "t/TrainingContainerOutputFiles/12"
    assert not mounts["/kqi/parent/12"].writable and not mounts["/kqi/raw/Data"].writable
    scratch = {m.target: m for m in kqi_mount_plan({})}
    assert scratch["/kqi/output"].kind == "scratch" and scratch["/kqi/output"].writable
    assert "/kqi/raw/Data" not in scratch


async def test_a_second_start_of_the_same_server_makes_the_same_pod(hub_db):
    """One spawner object serves every start of its named server: nothing piles up."""
    spawner = make_spawner(hub_db)
    spawner.user_options = service_options("alice", "kqi-5")
    first = await pod_for(spawner)
    spawner.clear_state()  # what the hub does when the server stops
    spawner.user_options = service_options("alice", "kqi-5")  # a re-run: the service plans it again
    second = await pod_for(spawner)
    for doc in (first, second):
        assert len(doc["spec"]["initContainers"]) == 1
        names = [v["name"] for v in doc["spec"]["volumes"]]
        assert len(names) == len(set(names)), names
        paths = [m["mountPath"] for m in doc["spec"]["containers"][0]["volumeMounts"]]
        assert len(paths) == len(set(paths)), paths
    assert first["spec"]["volumes"] == second["spec"]["volumes"]
    assert first["spec"]["initContainers"] == second["spec"]["initContainers"]
    # a re-run on another partition does not keep the old one
    spawner.clear_state()
    spawner.user_options = service_options("alice", "kqi-5", partition="v100")
    third = await pod_for(spawner)
    assert third["spec"]["nodeSelector"] == {"kqi.partition": "v100"}


async def test_cpu_notebook_with_parents_and_no_lifetime(hub_db):
    spawner = make_spawner(hub_db, server="kqi-6")
    options = service_options("alice", "kqi-6", gpu=0, partition=None, lifetimeEnabled=False, datasetId=None,
                              trainingIds=[11, 12], inferenceIds=[], git=None, image=None, jupyterlabVersion=None)
    options["plan"] = {**options["plan"], "infiniteAllowed": True, "inferenceSubPaths": {}, "git": None,
                       "parentSubPaths": {"11": f"{TENANT}/TrainingContainerOutputFiles/11",
                                          "12": f"{TENANT}/TrainingContainerOutputFiles/12"}}
    del options["plan"]["pairs"], options["plan"]["urls"]
    spawner.user_options = issue_plan(plan_key(SECRET), "alice", "kqi-6", options)
    pod = await pod_for(spawner)
    spec = pod["spec"]
    (notebook,) = spec["containers"]
    assert "activeDeadlineSeconds" not in spec and "EXPIRES_IN" not in env_of(notebook)
    assert "nvidia.com/gpu" not in notebook["resources"]["limits"]
    assert env_of(notebook)["NVIDIA_VISIBLE_DEVICES"] == "none"
    assert "nodeSelector" not in spec or not spec["nodeSelector"]
    assert notebook["image"] == spawner.default_image
    mounts = mounts_of(notebook)
    # two trainings: one folder each under /kqi/parent, read-only
    assert mounts["/kqi/parent/11"]["subPath"] == f"{TENANT}/TrainingContainerOutputFiles/11"
    assert mounts["/kqi/parent/12"]["readOnly"] is True and "/kqi/parent" not in mounts
    prepare_spec = json.loads(env_of(spec["initContainers"][0])["KQI_NOTEBOOK_SPEC"])
    assert "dataset" not in prepare_spec and "git" not in prepare_spec


@pytest.mark.parametrize("server", ["scratch", ""], ids=["named", "default"])
async def test_a_server_started_from_the_hub_without_the_service_is_refused(hub_db, server):
    """Plain options (no plan of the kqi service, which checks quota and node capacity): no pod."""
    spawner = make_spawner(hub_db, server=server)
    spawner.user_options = {"cpu": 4, "memory": 8, "lifetimeHours": 8760}
    with pytest.raises(web.HTTPError) as info:
        await spawner._run_apply_user_options(spawner.user_options)
    assert info.value.status_code == 400 and "only the kqi service makes plans" in info.value.log_message
    with pytest.raises(web.HTTPError, match="only the kqi service makes plans"):
        await spawner.start()  # and start() itself starts nothing without an admitted plan


async def test_a_plan_starts_one_pod_once(hub_db):
    spawner = make_spawner(hub_db)
    spawner.user_options = service_options("alice", "kqi-5")
    await pod_for(spawner)
    spawner.clear_state()
    with pytest.raises(web.HTTPError, match="plan was already used"):
        await spawner._run_apply_user_options(spawner.user_options)


def test_the_scratch_mount_plan_of_a_notebook_without_store_paths():
    """A plan without store sub-paths (no tenant store folder): /kqi/output is the pod's own."""
    volumes, mounts, _ = kqi_volumes(type("O", (), {"plan": {}})(), "kqi-store", "kqi-runtime")
    by_name = {v["name"]: v for v in volumes}
    assert by_name["kqi-output"] == {"name": "kqi-output", "emptyDir": {}}
    assert all(m["name"] != "kqi-store" for m in mounts)


@pytest.mark.parametrize("options,message", [
    ({"cpu": -1}, "cpu: must be more than 0"),
    ({"lifetimeEnabled": False}, "does not allow notebooks without a lifetime"),
    ({"jupyterlabVersion": "latest"}, "is not a version"),
    ({"partition": "a100 gpus"}, "is a partition name"),
    ({"plan": {"outputSubPath": "tenants/someone-else/Data"}}, "only the kqi service makes plans"),
])
async def test_bad_options_stop_the_spawn_before_any_pod(hub_db, options, message):
    spawner = make_spawner(hub_db)
    spawner.user_options = options
    with pytest.raises(web.HTTPError) as info:
        await spawner._run_apply_user_options(options)
    assert info.value.status_code == 400 and message in info.value.log_message
    with pytest.raises(ValueError, match="The notebook options are not valid"):
        await spawner.get_pod_manifest()


async def test_options_signed_for_another_server_are_refused(hub_db):
    spawner = make_spawner(hub_db, server="kqi-7")
    spawner.user_options = service_options("alice", "kqi-5")
    with pytest.raises(web.HTTPError, match="only the kqi service makes plans"):
        await spawner._run_apply_user_options(spawner.user_options)
    other_user = make_spawner(hub_db, server="kqi-5", user="mallory")
    other_user.user_options = service_options("alice", "kqi-5")
    with pytest.raises(web.HTTPError, match="only the kqi service makes plans"):
        await other_user._run_apply_user_options(other_user.user_options)


async def test_z2jh_dict_shaped_volumes_and_init_containers_are_kept(hub_db):
    """z2jh configures volumes, mounts and init containers as dicts keyed by name."""
    spawner = make_spawner(hub_db, volumes={"shared": {"name": "shared", "emptyDir": {}}},
                           volume_mounts={"shared": {"name": "shared", "mountPath": "/shared"}},
                           init_containers={"block-metadata": {"name": "block-metadata", "image": "busybox:1.36",
                                                               "command": ["true"]}})
    for _ in range(2):  # and again for a second start
        spawner.clear_state()
        spawner.user_options = service_options("alice", "kqi-5")
        pod = await pod_for(spawner)
        spec = pod["spec"]
        assert [c["name"] for c in spec["initContainers"]] == ["block-metadata", "kqi-prepare"]
        volumes = [v["name"] for v in spec["volumes"]]
        assert "shared" in volumes and "kqi-store" in volumes and len(volumes) == len(set(volumes))
        mounts = mounts_of(spec["containers"][0])
        assert mounts["/shared"]["name"] == "shared" and mounts["/kqi/output"]["name"] == "kqi-store"
