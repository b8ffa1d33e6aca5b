"""KQI notebook spawners: one notebook behaviour (spawner/base.py) over two bases.

- KqiKubeSpawner (kqi_spawner.kube): KubeSpawner, for the kubernetes profile;
- KqiLocalSpawner (kqi_spawner.local): a podman container of the requested image, for the embedded default.
Both are registered as JupyterHub spawners: `kqi-kube` and `kqi-local`.
"""
from .options import NotebookOptions, OptionsError, parse_options  # noqa: F401
