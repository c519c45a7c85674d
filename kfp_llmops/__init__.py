"""kfp-llmops: Kubeflow Pipelines components that take an LLM from new training data to a rolled-out LoRA fine-tune."""

__version__ = "0.1.0"
