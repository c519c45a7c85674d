"""Kubernetes API clients for steps that talk to the cluster (rollout, multi-node training).

A step runs as a least-privilege ServiceAccount whose token Secret the pipeline mounts (kfp-kubernetes
``use_secret_as_volume``) at ``token_dir``; without it, the pod's own ServiceAccount or a kubeconfig is used.
"""

from __future__ import annotations

import os
from pathlib import Path


def api_client(token_dir: str = "", kubeconfig: str = ""):
    from kubernetes import client, config

    token = Path(token_dir) / "token" if token_dir else None
    if not kubeconfig and token is not None and token.is_file() and os.environ.get("KUBERNETES_SERVICE_HOST"):
        conf = client.Configuration()
        conf.host = f"https://{os.environ['KUBERNETES_SERVICE_HOST']}:{os.environ.get('KUBERNETES_SERVICE_PORT', '443')}"
        conf.api_key = {"authorization": token.read_text().strip()}
        conf.api_key_prefix = {"authorization": "Bearer"}
        conf.ssl_ca_cert = str(Path(token_dir) / "ca.crt")
        return client.ApiClient(conf)
    if kubeconfig:
        config.load_kube_config(kubeconfig)
    else:
        try:
            config.load_incluster_config()
        except config.ConfigException:
            config.load_kube_config()
    return client.ApiClient()


def custom_objects(token_dir: str = "", kubeconfig: str = ""):
    from kubernetes import client

    return client.CustomObjectsApi(api_client(token_dir, kubeconfig))
