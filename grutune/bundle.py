"""Save and load a model bundle: ``model.safetensors`` + ``bundle.json``. No pickle.

The model is an ``Ensemble`` of one or more members (weights ``members.<i>.*``).
``bundle.json`` holds the format version, versions of grutune and torch, each member's
model config, how members are combined, the task's fitted state (vocabulary, labels,
preprocessing), the test metrics and the SHA-256 of the weights file. Loading checks all
of it and never executes code.

>>> import tempfile, torch
>>> from grutune.config import ModelConfig
>>> from grutune.model import Ensemble, SequenceModel
>>> cfg = ModelConfig(num_outputs=2, vocab_size=10, embed_dim=4, hidden_size=3)
>>> d = tempfile.mkdtemp()
>>> save_bundle(d, Ensemble([SequenceModel(cfg)], "probability"), {"task": "text"}, {})
>>> load_bundle(d).configs[0].hidden_size
3
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from . import __version__
from .config import ModelConfig, to_dict
from .exceptions import BundleError, ConfigError
from .files import atomic_path, write_json
from .model import Ensemble, make_model

FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
MANIFEST = "bundle.json"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_weights(model: torch.nn.Module, path: str | Path) -> str:
    """Write the state dict as safetensors (atomically); returns its SHA-256."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp))
        return sha256(tmp)


def load_weights(model: torch.nn.Module, path: str | Path) -> None:
    """Load safetensors weights into ``model``; BundleError when they do not fit."""
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise BundleError(f"{path}: cannot read the weights ({err})") from None
    try:
        model.load_state_dict(tensors)
    except RuntimeError as err:
        first = str(err).splitlines()[0]
        raise BundleError(f"{path}: weights do not match the model config ({first})") from None


@dataclass
class Bundle:
    model: Ensemble  # in eval mode, on the CPU
    configs: list[ModelConfig]  # one per member
    state: dict  # the task's fitted state
    manifest: dict  # the whole bundle.json


def save_bundle(directory: str | Path, model: Ensemble, state: dict, metrics: dict,
                extra: dict | None = None) -> None:
    """Write weights, then the manifest (the manifest last: it marks the bundle complete)."""
    directory = Path(directory)
    digest = save_weights(model, directory / WEIGHTS)
    manifest = {
        "format_version": FORMAT_VERSION,
        "grutune_version": __version__,
        "torch_version": torch.__version__.split("+")[0],
        "task": state.get("task"),
        "combine": model.combine,
        "members": [{"model_config": to_dict(m.config)} for m in model.members],
        "state": state,
        "metrics": metrics,
        "weights_file": WEIGHTS,
        "weights_sha256": digest,
        **(extra or {}),
    }
    write_json(directory / MANIFEST, manifest)


def load_bundle(directory: str | Path) -> Bundle:
    """Read and check a bundle; BundleError names the file and what is wrong."""
    directory = Path(directory)
    manifest_path = directory / MANIFEST
    if not manifest_path.is_file():
        raise BundleError(f"{manifest_path}: no bundle here (bundle.json is missing)")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BundleError(f"{manifest_path}: corrupted manifest ({err})") from None
    if not isinstance(manifest, dict) or "format_version" not in manifest:
        raise BundleError(f"{manifest_path}: not a grutune bundle (no format_version)")
    version = manifest["format_version"]
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise BundleError(f"{manifest_path}: bundle format {version!r} is newer than this "
                          f"grutune reads ({FORMAT_VERSION}); upgrade grutune")
    for key in ("members", "combine", "state", "weights_sha256"):
        if key not in manifest:
            raise BundleError(f"{manifest_path}: corrupted manifest (no {key!r})")
    weights = directory / manifest.get("weights_file", WEIGHTS)
    if not weights.is_file():
        raise BundleError(f"{weights}: the weights file is missing")
    if sha256(weights) != manifest["weights_sha256"]:
        raise BundleError(f"{weights}: checksum does not match bundle.json; the weights "
                          "were changed or damaged")
    try:
        configs = [ModelConfig(**m["model_config"]) for m in manifest["members"]]
        model = Ensemble([make_model(c) for c in configs], manifest["combine"])
    except (TypeError, KeyError, ValueError, ConfigError) as err:
        raise BundleError(f"{manifest_path}: invalid model description ({err})") from None
    load_weights(model, weights)
    model.eval()
    return Bundle(model, configs, manifest["state"], manifest)
