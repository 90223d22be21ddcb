"""Log a fine-tuned classifier directory as an MLflow model and register it under a name with an alias.

Opt-in from the evaluate stage (`evaluate.log_model`). `log_classifier` raises on failure (so tests see
errors); the stage calls `try_log_classifier`, which turns any failure into one warning: the evaluation
and its reports are already written and must not be lost to a registry problem.
"""

from __future__ import annotations

import logging
import os
import warnings
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from lmpipe.models.load import check_model_dir
from lmpipe.tracking import TrackingWarning

log = logging.getLogger(__name__)


# What loading the model back needs; torchvision is not among them.
REQUIREMENTS = ("torch", "transformers", "tokenizers", "safetensors")


def pip_requirements() -> list[str]:
    """The installed versions of what the model needs, pinned.

    Explicit because without them MLflow 3 infers requirements by loading the model in a subprocess, and
    `mlflow.transformers.log_model` then fails where torchvision is not installed.
    """
    pins = []
    for dist in REQUIREMENTS:
        try:
            pins.append(f"{dist}=={version(dist).split('+')[0]}")  # '2.5.1+cpu' is a local build, not on PyPI
        except PackageNotFoundError:
            pins.append(dist)
    return pins


def log_classifier(model_dir: str | Path, run_id: str, tracking_uri: str, registered_model_name: str,
                   alias: str, name: str = "classifier", description: str = "") -> str:
    """Log `model_dir` (a Hugging Face text-classification directory) into the run `run_id`, register it
    as a new version of `registered_model_name`, point `alias` at that version and return the version."""
    import mlflow
    import transformers
    from huggingface_hub import ModelCard

    model_dir = Path(model_dir).resolve()  # an absolute path: MLflow would look a relative one up on the Hub
    check_model_dir(model_dir)
    pipe = transformers.pipeline("text-classification", model=str(model_dir), tokenizer=str(model_dir))
    # our own card: MLflow would otherwise try to fetch one from the Hub
    card = ModelCard(f"# {registered_model_name}\n\n{description or 'A text classifier trained by lmpipe.'}\n")
    previous = os.environ.get("MLFLOW_TRACKING_URI")  # the fluent API needs a global URI; put it back after
    mlflow.set_tracking_uri(tracking_uri)
    try:
        with mlflow.start_run(run_id=run_id):
            info = mlflow.transformers.log_model(
                pipe, name=name, task="text-classification", pip_requirements=pip_requirements(),
                registered_model_name=registered_model_name, model_card=card)
    finally:
        mlflow.set_tracking_uri(previous)
    model_version = str(info.registered_model_version)
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    client.set_registered_model_alias(registered_model_name, alias, model_version)
    if description:
        client.update_model_version(registered_model_name, model_version, description=description)
    log.info("registered %s as models:/%s@%s (version %s)", model_dir, registered_model_name, alias, model_version)
    return model_version


def try_log_classifier(*args, **kwargs) -> str | None:
    """`log_classifier`, with any failure turned into one TrackingWarning (and None)."""
    try:
        return log_classifier(*args, **kwargs)
    except Exception as e:  # noqa: BLE001 - the evaluation is done; a registry failure must not undo it
        warnings.warn(f"logging the classifier to MLflow failed ({type(e).__name__}: {str(e)[:300]}); "
                      "the evaluation's reports are written, the model is not registered", TrackingWarning,
                      stacklevel=2)
        return None
