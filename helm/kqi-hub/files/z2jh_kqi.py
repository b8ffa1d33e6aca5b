# KQI Hub on Zero to JupyterHub: the hub-side glue, run by hub.extraConfig.
#
# z2jh's jupyterhub_config.py exec()s every hub.extraConfig entry in its own namespace,
# where `c` is the hub's config and `load_subconfig` loads another config file into it.
# The chart's values.yaml has one entry that exec()s this file from the ConfigMap
# kqi-hub-config (mounted at /usr/local/etc/kqi). It
#
# 1. sets the environment that KQI Hub's hub configuration reads, from settings.json
#    (rendered by the chart), without replacing what hub.extraEnv set;
# 2. loads KQI Hub's hub configuration: kqi_hub_config/jupyterhub_config.py of the installed
#    kqi-hub package, with its profile "kubernetes" (KQI_PROFILE from hub.extraEnv);
# 3. puts back what z2jh owns and KQI's configuration (written for the embedded install,
#    where the hub starts the proxy on loopback) would replace: the proxy's API URL and
#    token, the hub's cookie secret and addresses, z2jh's services and roles (e.g. the
#    idle culler, hub.services, hub.loadRoles);
# 4. makes the kqi service reachable from the proxy pod: it is routed at
#    http://<hub Service>:<port> and listens on all addresses of the hub pod
#    (KqiService.ip in kqi_service_config.py);
# 5. hands the kqi service process what a hub-managed service does not inherit from the
#    hub pod: the in-cluster API address (for its Kubernetes job backend);
# 6. points KqiKubeSpawner at the chart's volume and runtime ConfigMap, and makes the
#    notebook image of z2jh's singleuser.image the default image of KQI notebooks.
#
# settings.json and kqi_service_config.py are read from the folder of this file: the file
# name that hub.extraConfig compiles it with.


def _kqi_hub_setup(c, load_subconfig):
    import copy
    import json
    import os
    import sys

    import kqi_hub_config
    from z2jh import get_name

    etc = os.path.dirname(os.path.abspath(sys._getframe().f_code.co_filename))
    with open(os.path.join(etc, "settings.json")) as f:
        settings = json.load(f)
    port = int(settings["servicePort"])
    hub_host = get_name("hub")
    notebook_image = c.KubeSpawner.get("image")  # z2jh: singleuser.image.name:tag

    # 1. the environment of hub_config/jupyterhub_config.py and profiles/kubernetes.py
    env = {
        "KQI_DATA_DIR": settings["dataDir"],
        "KQI_PUBLIC_URL": settings["publicUrl"],
        "KQI_NAMESPACE": settings["namespace"],
        "KQI_SERVICE_PORT": str(port),
        "KQI_SERVICE_CONFIG": os.path.join(etc, "kqi_service_config.py"),
        "KQI_HUB_SERVICE_HOST": hub_host,
        # fixed ports instead of free ones: z2jh's hub listens on 8081, its proxy API on 8001
        "KQI_HUB_API_PORT": "8081",
        "KQI_PROXY_API_PORT": "8001",
        "KQI_IP": "0.0.0.0",
        "KQI_PORT": "8000",
    }
    if notebook_image:
        env["KQI_NOTEBOOK_IMAGE"] = notebook_image
    for name, value in env.items():
        os.environ.setdefault(name, value)
    if os.environ.get("KQI_PROFILE") != "kubernetes":
        raise SystemExit("KQI Hub on Kubernetes needs KQI_PROFILE=kubernetes (jupyterhub.hub.extraEnv)")

    # what z2jh set and KQI's configuration replaces
    z2jh_proxy = copy.deepcopy(c.ConfigurableHTTPProxy)
    z2jh_services = list(c.JupyterHub.get("services") or [])
    z2jh_roles = list(c.JupyterHub.get("load_roles") or [])
    z2jh_hub = {k: c.JupyterHub[k] for k in ("cookie_secret", "hub_bind_url", "hub_connect_url")
                if k in c.JupyterHub}

    # 2. KQI Hub's hub configuration
    path = os.path.join(os.path.dirname(os.path.abspath(kqi_hub_config.__file__)), "jupyterhub_config.py")
    if not os.path.exists(path):  # load_subconfig would skip a missing file without a word
        raise SystemExit(f"KQI Hub's hub configuration is missing: {path} (is kqi-hub installed in the hub image?)")
    load_subconfig(path)

    # 3. z2jh's proxy (in its own pod, token from CONFIGPROXY_AUTH_TOKEN), cookie secret and
    #    hub addresses (hub_bind_url and hub_connect_url take precedence over these anyway)
    c.ConfigurableHTTPProxy = z2jh_proxy
    for key in ("ip", "port", "hub_ip", "hub_port", "hub_connect_ip", "cookie_secret_file"):
        c.JupyterHub.pop(key, None)
    c.JupyterHub.update(z2jh_hub)

    # 4. + 5. the kqi service, beside z2jh's services and roles
    kqi_services = list(c.JupyterHub.services)
    for service in kqi_services:
        if service.get("name") == "kqi":
            service["url"] = f"http://{hub_host}:{port}"
            environment = dict(service.get("environment") or {})
            for name in ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "KQI_NAMESPACE"):
                if os.environ.get(name):
                    environment[name] = os.environ[name]
            service["environment"] = environment
    ours = {s["name"] for s in kqi_services}
    c.JupyterHub.services = [s for s in z2jh_services if s.get("name") not in ours] + kqi_services
    kqi_roles = list(c.JupyterHub.load_roles)
    ours = {r["name"] for r in kqi_roles}
    c.JupyterHub.load_roles = [r for r in z2jh_roles if r.get("name") not in ours] + kqi_roles

    # 6. notebooks
    c.KqiKubeSpawner.storage_claim_name = settings["storage"]["claimName"]
    c.KqiKubeSpawner.runtime_config_map = settings["runtimeConfigMap"]
    c.KqiKubeSpawner.partition_label = settings["partitionLabel"]
    # the lab extension: copied into every notebook pod from this image ("" = none)
    c.KqiKubeSpawner.lab_image = settings.get("labImage", "")
    if notebook_image:
        c.KqiKubeSpawner.default_image = notebook_image


_kqi_hub_setup(c, load_subconfig)  # noqa: F821 (names of z2jh's config namespace)
del _kqi_hub_setup
