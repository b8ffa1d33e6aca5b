"""What KQI Hub runs on Kubernetes, checked with checkov (its Kubernetes policies: CIS benchmark,
pod security): the training Job and the inference Job of the Kubernetes job backend (with the
Secret and ConfigMap they bring and the chart's NetworkPolicy they run under), a notebook pod
of KqiKubeSpawner (as tests/test_kube_spawner.py builds it, beside z2jh's NetworkPolicy of
notebooks), and every object of the rendered Helm chart with its Zero to JupyterHub dependency.

Each is written to a YAML file and checked with `checkov -f <file> --framework kubernetes -o
json`. No check may fail but those named here, each with its reason:

  - everywhere: CKV_K8S_23 and CKV_K8S_40, root in the container (the guide says jobs run as
    root; the postgres user of the bundled PostgreSQL has uid 999, not a "high" one);
  - ACCEPTED: a short list of checks per file, for the objects named, with why.

Everything else of a restricted pod policy holds: no privilege escalation, not privileged,
capabilities dropped, the default seccomp profile, no service account token where none is
needed, secrets as files, resource limits, a NetworkPolicy for every pod.

checkov cannot share the project's virtual environment: it pins older boto3, botocore,
s3transfer, packaging and aiodns than the project uses. The test installs it (pinned) into its
own virtual environment, .venv/checkov-venv, once, and reuses it.
"""
from __future__ import annotations

import asyncio
import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from kqi_services.jobs import kubernetes as k8s
from kqi_services.jobs.launch import CONTAINER_CAPABILITIES, LaunchRequest, RegistryCredential, kqi_mounts

from . import test_helm_chart as charts

ROOT = Path(__file__).resolve().parent.parent
CHECKOV_VERSION = "3.3.30"
CHECKOV_VENV = Path(os.environ.get("KQI_CHECKOV_VENV") or ROOT / ".venv" / "checkov-venv")
NAMESPACE = charts.NAMESPACE
K8S_VERSION = "1.33.0"

#: root inside the container: accepted everywhere (the guide: jobs run as root)
ROOT_IN_CONTAINER = {
    "CKV_K8S_23": "Minimize the admission of root containers: jobs and notebooks run as root in their"
                  " container, as the guide says (with no privilege escalation and few capabilities)",
    "CKV_K8S_40": "Containers should run as a high UID: root in jobs and notebooks (the guide); uid 999"
                  " (the postgres user of the official image) in the bundled PostgreSQL",
}
ALL = None  # every object of the file
#: the capabilities the baseline Pod Security Standard lets a container add
BASELINE_CAPABILITIES = {"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
                         "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}
ADDED_CAPABILITIES = ("Added capabilities: root in the container keeps a few of the container runtime's defaults"
                      " (launch.CONTAINER_CAPABILITIES: chown, setuid/setgid, ... for package managers and"
                      " programs that switch users), all within the baseline Pod Security Standard's list;"
                      " every other capability is dropped")
JOBS = {"Job/training-12", "Job/inference-13"}
NOTEBOOK = {"Pod/jupyter-alice--kqi-5"}
#: z2jh's helper objects, left at its defaults: the image pullers (of the default notebook image), the
#: helm hook that waits for them, the user scheduler and the (0 by default) user placeholders
IMAGE_PULLERS = {"DaemonSet/continuous-image-puller", "DaemonSet/hook-image-puller"}
PAUSE_CONTAINERS = IMAGE_PULLERS | {"StatefulSet/user-placeholder"}
Z2JH_HELPERS = PAUSE_CONTAINERS | {"Job/hook-image-awaiter", "Deployment/user-scheduler"}
#: file -> check id -> (why it fails, the objects "Kind/name" it may fail for, ALL: every one)
ACCEPTED: dict[str, dict[str, tuple[str, set | None]]] = {
    "jobs": {
        "CKV_K8S_25": (ADDED_CAPABILITIES, JOBS),
        "CKV_K8S_22": ("readOnlyRootFilesystem: the runtime installs git, zip, pip and the kqi CLI when the"
                       " image lacks them, and users pip/apt-get install in their command", JOBS),
        "CKV_K8S_43": ("Image should use digest: users name their images by registry, image and tag"
                       " (KAMONOHASHI's form); imagePullPolicy Always asks the registry at every start", ALL),
    },
    "notebook": {
        "CKV_K8S_25": (ADDED_CAPABILITIES, NOTEBOOK),
        "CKV_K8S_22": ("readOnlyRootFilesystem: the prepare step installs JupyterLab when the image lacks it,"
                       " and users pip install in their notebooks", NOTEBOOK),
        "CKV_K8S_43": ("Image should use digest: users name their images by tag", ALL),
        "CKV_K8S_8": ("Liveness probe: the hub polls the notebook server itself; a probe would restart the"
                      " server of a notebook whose kernel keeps it busy", NOTEBOOK),
        "CKV_K8S_9": ("Readiness probe: no Service routes to a notebook pod (the proxy reaches it by the"
                      " address the hub got when it started)", NOTEBOOK),
    },
    "chart-kqi": {
        "CKV_K8S_43": ("Image should use digest: postgresql.image is a tag-pinned value (postgres:16)", ALL),
        "CKV_K8S_15": ("Image Pull Policy Always: the bundled PostgreSQL's public image (IfNotPresent, a"
                       " value); Always is for the users' images, which may be private", {"StatefulSet/kqi-postgresql"}),
    },
    "chart-z2jh": {
        "CKV_K8S_43": ("Image should use digest: z2jh's images are tag-pinned values of its chart", ALL),
        "CKV_K8S_15": ("Image Pull Policy Always: z2jh's images are public and tag-pinned", ALL),
        "CKV_K8S_14": ("Image tag not latest: z2jh's image pullers pull singleuser.image, whose tag is a value"
                       " (values.yaml says: pin a date tag for production)", IMAGE_PULLERS),
        "CKV_K8S_8": ("Liveness probe: z2jh's image pullers and placeholders run a pause container",
                      PAUSE_CONTAINERS),
        "CKV_K8S_9": ("Readiness probe: z2jh's image pullers and placeholders run a pause container",
                      PAUSE_CONTAINERS),
        "CKV_K8S_10": ("CPU requests: z2jh's helper objects come without resources", Z2JH_HELPERS),
        "CKV_K8S_11": ("CPU limits: z2jh's helper objects come without resources", Z2JH_HELPERS),
        "CKV_K8S_12": ("Memory requests: z2jh's helper objects come without resources (the placeholders"
                       " have the notebooks' default)", Z2JH_HELPERS - {"StatefulSet/user-placeholder"}),
        "CKV_K8S_13": ("Memory limits: z2jh's helper objects come without resources", Z2JH_HELPERS),
        "CKV_K8S_22": ("readOnlyRootFilesystem: z2jh's containers write to their root filesystem (the hub's"
                       " database and cookie secret folder, the proxy, the scheduler)", ALL),
        "CKV_K8S_35": ("Secrets as files: z2jh passes the proxy's auth token to the hub and the proxy as a"
                       " variable (the hub's KQI_* settings follow z2jh's hub.extraEnv way)",
                       {"Deployment/hub", "Deployment/proxy"}),
        "CKV_K8S_38": ("Service account token: the hub (KubeSpawner, the job backend), the user scheduler and"
                       " the image awaiter call the Kubernetes API", {"Deployment/hub", "Deployment/user-scheduler",
                                                                     "Job/hook-image-awaiter"}),
        "CKV_K8S_29": ("Pod securityContext: z2jh sets none on its helper pods (their containers have one)",
                       Z2JH_HELPERS | {"Deployment/proxy"}),
        "CKV2_K8S_6": ("NetworkPolicy: z2jh has policies for the hub, the proxy and the notebooks only, not for"
                       " its helper pods (image pullers, placeholders, user scheduler)",
                       {"Pod/" + n.split("/")[1] for n in Z2JH_HELPERS}),
    },
}


# ------------------------------------------------------------------------------ checkov
def checkov_command() -> list[str]:
    """checkov in its own virtual environment, made (once) with the pinned version."""
    checkov = CHECKOV_VENV / "bin" / "checkov"
    marker = CHECKOV_VENV / f".kqi-checkov-{CHECKOV_VERSION}"
    CHECKOV_VENV.parent.mkdir(parents=True, exist_ok=True)
    with open(CHECKOV_VENV.parent / ".checkov-venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two test runs at once make it once
        if not (checkov.exists() and marker.exists()):
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(CHECKOV_VENV)], check=True)
            run = subprocess.run([str(CHECKOV_VENV / "bin" / "python"), "-m", "pip", "install", "--quiet",
                                  "--disable-pip-version-check", f"checkov=={CHECKOV_VERSION}"],
                                 capture_output=True, text=True, timeout=1200)
            if run.returncode != 0:
                pytest.fail(f"could not install checkov {CHECKOV_VERSION} into {CHECKOV_VENV}:\n{run.stderr[-3000:]}")
            marker.write_text("")
    return [str(checkov)]


def checkov(path: Path) -> dict:
    """checkov's verdict on one file: {"passed": n, "failed": [(check id, name, Kind/name)]}."""
    run = subprocess.run(checkov_command() + ["-f", str(path), "--framework", "kubernetes", "-o", "json",
                                              "--skip-download"],
                         capture_output=True, text=True, timeout=600,
                         env={**os.environ, "ANSI_COLORS_DISABLED": "1", "LOG_LEVEL": "WARNING"})
    assert run.returncode in (0, 1), run.stderr[-3000:]
    reports = json.loads(run.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed, passed = [], 0
    for report in reports:
        if report.get("check_type", "kubernetes") != "kubernetes":
            continue
        passed += report["summary"]["passed"]
        for check in report["results"]["failed_checks"]:
            kind, _namespace, name = check["resource"].split(".")[:3]
            failed.append((check["check_id"], check["check_name"], f"{kind}/{name}"))
    assert passed, f"checkov checked nothing in {path.name}: {run.stdout[:1000]}"
    return {"passed": passed, "failed": sorted(set(failed))}


def unexpected(verdict: dict, file: str) -> list[str]:
    accepted = ACCEPTED.get(file, {})
    bad = []
    for check_id, name, obj in verdict["failed"]:
        if check_id in ROOT_IN_CONTAINER:
            continue
        if check_id in accepted and (accepted[check_id][1] is ALL or obj in accepted[check_id][1]):
            continue
        bad.append(f"{check_id} {name}: {obj}")
    return bad


def unused(verdicts: list[dict], file: str) -> list[str]:
    """Accepted failures that no longer fail: the list stays honest."""
    failing = {(c, o) for v in verdicts for c, _n, o in v["failed"]}
    out = []
    for check_id, (_why, objects) in ACCEPTED.get(file, {}).items():
        if objects is ALL:
            if not any(c == check_id for c, _o in failing):
                out.append(check_id)
        else:
            out += [f"{check_id} {o}" for o in sorted(objects) if (check_id, o) not in failing]
    return out


def write(tmp_path: Path, name: str, docs: list[dict]) -> Path:
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return path


# ------------------------------------------------------------------------------ the manifests
@pytest.fixture(scope="module")
def own_chart_docs(tmp_path_factory) -> list[dict]:
    chart = charts.copy_chart(tmp_path_factory.mktemp("chart") / "kqi-hub", with_dependency=False)
    return charts.documents(charts.render(chart))


@pytest.fixture(scope="module")
def full_chart_rendering(tmp_path_factory) -> dict:
    source = charts.z2jh_chart()
    if source is None:
        pytest.skip("the Zero to JupyterHub chart is not here (see tests/test_helm_chart.py)")
    return charts.render(charts.render_full_chart(tmp_path_factory.mktemp("full") / "kqi-hub", source))


def job_request(root: str, kind: str, job_id: int, parents: dict[int, str]) -> LaunchRequest:
    """A LaunchRequest as the engine makes it (a local object store on the shared volume)."""
    tenant = os.path.join(root, "tenants", "team-a")
    folder = {"training": "Training", "inference": "Inference"}[kind]
    return LaunchRequest(
        key=f"{kind}-{job_id}", kind=kind, job_id=job_id, tenant="team-a", user="alice",
        image="registry.example.com/ml/torch:2.3", cpu=2, memory_gib=8, gpu=1, partition="a100",
        registry=RegistryCredential("registry.example.com", "alice", "registry-password"),
        spec={"kind": kind, "id": job_id, "entryPoint": "python main.py", "zip": True, "datasetId": 3,
              "logName": f"{kind}_stdout_stderr_{job_id}.log", "env": {}, "tools": ["git", "zip", "pip", "kqi"],
              "git": {"url": "https://git.example.com/ml/model.git", "commit": "a" * 40, "token": "git-token"}},
        env={"COLUMNS": "120", "HOME": "/kqi/home", f"{kind.upper()}_ID": str(job_id), "DATASET_ID": "3",
             "KQI_SERVER": "https://kqi.example.com/services/kqi", "LC_ALL": "C.UTF-8"},
        secret_env={"KQI_TOKEN": f"kqi-job.{job_id}.token", "MODEL_REPOSITORY_TOKEN": "git-token"},
        mounts=kqi_mounts(output_dir=os.path.join(tenant, f"{folder}ContainerOutputFiles", str(job_id)),
                          attach_dir=os.path.join(tenant, f"{folder}ContainerAttachedFiles", str(job_id)),
                          raw_data_dir=os.path.join(tenant, "Data"), parent_dirs=parents),
    )


def job_documents(req: LaunchRequest, chart_docs: list[dict]) -> list[dict]:
    """The objects of one job as the backend creates them, with the chart's NetworkPolicy of jobs."""
    root = "/srv/kqi"
    settings = k8s.ManifestSettings(namespace=NAMESPACE, storage_root=root, service_account="kqi-job",
                                    storage_volume={"persistentVolumeClaim": {"claimName": "kqi-store"}})
    m = k8s.make_manifests(req, settings, f"{root}/data/jobs/{req.key}")
    policy = charts.find(chart_docs, "NetworkPolicy", "kqi-jobs")
    return [m.job, m.configmap, m.secret, m.registry_secret, policy]


def chart_objects(rendered: dict) -> tuple[list[dict], list[dict]]:
    """(ours, z2jh's) objects of the full rendering, in the release namespace as `helm install
    --namespace` puts the objects whose templates name none."""
    ours, z2jh = [], []
    for path, text in sorted(rendered.items()):
        if not path.endswith((".yaml", ".yml")):
            continue
        for doc in yaml.safe_load_all(text):
            if not doc or "apiVersion" not in doc:
                continue
            if not doc["kind"].startswith("Cluster"):
                doc["metadata"].setdefault("namespace", NAMESPACE)
            (z2jh if "/charts/jupyterhub/" in path else ours).append(doc)
    return ours, z2jh


async def notebook_pod(hub_db, config) -> dict:
    """A notebook pod as tests/test_kube_spawner.py builds it, with the hub's configuration."""
    from . import test_kube_spawner as spawners

    spawner = spawners.make_spawner(hub_db, config=config)
    spawner.namespace = NAMESPACE
    spawner.user_options = spawners.service_options("alice", "kqi-5")
    pod = await spawners.manifest(spawner)
    pod["metadata"]["namespace"] = NAMESPACE  # KubeSpawner creates it in its namespace
    return pod


# ------------------------------------------------------------------------------ the tests
def assert_restricted(pod_spec: dict) -> None:
    assert pod_spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod_spec["automountServiceAccountToken"] is False
    for c in pod_spec["containers"] + pod_spec.get("initContainers", []):
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False and sc["privileged"] is False, c["name"]
        assert sc["capabilities"] == {"drop": ["ALL"], "add": list(CONTAINER_CAPABILITIES)}, c["name"]
        assert set(sc["capabilities"]["add"]) <= BASELINE_CAPABILITIES, c["name"]
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, c["name"]
        assert not any("secretKeyRef" in (e.get("valueFrom") or {}) for e in c.get("env") or []), c["name"]


def test_jobs(tmp_path, own_chart_docs):
    training = job_request("/srv/kqi", "training", 12, {})
    inference = job_request("/srv/kqi", "inference", 13, {12: "/srv/kqi/tenants/team-a/TrainingContainerOutputFiles/12"})
    verdicts = []
    for req in (training, inference):
        docs = job_documents(req, own_chart_docs)
        assert_restricted(docs[0]["spec"]["template"]["spec"])
        verdict = checkov(write(tmp_path, req.key, docs))
        assert unexpected(verdict, "jobs") == [], verdict
        verdicts.append(verdict)
    assert unused(verdicts, "jobs") == []
    # the figures, for the report of the run (pytest -s)
    print({req.key: (v["passed"], len(v["failed"])) for req, v in zip((training, inference), verdicts)})


def test_notebook_pod(tmp_path, full_chart_rendering):
    """The notebook pod that KqiKubeSpawner makes with the configuration z2jh's chart gives the hub
    (singleuser uid 1000, fsGid 100, labels), beside z2jh's NetworkPolicy of notebooks."""
    from jupyterhub import orm

    _ours, z2jh = chart_objects(full_chart_rendering)
    db = orm.new_session_factory("sqlite://")()
    try:
        with charts.z2jh_hub_configuration(charts.documents(full_chart_rendering), tmp_path) as (cfg, _pod, _env):
            pod = asyncio.run(notebook_pod(db, cfg))
    finally:
        db.close()
    assert_restricted(pod["spec"])
    (notebook,) = pod["spec"]["containers"]
    assert notebook["securityContext"]["runAsUser"] == 1000 and pod["spec"]["securityContext"]["fsGroup"] == 100
    policy = charts.find(z2jh, "NetworkPolicy", "singleuser")  # z2jh's policy of notebooks selects the pod
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    verdict = checkov(write(tmp_path, "notebook", [pod, policy]))
    assert unexpected(verdict, "notebook") == [], verdict
    assert unused([verdict], "notebook") == []
    print({"notebook": (verdict["passed"], len(verdict["failed"]))})


def test_helm_chart(tmp_path, full_chart_rendering):
    ours, z2jh = chart_objects(full_chart_rendering)
    figures = {}
    for name, docs in (("chart-kqi", ours), ("chart-z2jh", z2jh)):
        verdict = checkov(write(tmp_path, name, docs))
        assert unexpected(verdict, name) == [], "\n".join(unexpected(verdict, name))
        assert unused([verdict], name) == []
        figures[name] = (verdict["passed"], len(verdict["failed"]))
    print(figures)
