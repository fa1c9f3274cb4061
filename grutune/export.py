"""Export a bundle as ONNX or TorchScript, checked against the bundle on real test inputs.

The exported graph takes what the model takes — ``x`` (token ids [B, T], or values
[B, T, F]) and ``lengths`` [B] — with batch size and length free, and returns the
bundle's outputs (class log-probabilities of the ensemble, or forecasts). A forecaster's
file works in the data's units: ``x`` holds the raw values of the targets and covariates
(the state's column order) and the forecasts come out unscaled, since the training's
per-column scaling is part of the graph (``DataUnits``); a file that read and wrote
scaled values would give wrong numbers to anyone who did not know to scale. The
recurrent layers export as the standard ``nn.GRU`` / ``nn.LSTM`` operators (our CPU
kernel is a training-speed detail with the same maths).

After writing, the file is run on the run directory's test split (prepared again from
``split.json``, in length-sorted batches of every length that occurs) and compared with
the bundle: the largest absolute difference is returned and must stay below ``TOLERANCE``
(a forecaster's in scaled units, i.e. relative to each target's scale).
The file is written beside its destination under a temporary name and renamed into place
only once that check passes, so a failed export leaves no file and keeps a previous one.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from grutune.bundle import WEIGHTS, load_bundle
from grutune.config import DataConfig
from grutune.data.cache import SequenceData
from grutune.exceptions import ConfigError, ExportError
from grutune.files import atomic_path
from grutune.nn.recurrence import plain_gru

FORMATS = ("onnx", "torchscript")
TOLERANCE = 1e-4  # largest absolute difference from the bundle's outputs that we accept
# the extensions an exported file may have; the first is the default file's
SUFFIXES = {"onnx": (".onnx",), "torchscript": (".pt", ".pth", ".torchscript")}


@dataclass
class Exported:
    path: Path
    max_abs_diff: float
    rows: int
    lengths: tuple[int, int]  # shortest and longest test input


def test_split(run_dir: Path) -> SequenceData:
    """The run's test inputs, prepared again exactly as the study prepared them."""
    from grutune.search_space import load_space
    from grutune.tasks import get_task

    try:
        config = json.loads((run_dir / "config.json").read_text())
        saved = json.loads((run_dir / "split.json").read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(f"{run_dir}: cannot read the run's config.json / split.json "
                          f"({err}); export checks the model on the run's test split") from None
    data_cfg = DataConfig(**config["data"])
    task = get_task(data_cfg.task, config.get("metric"))
    space = load_space(task.default_space(task.space_context(data_cfg)),
                       config["study"].get("space_path"))
    return task.prepare(data_cfg, saved["split"], space).test


def export_bundle(bundle_dir: str | Path, fmt: str, out: str | Path | None = None) -> Exported:
    """Write ``bundle_dir/model.onnx`` (or ``model.pt``) and check it; see the module doc."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format: must be one of {', '.join(FORMATS)}; got {fmt!r}")
    bundle_dir = Path(bundle_dir)
    path = Path(out) if out else bundle_dir / f"model{SUFFIXES[fmt][0]}"
    bundle = load_bundle(bundle_dir)
    check_out(path, fmt, bundle_dir, bundle.manifest.get("weights_file", WEIGHTS))
    model = bundle.model.eval()
    graph = _graph(model, bundle.state)
    test = test_split(bundle_dir.parent)
    batches = [graph.inputs(batch) for _, batch in test.eval_batches(64)]
    example = batches[0][0][:4], batches[0][1][:4]
    with torch.no_grad():  # the bundle as `grutune predict` runs it
        expected = [model(b.x, b.lengths).numpy() for _, _, b in batches]
    with (atomic_path(path) as tmp, plain_gru(), torch.no_grad(),
          warnings.catch_warnings()):
        warnings.simplefilter("ignore")
        if fmt == "onnx":
            _onnx(graph, *example, tmp)
            run = _onnx_runner(tmp)
        else:
            traced = torch.jit.trace(graph, example, check_trace=False)
            traced.save(str(tmp))
            loaded = torch.jit.load(str(tmp))
            def run(x: Tensor, n: Tensor) -> np.ndarray:
                return loaded(x, n).numpy()
        worst = max(_difference(graph.model_units(run(x, n)), e)
                    for (x, n, _), e in zip(batches, expected, strict=True))
        if not worst <= TOLERANCE:  # a NaN difference is a difference too; tmp is removed
            raise ExportError(f"{path}: the exported model differs from the bundle by "
                              f"{worst:.2e} on the test split (tolerance {TOLERANCE:.0e}); "
                              "not written")
    lengths = test.lengths
    return Exported(path, worst, len(test), (int(lengths.min()), int(lengths.max())))


class Exportable(nn.Module):
    """What the exported file computes: the bundle's model as it is (a classifier, a
    recommender). ``inputs`` gives a prepared batch as the file takes it, and
    ``model_units`` a file's outputs in the model's units, for the check."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        return self.model(x, lengths)

    def inputs(self, batch: SequenceData) -> tuple[Tensor, Tensor, SequenceData]:
        return batch.x, batch.lengths, batch

    def model_units(self, outputs: np.ndarray) -> np.ndarray:
        return outputs


class DataUnits(Exportable):
    """A forecaster in the data's units: raw values [B, T, F] in, forecasts [B, H, T] in
    the targets' units out, the training's scaling (``center``, ``scale`` per column;
    the targets first) around the model."""

    def __init__(self, model: nn.Module, center: list[float], scale: list[float],
                 targets: int) -> None:
        super().__init__(model)
        self.register_buffer("center", torch.tensor(center, dtype=torch.float32))  # [F]
        self.register_buffer("scale", torch.tensor(scale, dtype=torch.float32))  # [F]
        self.targets = targets

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        out = self.model((x - self.center) / self.scale, lengths)  # [B, H, T] scaled
        t = self.targets
        return out * self.scale[:t] + self.center[:t]

    def inputs(self, batch: SequenceData) -> tuple[Tensor, Tensor, SequenceData]:
        return batch.x * self.scale + self.center, batch.lengths, batch

    def model_units(self, outputs: np.ndarray) -> np.ndarray:
        t = self.targets
        return (outputs - self.center[:t].numpy()) / self.scale[:t].numpy()


def _graph(model: nn.Module, state: dict) -> Exportable:
    """The module to export for a bundle's model and state (``DataUnits`` for a
    forecaster: its state has the scaling)."""
    if state.get("task") == "forecast":
        return DataUnits(model, state["center"], state["scale"], len(state["targets"])).eval()
    return Exportable(model).eval()


def check_out(path: Path, fmt: str, bundle_dir: Path, weights: str) -> None:
    """The export's destination: a file of the format's extension (so no config.json,
    split.json or data file of the run is written over: only a previous export), and
    inside the bundle directory only its default export, never one of its own files."""
    suffixes = SUFFIXES[fmt]
    if path.suffix.lower() not in suffixes:
        raise ConfigError(f"--out {path}: --format {fmt} writes a {' or '.join(suffixes)} "
                          f"file; got the extension {path.suffix or '(none)'!r}")
    target, bundle = path.resolve(), bundle_dir.resolve()
    default = bundle / f"model{suffixes[0]}"
    if bundle in target.parents and (target != default or default.name == weights):
        raise ConfigError(f"--out {path}: inside the bundle directory {bundle_dir}, whose "
                          f"files the export reads; only its default {default.name} goes "
                          "there: write the export elsewhere")


def _difference(got: np.ndarray, want: np.ndarray) -> float:
    """The largest absolute difference; equal values (an excluded item's -inf in both
    included) differ by 0, and a NaN on one side only is an infinite difference.

    >>> _difference(np.array([float("-inf"), 1.0]), np.array([float("-inf"), 1.5]))
    0.5
    """
    with np.errstate(invalid="ignore"):  # -inf - -inf is NaN, then masked as equal
        gap = np.where(got == want, 0.0, np.abs(got - want))
    return float(np.nan_to_num(gap, nan=np.inf).max())


def _onnx(model: nn.Module, x: Tensor, lengths: Tensor, path: Path) -> None:
    axes = {"x": {0: "batch", 1: "steps"}, "lengths": {0: "batch"}, "output": {0: "batch"}}
    try:
        torch.onnx.export(model, (x, lengths), str(path), dynamo=False,
                          input_names=["x", "lengths"], output_names=["output"],
                          dynamic_axes=axes, opset_version=17)
    except ImportError as err:
        raise ConfigError(f"--format onnx needs the onnx package ({err}); "
                          "pip install 'grutune[export]'") from None


def _onnx_runner(path: Path):
    try:
        import onnxruntime as ort
    except ImportError as err:
        raise ConfigError(f"checking the ONNX file needs onnxruntime ({err}); "
                          "pip install 'grutune[export]'") from None
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def run(x: Tensor, n: Tensor) -> np.ndarray:
        return session.run(None, {"x": x.numpy(), "lengths": n.numpy()})[0]

    return run
