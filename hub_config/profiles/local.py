# Profile "local": everything on one machine, all state under the data directory.
# SQLite for the hub (set in jupyterhub_config.py) and for the kqi service, the local
# object store, local jobs, and notebooks as local processes.
import os

c = get_config()  # noqa: F821

DATA_DIR = os.environ["KQI_DATA_DIR"] if os.environ.get("KQI_DATA_DIR") else os.path.abspath("kqi-data")

c.JupyterHub.spawner_class = "simple"
c.Spawner.cmd = ["jupyterhub-singleuser"]
c.Spawner.default_url = "/lab"
if os.geteuid() == 0:
    c.Spawner.args = ["--allow-root"]
c.SimpleLocalProcessSpawner.home_dir_template = os.path.join(DATA_DIR, "notebooks", "{username}")
c.JupyterHub.allow_named_servers = True
