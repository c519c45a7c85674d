"""What the exit handler does when a run ends in failure or is terminated; never imports kfp.

A rollout in flight is marked by the registry alias ``canary``. If the run did not succeed: the target's traffic goes
back to the stable revision (KServe: ``canaryTrafficPercent: 0``; Vertex AI: all traffic to the production version's
deployed model, the others undeployed; local: the servers died with their step) and ``canary`` is removed.
``production`` never moves here.
"""

from __future__ import annotations

from kfp_llmops.registry import CANARY, PRODUCTION

SUCCEEDED = "SUCCEEDED"


def restore(state: str, target: str, registry, model_name: str, *, kserve_api=None, namespace: str = "",
            inference_service: str = "", vertex_client=None, vertex_endpoint: str = "") -> list[str]:
    """Returns what it did, one line per action."""
    if state == SUCCEEDED:
        return ["the run succeeded: nothing to restore"]
    done = []
    if target == "kserve":
        from kfp_llmops.deployment.kserve import restore_stable

        done.append(restore_stable(kserve_api, inference_service or model_name, namespace))
    elif target == "vertex" and vertex_endpoint:
        from kfp_llmops.deployment.vertex import restore_stable

        stable = registry.get_alias(model_name, PRODUCTION)
        if stable is None:
            done.append(f"no '{PRODUCTION}' version of {model_name}: the endpoint is left as it is")
        else:
            done.append(restore_stable(vertex_client, vertex_endpoint, stable.resource))
    else:
        done.append("local target: the rollout's servers stopped with its step")
    canary = registry.get_alias(model_name, CANARY)
    if canary is not None:
        registry.delete_alias(model_name, CANARY)
        done.append(f"removed the '{CANARY}' alias from {model_name} version {canary.version}")
    return done
