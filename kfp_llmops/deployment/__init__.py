"""Deployment, shared by the steps that deploy, watch or restore a model: the rollout's configuration and
per-revision statistics, the KServe and Vertex AI targets (manifests, patches, readiness, restore), metrics from
Prometheus and Cloud Monitoring, the requests replayed against a served model and how their answers compare. The
rollout's schedule and decisions stay in ``rollout_model``. Never imports kfp."""
