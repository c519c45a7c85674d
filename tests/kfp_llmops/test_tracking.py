"""Training step metrics in an MLflow tracking store, readable while the step trains."""

import pytest

from kfp_llmops import tracking
from kfp_llmops.components.data.prepare_dataset.core import prepare
from kfp_llmops.components.training.train_lora import core
from kfp_llmops.datasets import instruction_pairs, read_jsonl


@pytest.fixture(scope="module")
def split(demo_assets, tokenizer):
    return prepare(instruction_pairs(read_jsonl(demo_assets / "train.jsonl"))[:48], tokenizer)


class Watching:
    """The tracker training gets, which at step 4 reads the store through a second client, as the MLflow UI would."""

    def __init__(self, inner, uri):
        from mlflow import MlflowClient

        self.inner, self.run_id = inner, inner.run_id
        self.reader = MlflowClient(tracking_uri=uri)
        self.seen_mid_run = None

    def log_step(self, step, **metrics):
        self.inner.log_step(step, **metrics)
        if step == 4 and "loss" in metrics:
            self.seen_mid_run = [m.step for m in self.reader.get_metric_history(self.run_id, "loss")]

    def flush(self):
        self.inner.flush()

    def close(self, status="FINISHED"):
        self.inner.close(status)


def test_step_metrics_are_in_mlflow_while_training_runs(base_model, split, tokenizer, tmp_path):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = core.TrainConfig(max_steps=6, batch_size=8, warmup_steps=1, eval_every=3)
    lines = []
    tracker = tracking.open_tracker(uri, model_name="demo", run_name="train-demo", params=cfg.to_dict(),
                                    flush_every_s=0.0, log=lines.append)
    watching = Watching(tracker, uri)
    result = core.train(base_model, split.train, split.validation, cfg, pad_id=tokenizer.pad_token_id,
                        log=lambda _: None, tracker=watching)
    assert watching.seen_mid_run == [1, 2, 3, 4]  # readable during training, not only at the end
    tracker.close()

    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(tracker.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["r"] == "16" and run.data.tags[tracking.KIND_TAG] == "training"
    assert client.get_experiment(run.info.experiment_id).name == "kfp-llmops/demo"  # beside the model's versions
    history = {k: [(m.step, m.value) for m in client.get_metric_history(tracker.run_id, k)]
               for k in ("loss", "learning_rate", "tokens_per_second", "peak_memory_mb", "validation_loss")}
    assert [v for _, v in history["loss"]] == pytest.approx(result.losses)
    assert [v for _, v in history["learning_rate"]] == pytest.approx(result.learning_rates)
    assert all(v > 0 for _, v in history["tokens_per_second"]) and all(v > 0 for _, v in history["peak_memory_mb"])
    assert [s for s, _ in history["validation_loss"]] == [s for s, _ in result.evaluations] == [3, 6]
    assert [v for _, v in history["validation_loss"]] == pytest.approx([v for _, v in result.evaluations])
    assert run.data.metrics["final_validation_loss"] == pytest.approx(result.validation_loss)
    assert any("tracking training metrics in MLflow run" in line for line in lines)


def test_a_failed_training_ends_its_run_failed(tmp_path):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with pytest.raises(RuntimeError, match="out of memory"):
        with core.tracked(uri, "demo", core.TrainConfig(), base_model="m", log=lambda _: None) as tracker:
            tracker.log_step(1, loss=2.0)
            raise RuntimeError("out of memory")
    run = MlflowClient(tracking_uri=uri).get_run(tracker.run_id)
    assert run.info.status == "FAILED" and run.data.metrics["loss"] == 2.0


def test_no_mlflow_store_means_no_tracking_and_says_why():
    lines = []
    assert isinstance(tracking.open_tracker("", model_name="m", run_name="r", log=lines.append), tracking.NullTracker)
    assert lines == []
    tracker = tracking.open_tracker("vertex://projects/p/locations/l", model_name="m", run_name="r", log=lines.append)
    assert isinstance(tracker, tracking.NullTracker)
    assert lines == ["training metrics are tracked in MLflow only; vertex:// is not an MLflow store"]


def test_an_unreachable_tracking_server_never_stops_training(monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    lines = []
    tracker = tracking.open_tracker("http://127.0.0.1:9", model_name="m", run_name="r", log=lines.append)
    assert isinstance(tracker, tracking.NullTracker)
    assert lines[0].startswith("WARNING: MLflow tracking at http://127.0.0.1:9 is not available")


def test_a_store_that_fails_mid_run_is_reported_once_and_left_alone():
    class Broken:
        calls = 0

        def log_batch(self, *a, **k):
            Broken.calls += 1
            raise ConnectionError("server went away")

        def set_terminated(self, *a, **k):
            raise AssertionError("not called once the store is broken")

    lines = []
    tracker = tracking.StepTracker(Broken(), "run", "http://x", flush_every_s=0.0, log=lines.append)
    for step in range(1, 5):
        tracker.log_step(step, loss=1.0)
    tracker.close()
    assert Broken.calls == 1
    assert lines == ["WARNING: MLflow tracking at http://x failed (ConnectionError: server went away); training goes on "
                     "without step metrics"]


def test_metrics_are_batched_between_flushes():
    class Recording:
        batches = []

        def log_batch(self, run_id, metrics=(), synchronous=True):
            self.batches.append([(m.key, m.step) for m in metrics])

        def set_terminated(self, run_id, status):
            self.status = status

    now = [0.0]
    client = Recording()
    tracker = tracking.StepTracker(client, "run", "http://x", flush_every_s=5.0, log=print, clock=lambda: now[0])
    for step in range(1, 4):
        tracker.log_step(step, loss=1.0, learning_rate=None)  # a None is left out
        now[0] += 2.0
    tracker.close()
    assert client.batches == [[("loss", 1), ("loss", 2), ("loss", 3)]]  # one call, when the run ends
    assert client.status == "FINISHED"
