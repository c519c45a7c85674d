"""KFP component: wait for a person's approval of the registered model before it is rolled out."""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Input, Markdown, Output

from kfp_llmops.images import RUNTIME_IMAGE


@dsl.component(base_image=RUNTIME_IMAGE, install_kfp_package=False)
def await_approval(
    registered: Input[Artifact],
    evaluation_report: Input[HTML],
    approval: Output[Markdown],
    approval_config: dict = {},
) -> bool:
    """Returns whether the rollout may go on. With ``approval_config.required`` (off by default), waits until
    ``kfp-llmops approve MODEL VERSION`` or ``reject`` records a decision in the registry, at most ``timeout_s``
    (default a day; then rejected). The Markdown output names the decision, who, why, and links the evaluation report."""
    from kfp_llmops.components.registry.await_approval import core
    from kfp_llmops.config import from_dict
    from kfp_llmops.errors import user_errors
    from kfp_llmops.lineage import atomic_file
    from kfp_llmops.registry import open_registry

    meta = dict(registered.metadata)
    name, version = meta["registered_model"], str(meta["version"]).removesuffix(".0")  # kfp.local: ints as floats
    with user_errors():
        cfg = from_dict(core.ApprovalConfig, dict(approval_config), where="approval_config")
        registry = open_registry(meta["registry_uri"]) if cfg.required else None
        decision = core.wait_for_decision(registry, name, version, cfg)
    print(f"{name} version {version}: {'approved' if decision.approved else 'REJECTED'} by {decision.by}: {decision.reason}")
    with atomic_file(approval.path) as tmp:
        tmp.write_text(decision.markdown(name, version, evaluation_report.uri), encoding="utf-8")
    approval.metadata.update({"approved": decision.approved, "by": decision.by, "reason": decision.reason,
                              "at": decision.at, "model": name, "version": version,
                              "parents": {"registered": registered.uri, "evaluation_report": evaluation_report.uri}})
    return decision.approved
