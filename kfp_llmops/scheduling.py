"""Recurring runs of a compiled pipeline: a Kubeflow Pipelines recurring run (``kfp.Client.create_recurring_run``) or a
Vertex AI ``Schedule`` of pipeline jobs (what ``PipelineJob.create_schedule`` creates), from one :class:`ScheduleSpec`.
No kfp at import time; nothing here submits a run itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from kfp_llmops.errors import ConfigError


@dataclass(frozen=True)
class ScheduleSpec:
    """``cron``: five fields (minute hour day-of-month month day-of-week), as crontab and Vertex AI take them;
    ``time_zone``: an IANA name (Vertex AI honours it; Kubeflow's scheduler runs in UTC, so other zones are refused
    there). ``max_concurrency``: runs of this schedule at once (1: a slow run delays the next, never overlaps it)."""

    name: str
    cron: str
    max_concurrency: int = 1
    time_zone: str = "UTC"

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise ConfigError("schedule name must not be empty")
        fields = self.cron.split()
        if len(fields) != 5:
            raise ConfigError(f"cron {self.cron!r} must have 5 fields (minute hour day-of-month month day-of-week), "
                              f"e.g. '0 3 * * 1' for Mondays at 03:00; got {len(fields)}")
        if self.max_concurrency < 1:
            raise ConfigError(f"max_concurrency must be >= 1, got {self.max_concurrency}")

    def kfp_cron(self) -> str:
        """Kubeflow's scheduler takes robfig/cron expressions with a leading seconds field."""
        if self.time_zone != "UTC":
            raise ConfigError(f"Kubeflow Pipelines runs schedules in UTC; time zone {self.time_zone!r} is not supported "
                              "there: give the cron in UTC")
        return "0 " + " ".join(self.cron.split())

    def vertex_cron(self) -> str:
        return f"TZ={self.time_zone} {' '.join(self.cron.split())}"


def create_kfp_schedule(client, spec: ScheduleSpec, package_path: str, arguments: dict, experiment: str) -> str:
    """A recurring run of the compiled spec at ``package_path`` in ``experiment`` (created if missing); its id."""
    exp = client.create_experiment(name=experiment)
    recurring = client.create_recurring_run(
        experiment_id=exp.experiment_id, job_name=spec.name, cron_expression=spec.kfp_cron(),
        max_concurrency=spec.max_concurrency, no_catchup=True, params=arguments, pipeline_package_path=package_path,
    )
    return recurring.recurring_run_id


def create_vertex_schedule(job, spec: ScheduleSpec, *, project: str, location: str, api_endpoint: str | None = None) -> str:
    """A Vertex AI Schedule that creates ``job`` (an ``aiplatform.PipelineJob`` built offline) on the cron; its name."""
    import json

    from google.cloud.aiplatform_v1 import ScheduleServiceClient
    from google.cloud.aiplatform_v1.types import CreatePipelineJobRequest, PipelineJob, Schedule

    from kfp_llmops.vertex_api import gapic_client

    parent = f"projects/{project}/locations/{location}"
    pipeline_job = PipelineJob.from_json(json.dumps(job.to_dict()))  # the job as the SDK built it (spec, parameters, root)
    schedule = Schedule(
        display_name=spec.name, cron=spec.vertex_cron(), max_concurrent_run_count=spec.max_concurrency,
        create_pipeline_job_request=CreatePipelineJobRequest(parent=parent, pipeline_job=pipeline_job),
    )
    client = gapic_client(ScheduleServiceClient, location, api_endpoint)
    return client.create_schedule(parent=parent, schedule=schedule).name
