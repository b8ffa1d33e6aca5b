# The kqi service's configuration file on Kubernetes (KQI_SERVICE_CONFIG, traitlets), from
# the settings.json beside it that the KQI Hub chart renders. The service runs in the hub
# pod, started by the hub; its jobs are batch/v1 Jobs (KubernetesBackend) in the release
# namespace that mount sub-paths of the chart's shared volume.
import json
import os

c = get_config()  # noqa: F821

with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "settings.json")) as _f:
    _settings = json.load(_f)
_jobs = _settings["jobs"]

# the proxy pod reaches the service through the hub Service: listen on all addresses
c.KqiService.ip = "0.0.0.0"
c.KqiService.job_backend = "kubernetes"
# service.directTransfer: the signed URLs of a local store on a listener of their own (off: 0)
_direct = _settings.get("directTransfer") or {}
if int(_direct.get("port") or 0):
    c.KqiService.direct_transfer_port = int(_direct["port"])
    c.KqiService.direct_transfer_ip = "0.0.0.0"
    c.KqiService.direct_transfer_url = _direct.get("url") or ""

k = c.KubernetesBackend
k.namespace = _settings["namespace"]
# the volume the hub pod has mounted at storage_root: job folders and local stores are on it
k.storage_volume = {"persistentVolumeClaim": {"claimName": _settings["storage"]["claimName"]}}
k.storage_root = _settings["storage"]["mountPath"]
k.jobs_dir = os.path.join(_settings["dataDir"], "jobs")  # beside the rest of the data directory
k.default_image = _jobs["defaultImage"]
k.image_pull_policy = _jobs["imagePullPolicy"]
k.service_account = _jobs["serviceAccount"]
k.partition_label = _settings["partitionLabel"]
k.tenant_node_label = bool(_jobs["tenantNodeLabel"])
k.node_selector = dict(_jobs["nodeSelector"] or {})
k.gpu_resource = _jobs["gpuResource"]
k.ttl_seconds_after_finished = int(_jobs["ttlSecondsAfterFinished"])
k.active_deadline_seconds = int(_jobs["activeDeadlineSeconds"])
_capacity = _jobs.get("capacity") or {}
k.total_cpu = float(_capacity.get("cpu") or 0)
k.total_memory_gib = float(_capacity.get("memoryGiB") or 0)
k.total_gpu = int(_capacity["gpu"] if _capacity.get("gpu") is not None else -1)
