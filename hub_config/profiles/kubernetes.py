# Profile "kubernetes": the hub runs in a cluster (normally from the Helm chart in helm/).
# Notebooks are KubeSpawner pods, the hub and kqi databases are PostgreSQL, files are in S3.
# Every value comes from the environment that the chart sets.
import os

c = get_config()  # noqa: F821


def required(name):
    value = os.environ.get(name)
    if not value:
        raise SystemExit(f"The kubernetes profile needs the environment variable {name}")
    return value


c.JupyterHub.db_url = required("KQI_HUB_DB_URL")
c.JupyterHub.spawner_class = "kqi-kube"
c.JupyterHub.allow_named_servers = True
c.KqiKubeSpawner.namespace = os.environ.get("KQI_NAMESPACE", "kqi")
c.KqiKubeSpawner.default_image = os.environ.get("KQI_NOTEBOOK_IMAGE", "quay.io/jupyter/base-notebook:latest")
c.KqiKubeSpawner.default_url = "/lab"
# the hub and the service listen on all addresses inside the pod network
c.JupyterHub.hub_ip = "0.0.0.0"
c.JupyterHub.hub_connect_ip = os.environ.get("KQI_HUB_SERVICE_HOST", "hub")
# the spawner accepts a notebook's plan (what to mount) only when the kqi service signed it, with
# a key derived from the service's secret key (the same value the service reads)
from kqi_services.datadir import data_dir_from_env as _data_dir, secret_file as _secret_file  # noqa: E402

c.KqiKubeSpawner.plan_secret = os.environ.get("KQI_SECRET_KEY") or _secret_file(
    os.path.join(_data_dir(), "kqi", "secret_key"))
