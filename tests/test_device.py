"""--device and --precision: resolved in one place (nn/device.py), refused in one line when
absent, workers pinned one per GPU; on the CPU everything runs through the same code.

This machine has no GPU: the CUDA branches are checked by replacing the GPU count (NVML's,
which is all the parent process ever asks), never by touching CUDA.
"""

from __future__ import annotations

import logging
import os

import pytest
import torch

from grutune import config
from grutune.config import DataConfig, ModelConfig, StudyConfig, TrainConfig
from grutune.data.cache import SequenceData
from grutune.exceptions import ConfigError
from grutune.nn import device
from grutune.nn.device import Placement, current, gpu_workers, pin_worker, placed, resolve_device
from grutune.nn.model import SequenceModel
from grutune.nn.population import fit_population, population_key
from grutune.nn.trainer import fit, predict
from grutune.workflows.tune import resolve

from .conftest import make_texts


@pytest.fixture
def gpus(monkeypatch: pytest.MonkeyPatch):
    """Pretend ``n`` CUDA GPUs are visible (CUDA itself untouched)."""
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)

    def set_count(n: int) -> None:
        monkeypatch.setattr(device, "gpu_count", lambda: n)

    set_count(0)
    monkeypatch.setattr(device, "mps_available", lambda: False)
    return set_count


def test_auto_is_the_cpu_without_a_gpu_and_cuda_with_one(gpus):
    assert resolve_device("auto") == "cpu"
    gpus(2)
    assert resolve_device("auto") == "cuda"
    assert resolve_device("cuda:1", "bf16") == "cuda:1"


@pytest.mark.parametrize("spec, precision, message", [
    ("cuda", "fp32", "--device cuda: no CUDA GPU is visible"),
    ("cuda:0", "fp32", "--device cuda:0: no CUDA GPU is visible"),
    ("mps", "fp32", "--device mps: Apple's Metal backend is not available"),
    ("cpu", "bf16", "--precision bf16: mixed precision needs a CUDA device"),
    ("auto", "fp16", "--precision fp16: mixed precision needs a CUDA device"),
    ("gpu", "fp32", "--device: must be auto, cpu, cuda, cuda:N or mps; got 'gpu'"),
    ("cpu", "fp8", "--precision: must be one of fp32, bf16, fp16; got 'fp8'"),
])
def test_absent_devices_and_impossible_precisions_are_refused(gpus, spec, precision, message):
    with pytest.raises(ConfigError, match="^" + message.replace("(", r"\(")):
        resolve_device(spec, precision)


def test_a_gpu_index_past_the_visible_ones_is_refused(gpus):
    gpus(2)
    with pytest.raises(ConfigError, match=r"--device cuda:2: 2 CUDA GPU\(s\) visible, "
                                          r"cuda:0 to cuda:1"):
        resolve_device("cuda:2")


def test_study_config_checks_the_spelling():
    assert StudyConfig().device == "auto" and StudyConfig().precision == "fp32"
    for bad in ("cuda:", "CUDA", "cuda:x", "tpu"):
        with pytest.raises(ConfigError, match="--device: must be auto, cpu, cuda"):
            StudyConfig(device=bad)
    with pytest.raises(ConfigError, match="--precision: must be one of fp32, bf16, fp16"):
        StudyConfig(precision="half")
    assert config.PRECISIONS == device.PRECISIONS


def test_resolve_fills_the_device_and_one_worker_per_gpu(gpus, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    _, study = resolve(DataConfig(dataset="bbc-news"))
    assert study.device == "cpu"
    assert study.public_dict()["device"] == "cpu"  # config.json records it
    gpus(3)
    _, study = resolve(DataConfig(dataset="bbc-news"), StudyConfig(precision="bf16"))
    assert (study.device, study.precision, study.workers) == ("cuda", "bf16", 3)
    _, study = resolve(DataConfig(dataset="bbc-news"), StudyConfig(device="cuda:2"))
    assert (study.device, study.workers) == ("cuda:2", 1)
    _, study = resolve(DataConfig(dataset="bbc-news"), StudyConfig(device="cuda", workers=6))
    assert study.workers == 6  # two small trials per GPU


def test_workers_already_holding_cuda_run_in_one_process(gpus, monkeypatch, caplog):
    gpus(2)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    with caplog.at_level(logging.WARNING, logger="grutune"):
        assert gpu_workers("cuda", None) == 1
    assert "CUDA is already initialized in this process" in caplog.text
    assert gpu_workers("cpu", None) is None and gpu_workers("cpu", 3) == 3


@pytest.mark.parametrize("visible, spec, index, pinned", [
    (None, "cuda", 0, "0"), (None, "cuda", 3, "1"), (None, "cuda:1", 0, "1"),
    ("4,6", "cuda", 0, "4"), ("4,6", "cuda", 1, "6"), ("4,6", "cuda:1", 0, "6"),
    ("GPU-aa,GPU-bb", "cuda", 5, "GPU-bb"),
])
def test_each_worker_sees_only_its_gpu(gpus, monkeypatch, visible, spec, index, pinned):
    gpus(2)
    if visible is not None:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    with placed(spec, "bf16"):
        pin_worker(index)
        assert os.environ["CUDA_VISIBLE_DEVICES"] == pinned
        assert current() == Placement("cuda:0", "bf16")  # its only GPU
    assert current() == Placement()


def test_a_cpu_worker_is_left_alone(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    pin_worker(1)
    assert "CUDA_VISIBLE_DEVICES" not in os.environ and current() == Placement()


def test_autocast_only_on_its_own_device_and_in_reduced_precision():
    cpu = torch.device("cpu")
    assert Placement("cuda", "bf16").device == torch.device("cuda", 0)
    assert not isinstance(Placement("cpu").autocast(cpu), torch.autocast)
    assert not isinstance(Placement("cuda", "bf16").autocast(cpu), torch.autocast)
    assert not Placement("cpu").grad_scaler().is_enabled()


def test_split_tensors_are_copied_to_a_device_once(monkeypatch):
    data = SequenceData(torch.zeros(4, 3), torch.tensor([3, 1, 2, 3]), torch.zeros(4))
    assert data.on(torch.device("cpu")) is data
    copies = []  # a stand-in for the copy to a GPU
    monkeypatch.setattr(SequenceData, "to", lambda self, where: copies.append(where) or
                        SequenceData(self.x.clone(), self.lengths.clone(), self.y.clone()))
    gpu = torch.device("cuda", 0)
    first = data.on(gpu)
    assert first is not data and data.on(gpu) is first and copies == [gpu]


class _Accuracy:
    direction = "maximize"

    def loss(self, outputs, y):
        return torch.nn.functional.cross_entropy(outputs, y)

    def val_metric(self, outputs, y):
        return float((outputs.argmax(-1) == y).float().mean())


def _data(n: int = 24) -> SequenceData:
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(1, 9, (n,), generator=g)
    x = torch.randint(1, 20, (n, 8), generator=g) * (torch.arange(8) < lengths[:, None])
    return SequenceData(x, lengths, torch.randint(0, 3, (n,), generator=g))


def test_the_cpu_placement_trains_through_the_same_code():
    cfg = ModelConfig(num_outputs=3, vocab_size=20, embed_dim=4, hidden_size=5)
    train = _data()
    torch.manual_seed(0)
    model = SequenceModel(cfg)
    with placed("cpu"):
        result = fit(model, train, train, TrainConfig(batch_size=8, max_epochs=2), _Accuracy())
    assert len(result.history) == 2 and all(p.device.type == "cpu" for p in model.parameters())
    assert predict(model, train).device.type == "cpu"
    models = [SequenceModel(cfg) for _ in range(2)]
    with placed("cpu"):
        results = fit_population(models, [TrainConfig(batch_size=8, max_epochs=1, lr=lr)
                                          for lr in (1e-3, 1e-2)], train, train, _Accuracy())
    assert [len(r.history) for r in results] == [1, 1]


def test_fp16_trains_trials_one_at_a_time():
    cfg = ModelConfig(num_outputs=3, vocab_size=20)
    assert population_key(cfg, TrainConfig()) is not None
    with placed("cuda", "fp16"):  # no CUDA is touched: the key only reads the precision
        assert population_key(cfg, TrainConfig()) is None


def test_cli_refuses_an_absent_gpu_in_one_line_and_writes_nothing(runner, tmp_path):
    from grutune.cli import app

    csv = tmp_path / "texts.csv"
    make_texts(10).to_csv(csv, index=False)
    for args, message in [(["--device", "cuda"], "error: --device cuda: no CUDA GPU is visible"),
                          (["--precision", "bf16", "--device", "cpu"],
                           "error: --precision bf16: mixed precision needs a CUDA device"),
                          (["--device", "tpu"], "error: --device: must be auto, cpu, cuda")]:
        result = runner.invoke(app, ["tune", str(csv), "--run-dir", str(tmp_path / "run"),
                                     *args])
        assert result.exit_code == 2, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(message), result.output
        assert not (tmp_path / "run").exists()
