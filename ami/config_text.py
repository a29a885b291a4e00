"""A run's config as text for the record (run folder, TensorBoard, checkpoints), secrets masked."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

SECRETS = ("web_api.token",)
"""Keys whose values never leave the process: the control API's bearer token."""

REDACTED = "<redacted>"
"""What a secret's value is shown as."""


def redacted_override(override: str) -> str:
    """A command-line override (``key=value``, ``+key=value``...) with a secret's value masked."""
    key = override.split("=", 1)[0]
    return f"{key}={REDACTED}" if key.lstrip("+~") in SECRETS else override


def scrub_hydra_records(cfg: DictConfig, output_dir: Path) -> list[Path]:
    """Mask :data:`SECRETS` in what Hydra wrote for this run before it started.

    Hydra records the overrides and the composed config in ``<run>/.hydra/`` (and a
    sweep in ``multirun.yaml`` beside its jobs), a command-line token included.

    Returns:
        The files that held a secret.
    """
    secrets = [str(value) for key in SECRETS if (value := _secret(cfg, key))]
    if not secrets:
        return []
    candidates = [*(output_dir / ".hydra").glob("*.yaml"), output_dir.parent / "multirun.yaml"]
    scrubbed = []
    for path in candidates:
        if not path.is_file():
            continue
        text = path.read_text()
        cleaned = text
        for secret in secrets:
            cleaned = cleaned.replace(secret, REDACTED)
        if cleaned != text:
            path.write_text(cleaned)
            scrubbed.append(path)
    return scrubbed


def _secret(cfg: DictConfig, key: str) -> object:
    try:
        return OmegaConf.select(cfg, key)
    except Exception:  # an interpolation that cannot resolve here
        return None


def redacted_yaml(cfg: DictConfig, resolve: bool = True) -> str:
    """``cfg`` as YAML with :data:`SECRETS` masked; resolved where that is possible."""
    try:
        container = OmegaConf.to_container(cfg, resolve=resolve)
    except Exception:  # e.g. a ${hydra:...} interpolation outside a Hydra run
        container = OmegaConf.to_container(cfg, resolve=False)
    copy = OmegaConf.create(container)
    for key in SECRETS:
        if OmegaConf.select(copy, key) is not None:
            OmegaConf.update(copy, key, REDACTED)
    return OmegaConf.to_yaml(copy)
