"""The lab extension in KqiKubeSpawner's pods (manifests without a cluster, as test_kube_spawner.py
makes them, validated with kubernetes-validate), `python -m kqi_labextension.install` (what the
pod's init container runs) and the hub token the KQI spawners ask for."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from jupyterhub import orm

from kqi_spawner.base import LAB_ARGS, LAB_DIR, SERVER_ROLE_SCOPES, kqi_server_token_scopes
from kqi_spawner.kube import LAB_VOLUME

from .test_helm_chart import FILES, documents, find, own_chart, render, values_yaml  # noqa: F401
from .test_kube_spawner import RESTRICTED, env_of, hub_db, make_spawner, mounts_of, pod_for, service_options  # noqa: F401

HUB_IMAGE = "registry.example.com/kqi-hub:0.1.0"


async def test_pod_copies_the_lab_extension_from_the_hub_image(hub_db):
    spawner = make_spawner(hub_db, lab_image=HUB_IMAGE)
    spawner.user_options = service_options("alice", "kqi-5")
    pod = await pod_for(spawner)
    spec = pod["spec"]
    (notebook,) = spec["containers"]
    prepare, lab = spec["initContainers"]
    assert prepare["name"] == "kqi-prepare"
    # an init container of the hub's image lays the extension out in an emptyDir ...
    assert lab["name"] == "kqi-labextension" and lab["image"] == HUB_IMAGE
    assert lab["command"] == ["python3", "-m", "kqi_labextension.install", LAB_DIR]
    assert lab["securityContext"] == RESTRICTED
    assert lab["resources"]["limits"]["memory"] == "256Mi"
    assert mounts_of(lab) == {LAB_DIR: {"name": LAB_VOLUME, "mountPath": LAB_DIR}}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes[LAB_VOLUME] == {"name": LAB_VOLUME, "emptyDir": {}}
    # ... which the notebook reads only, from its PYTHONPATH and JUPYTER_PATH, enabled by an argument
    assert mounts_of(notebook)[LAB_DIR] == {"name": LAB_VOLUME, "mountPath": LAB_DIR, "readOnly": True}
    assert LAB_DIR not in mounts_of(prepare)
    env = env_of(notebook)
    assert env["PYTHONPATH"] == f"{LAB_DIR}/python" and env["JUPYTER_PATH"] == f"{LAB_DIR}/share/jupyter"
    start = json.loads(env["KQI_NOTEBOOK_SPEC"])
    assert start["serverCommand"] == ["jupyterhub-singleuser", "--notebook-dir=/kqi/output", *LAB_ARGS]
    # what the extension shows and proposes
    assert env["KQI_IMAGE"] == "registry.example.com/team/torch:2.3"
    assert json.loads(env["KQI_GIT_MODEL"])["repository"] == "model"
    assert int(env["KQI_EXPIRES_AT"]) == int(spawner.expires_at)


async def test_no_lab_image_no_lab_extension(hub_db):
    spawner = make_spawner(hub_db)  # KQI_LAB_IMAGE unset
    spawner.user_options = service_options("alice", "kqi-5")
    pod = await pod_for(spawner)
    assert [c["name"] for c in pod["spec"]["initContainers"]] == ["kqi-prepare"]
    assert LAB_DIR not in mounts_of(pod["spec"]["containers"][0])
    assert "PYTHONPATH" not in env_of(pod["spec"]["containers"][0])


def test_install_lays_the_extension_out(tmp_path):
    """What the init container runs: the package (no byte code) and the front-end once built, at the
    paths lab_env names; a Python started with that path imports it."""
    run = subprocess.run([sys.executable, "-m", "kqi_labextension.install", str(tmp_path)], capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    package = tmp_path / "python" / "kqi_labextension"
    assert {"__init__.py", "handlers.py", "install.py"} <= set(os.listdir(package))
    assert not list(package.rglob("__pycache__"))
    import kqi_labextension

    built = os.path.isfile(os.path.join(os.path.dirname(kqi_labextension.__file__), "labextension", "package.json"))
    frontend = tmp_path / "share" / "jupyter" / "labextensions" / "kqi-labextension" / "package.json"
    assert frontend.is_file() == built
    probe = subprocess.run([sys.executable, "-c", "import kqi_labextension; print(kqi_labextension.__file__)"],
                           env={**os.environ, "PYTHONPATH": str(tmp_path / "python")}, cwd=str(tmp_path),
                           capture_output=True, text=True, timeout=60)
    assert probe.stdout.strip() == str(package / "__init__.py"), probe.stderr


async def test_server_token_scopes(hub_db):
    """The notebook's own token asks for the server role's scopes, the kqi service and the KQI scopes
    of the owner's tenants (the hub grants what the owner holds; the service narrows it to the
    notebook's tenant), never system administration."""
    spawner = make_spawner(hub_db)
    for name in ("tenant-a", "tenant-b"):
        group = orm.Group(name=name)
        hub_db.add(group)
        spawner.user.orm_user.groups.append(group)
    hub_db.commit()
    assert spawner.server_token_scopes is kqi_server_token_scopes
    scopes = kqi_server_token_scopes(spawner)
    assert set(SERVER_ROLE_SCOPES) <= set(scopes)
    assert "access:services!service=kqi" in scopes
    assert {f"custom:kqi:{kind}!group=tenant-{t}" for kind in ("user", "tenant-admin") for t in "ab"} <= set(scopes)
    assert not [s for s in scopes if "system-admin" in s]


# ------------------------------------------------------------------ the Helm chart
def test_chart_names_the_lab_image(own_chart):  # noqa: F811
    """settings.json (read by the hub glue, z2jh_kqi.py → KqiKubeSpawner.lab_image): the hub's image
    by default, the one named in labExtension.image, or none when the extension is off."""
    def lab_image(values):
        config = find(documents(render(own_chart, values)), "ConfigMap", "kqi-hub-config")
        return json.loads(config["data"]["settings.json"])["labImage"]

    hub_image = values_yaml()["jupyterhub"]["hub"]["image"]
    assert lab_image({}) == f"{hub_image['name']}:{hub_image['tag']}"
    assert lab_image({"jupyterhub": {"hub": {"image": {"name": "reg.example.com/kqi-hub", "tag": "1.2"}}}}) == (
        "reg.example.com/kqi-hub:1.2")
    assert lab_image({"labExtension": {"image": "reg.example.com/lab:3"}}) == "reg.example.com/lab:3"
    assert lab_image({"labExtension": {"enabled": False}}) == ""
    glue = (FILES / "z2jh_kqi.py").read_text()
    assert 'c.KqiKubeSpawner.lab_image = settings.get("labImage", "")' in glue
