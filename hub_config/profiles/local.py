# Profile "local": everything on one machine, all state under the data directory.
# SQLite for the hub (set in jupyterhub_config.py) and for the kqi service, the local
# object store, local jobs, and notebooks as local processes.
import os

c = get_config()  # noqa: F821

DATA_DIR = os.environ["KQI_DATA_DIR"] if os.environ.get("KQI_DATA_DIR") else os.path.abspath("kqi-data")

# KQI's notebook spawner; benchmarks/notebooks.py starts a second hub with JupyterHub's plain
# "simple" (SimpleLocalProcessSpawner) as its baseline
c.JupyterHub.spawner_class = os.environ.get("KQI_NOTEBOOK_SPAWNER") or "kqi-local"
c.Spawner.cmd = ["jupyterhub-singleuser"]
c.Spawner.default_url = "/lab"
if os.geteuid() == 0 and c.JupyterHub.spawner_class != "kqi-local":
    c.Spawner.args = ["--allow-root"]  # the benchmarks' plain spawner runs the server as this user
c.KqiLocalSpawner.notebooks_dir = os.path.join(DATA_DIR, "notebooks")
c.KqiLocalSpawner.allow_infinite_lifetime = "plan"
# the image of a notebook whose options name none (an image with JupyterLab saves its install at start)
if os.environ.get("KQI_NOTEBOOK_IMAGE"):
    c.KqiLocalSpawner.default_image = os.environ["KQI_NOTEBOOK_IMAGE"]
if os.environ.get("KQI_NOTEBOOK_LIFETIME_UNIT_SECONDS"):
    # tests make an hour of lifetime a few seconds long
    c.KqiLocalSpawner.lifetime_unit_seconds = float(os.environ["KQI_NOTEBOOK_LIFETIME_UNIT_SECONDS"])
c.Spawner.poll_interval = int(os.environ.get("KQI_SPAWNER_POLL_SECONDS", "10"))
c.Spawner.http_timeout = 120
c.Spawner.start_timeout = 300
c.JupyterHub.allow_named_servers = True
# the spawner accepts a notebook's plan (what to mount) only when the kqi service signed it, with
# a key derived from the service's secret key (the same value the service reads)
from kqi_services.datadir import data_dir_from_env as _data_dir, secret_file as _secret_file  # noqa: E402

c.KqiLocalSpawner.plan_secret = os.environ.get("KQI_SECRET_KEY") or _secret_file(
    os.path.join(_data_dir(), "kqi", "secret_key"))
