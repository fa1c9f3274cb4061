"""Save and load a model bundle: ``model.safetensors`` + ``bundle.json``. No pickle.

The model is an ``Ensemble`` of one or more members (weights ``members.<i>.*``).
``bundle.json`` holds the format version, versions of grutune and torch, each member's
model config, how members are combined, the task's fitted state (vocabulary, labels,
preprocessing), the test metrics, the SHA-256 of the weights file and (format 2) one
``checksum`` over all of it. Loading checks all of it and never executes code:

* format 2: ``checksum`` is the SHA-256 of the manifest without its ``checksum`` field,
  as canonical JSON (sorted keys, no spaces, ASCII), followed by the weights' SHA-256.
  Any edit of ``bundle.json`` (a swapped label, a changed vocabulary or metric) is
  refused, and the weights must match ``weights_sha256``;
* format 1 (grutune before the checksum): only the weights' SHA-256 is checked;
* both: the manifest's structure (types, sizes, labels count = the model's outputs,
  the weights' tensor shapes = the model's) is checked before any tensor is made, and
  ``weights_file`` must be a plain file name inside the bundle directory.

>>> import tempfile, torch
>>> from grutune.config import ModelConfig
>>> from grutune.nn.model import Ensemble, SequenceModel
>>> cfg = ModelConfig(num_outputs=2, vocab_size=10, embed_dim=4, hidden_size=3)
>>> d = tempfile.mkdtemp()
>>> state = {"task": "text", "labels": ["a", "b"], "vocab": list("abcdefghij")}
>>> save_bundle(d, Ensemble([SequenceModel(cfg)], "probability"), state, {})
>>> load_bundle(d).configs[0].hidden_size
3
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from grutune import __version__
from grutune.config import ModelConfig, to_dict
from grutune.exceptions import BundleError, ConfigError
from grutune.files import atomic_path, plain_json, write_json
from grutune.manifest_checks import Checker, is_int, is_number, short
from grutune.nn.model import Ensemble, make_model

FORMAT_VERSION = 2
WEIGHTS = "model.safetensors"
MANIFEST = "bundle.json"
CHECKSUM = "checksum"  # format 2: over the whole manifest (see the module docstring)
MAX_MANIFEST_BYTES = 256 << 20  # a 20,000-token vocabulary takes ~0.5 MB
MAX_LAYERS = 64  # far beyond any search space (1-8); keeps a forged config cheap to check


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def manifest_checksum(manifest: dict) -> str:
    """The format-2 checksum: SHA-256 of the manifest without ``checksum``, as canonical
    JSON, then a newline and the weights' SHA-256 (as the manifest records it)."""
    body = {k: v for k, v in manifest.items() if k != CHECKSUM}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    weights = body.get("weights_sha256")
    digest = hashlib.sha256(text.encode("ascii"))
    digest.update(b"\n" + str(weights).encode("ascii", "backslashreplace"))
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
    manifest = plain_json({
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
    })
    manifest.pop(CHECKSUM, None)
    manifest[CHECKSUM] = manifest_checksum(manifest)
    write_json(directory / MANIFEST, manifest)


def load_bundle(directory: str | Path) -> Bundle:
    """Read and check a bundle; BundleError names the file and what is wrong."""
    directory = Path(directory)
    manifest_path = directory / MANIFEST
    if not manifest_path.is_file():
        raise BundleError(f"{manifest_path}: no bundle here (bundle.json is missing)")
    manifest = _read_manifest(manifest_path)
    version = manifest["format_version"]
    if version == 2:
        checksum = manifest.get(CHECKSUM)
        if not isinstance(checksum, str) or checksum != manifest_checksum(manifest):
            raise BundleError(f"{manifest_path}: checksum does not match; the bundle was "
                              "changed or damaged")
    configs = _check_manifest(manifest, manifest_path)
    weights = _weights_path(directory, manifest, manifest_path)
    if sha256(weights) != manifest["weights_sha256"]:
        raise BundleError(f"{weights}: checksum does not match bundle.json; the weights "
                          "were changed or damaged")
    try:
        with torch.device("meta"):  # shapes only: nothing is allocated yet
            shapes = _shapes(Ensemble([make_model(c) for c in configs], manifest["combine"]))
    except (TypeError, ValueError, RuntimeError, ConfigError) as err:  # sizes overflow
        raise BundleError(f"{manifest_path}: invalid model description "
                          f"({str(err).splitlines()[0][:200]})") from None
    _check_shapes(weights, shapes)
    model = Ensemble([make_model(c) for c in configs], manifest["combine"])
    load_weights(model, weights)
    model.eval()
    return Bundle(model, configs, manifest["state"], manifest)


# --- checks ------------------------------------------------------------------------------

def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        twice = next(k for k in keys if keys.count(k) > 1)
        raise ValueError(f"the key {short(twice)} appears twice")
    return dict(pairs)


def _read_manifest(path: Path) -> dict:
    """The parsed manifest, with a known format_version; BundleError otherwise."""
    try:
        size = path.stat().st_size
        if size > MAX_MANIFEST_BYTES:
            raise BundleError(f"{path}: corrupted manifest ({size:,} bytes; a bundle's "
                              f"is far below {MAX_MANIFEST_BYTES:,})")
        manifest = json.loads(path.read_bytes().decode("utf-8"),
                              object_pairs_hook=_no_duplicates)
    except (ValueError, UnicodeDecodeError, RecursionError) as err:
        reason = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        raise BundleError(f"{path}: corrupted manifest ({reason})") from None
    except OSError as err:
        raise BundleError(f"{path}: cannot read the manifest ({err.strerror})") from None
    if not isinstance(manifest, dict) or "format_version" not in manifest:
        raise BundleError(f"{path}: not a grutune bundle (no format_version)")
    version = manifest["format_version"]
    if is_int(version) and version > FORMAT_VERSION:
        raise BundleError(f"{path}: bundle format {version!r} is newer than this "
                          f"grutune reads ({FORMAT_VERSION}); upgrade grutune")
    if not is_int(version) or version < 1:
        raise BundleError(f"{path}: unknown bundle format {short(version)} (this grutune "
                          f"reads 1 to {FORMAT_VERSION})")
    return manifest


_FIELD_TYPES = {f.name: str(f.type) for f in fields(ModelConfig)}


def _model_config(raw: Any, where: str, check: Checker) -> ModelConfig:
    check.require(isinstance(raw, dict), where, "a mapping", raw)
    if "kind" not in raw:  # written before model kinds had names: a horizon meant forecast
        raw = {**raw, "kind": "forecast" if raw.get("horizon") not in (0, None) else "sequence"}
    unknown = sorted(set(raw) - set(_FIELD_TYPES))
    check.require(not unknown, where, "made of ModelConfig fields", unknown)
    check.require("num_outputs" in raw, where, "given num_outputs")
    for name, value in raw.items():
        kind, at = _FIELD_TYPES[name], f"{where}.{name}"
        if kind == "bool":
            check.require(isinstance(value, bool), at, "true or false", value)
        elif kind == "int":
            check.require(is_int(value) and value >= 0, at, "a whole number >= 0", value)
        elif kind == "float":
            check.require(is_number(value), at, "a number", value)
        elif kind == "str":
            check.require(isinstance(value, str), at, "a string", value)
    check.require(raw.get("num_layers", 1) <= MAX_LAYERS, f"{where}.num_layers",
                  f"at most {MAX_LAYERS}", raw.get("num_layers"))
    try:
        return ModelConfig(**raw)
    except (TypeError, ValueError, ConfigError) as err:
        raise BundleError(f"{check.path}: invalid model description ({where}: "
                          f"{str(err)[:200]})") from None


def _check_manifest(manifest: dict, path: Path) -> list[ModelConfig]:
    """Every member's ModelConfig, after checking the manifest's structure."""
    from grutune.tasks import TASKS

    check = Checker(path)
    for key in ("members", "combine", "state", "weights_sha256"):
        check.require(key in manifest, key, "present")
    state = manifest["state"]
    check.require(isinstance(state, dict), "state", "a mapping", state)
    task = state.get("task")
    check.require(isinstance(task, str) and task in TASKS, "state.task",
                  f"one of {', '.join(TASKS)}", task)
    check.require(manifest.get("task", task) == task, "task", "the state's task",
                  manifest.get("task"))
    check.require(manifest["combine"] == TASKS[task].combine, "combine",
                  f"{TASKS[task].combine!r} for a {task} model", manifest["combine"])
    digest = manifest["weights_sha256"]
    check.require(isinstance(digest, str) and re.fullmatch(r"[0-9a-f]{64}", digest) is not None,
                  "weights_sha256", "64 hexadecimal digits", digest)
    for key in ("metrics",):
        if key in manifest:
            check.require(isinstance(manifest[key], dict), key, "a mapping", manifest[key])
    for key in ("grutune_version", "torch_version"):
        if key in manifest:
            check.require(isinstance(manifest[key], str), key, "a string", manifest[key])
    members = manifest["members"]
    check.require(isinstance(members, list) and len(members) >= 1, "members",
                  "a non-empty list", members)
    configs = []
    for i, member in enumerate(members):
        check.require(isinstance(member, dict) and "model_config" in member,
                      f"members[{i}]", "a mapping with model_config", member)
        configs.append(_model_config(member["model_config"], f"members[{i}].model_config",
                                     check))
    first = configs[0]
    for i, c in enumerate(configs[1:], 1):
        for name in ("num_outputs", "vocab_size", "input_dim", "horizon", "targets"):
            check.require(getattr(c, name) == getattr(first, name),
                          f"members[{i}].model_config.{name}", "the same for every member",
                          getattr(c, name))
    TASKS[task].check_state(state, first, check)
    return configs


def _weights_path(directory: Path, manifest: dict, manifest_path: Path) -> Path:
    """The weights file: a plain file name inside the bundle directory, a regular file
    (a symbolic link only if it stays in the directory)."""
    name = manifest.get("weights_file", WEIGHTS)
    ok = (isinstance(name, str) and name not in ("", ".", "..") and "/" not in name
          and "\\" not in name and "\0" not in name and Path(name).name == name
          and not Path(name).is_absolute())
    if not ok:
        raise BundleError(f"{manifest_path}: weights_file must be a file name inside the "
                          f"bundle directory; got {short(name)}")
    weights = directory / name
    if weights.is_symlink():
        try:
            target = weights.resolve(strict=True)
            inside = target.parent == directory.resolve(strict=True)
        except (OSError, RuntimeError):
            inside = False
        if not inside:
            raise BundleError(f"{weights}: a symbolic link out of the bundle directory; "
                              "the weights must be in the bundle")
    if not weights.is_file():
        raise BundleError(f"{weights}: the weights file is missing")
    return weights


def _shapes(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _check_shapes(weights: Path, expected: dict[str, tuple[int, ...]]) -> None:
    """The file's tensors have the model's names and shapes (read from the header alone)."""
    try:
        with safe_open(str(weights), framework="pt") as f:
            found = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as err:
        raise BundleError(f"{weights}: cannot read the weights ({str(err)[:200]})") from None
    if found == expected:
        return
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    wrong = sorted(k for k in set(found) & set(expected) if found[k] != expected[k])
    if wrong:
        k = wrong[0]
        detail = f"{k} is {list(found[k])}, the config makes {list(expected[k])}"
    elif missing:
        detail = f"missing {short(missing)}"
    else:
        detail = f"unexpected {short(extra)}"
    raise BundleError(f"{weights}: weights do not match the model config ({detail})")
