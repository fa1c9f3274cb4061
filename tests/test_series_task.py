"""Series classification: readers (.ts, wide, long), preparation, padding, CLI, real data."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from grutune.cli import app
from grutune.config import DataConfig, ModelConfig
from grutune.data.ts_format import read_ts
from grutune.exceptions import DataError
from grutune.nn.model import SequenceModel
from grutune.tasks import get_task
from grutune.tasks.series_classification import interpolate, long_to_series, wide_to_series


def make_series(n_per_class: int = 12, length: int = 30, seed: int = 0) -> pd.DataFrame:
    """Wide table: class 'sine' vs 'ramp' with noise; varying lengths (trailing blanks)."""
    rng = np.random.default_rng(seed)
    rows = []
    for label in ("sine", "ramp"):
        for _ in range(n_per_class):
            n = int(rng.integers(length // 2, length + 1))
            t = np.linspace(0, 1, n)
            base = np.sin(6 * t) if label == "sine" else t
            values = list(base + 0.1 * rng.standard_normal(n)) + [np.nan] * (length - n)
            rows.append({"label": label, **{f"t{i}": v for i, v in enumerate(values)}})
    return pd.DataFrame(rows).sample(frac=1.0, random_state=seed).reset_index(drop=True)


def _ts_text(series: list[np.ndarray], labels: list[str]) -> str:
    lines = ["@problemName toy", "@univariate false", "@classLabel true a b", "@data"]
    for s, label in zip(series, labels, strict=True):
        dims = [",".join(f"{v:.5f}" for v in s[:, c]) for c in range(s.shape[1])]
        lines.append(":".join(dims) + f":{label}")
    return "\n".join(lines) + "\n"


def test_read_ts_multivariate_variable_length(tmp_path):
    series = [np.arange(6, dtype=np.float32).reshape(3, 2), np.ones((5, 2), np.float32)]
    path = tmp_path / "toy.ts"
    path.write_text(_ts_text(series, ["a", "b"]))
    got, labels = read_ts(path)
    assert labels == ["a", "b"] and [s.shape for s in got] == [(3, 2), (5, 2)]
    np.testing.assert_allclose(got[0], series[0])


@pytest.mark.parametrize("body,message", [
    ("1,2:3,4:a\n1,2:b\n", "inconsistent dimensions"),
    ("1,2:3:a\n", "different lengths"),
    ("1,x,3:a\n", "'x' is not a number"),
    ("", "no series after @data"),
])
def test_read_ts_errors_name_the_line(tmp_path, body, message):
    path = tmp_path / "bad.ts"
    path.write_text("@problemName bad\n@data\n" + body)
    with pytest.raises(DataError, match=message):
        read_ts(path)


def test_wide_and_long_forms_give_the_same_series():
    wide = pd.DataFrame({"y": ["a", "b"], "s0": [1.0, 5.0], "s1": [2.0, 6.0],
                         "s2": [3.0, None]})
    long = pd.DataFrame({"id": [1, 1, 1, 2, 2], "t": [2, 0, 1, 0, 1], "y": list("aaabb"),
                         "v": [3.0, 1.0, 2.0, 5.0, 6.0]})
    a = wide_to_series(wide, "y", "w.csv")
    b = long_to_series(long, "y", "id", "t", "l.csv")
    for s1, s2 in zip(a["series"], b["series"], strict=True):
        np.testing.assert_array_equal(s1, s2)
    assert list(a["label"]) == list(b["label"])


def test_long_form_rejects_a_series_with_two_labels():
    long = pd.DataFrame({"id": [1, 1], "y": ["a", "b"], "v": [1.0, 2.0]})
    with pytest.raises(DataError, match="several labels"):
        long_to_series(long, "y", "id", None, "l.csv")


def test_interpolation_fills_inside_and_counts():
    filled, count = interpolate(np.array([[1.0], [np.nan], [3.0], [np.nan]], np.float32))
    assert count == 2 and filled.ravel().tolist() == [1.0, 2.0, 3.0, 3.0]


def test_prepare_scales_with_training_statistics_only(tmp_path):
    path = tmp_path / "s.csv"
    make_series().to_csv(path, index=False)
    prep = get_task("series").prepare(DataConfig(path=str(path), task="series"))
    train = prep.train.x[torch.arange(prep.train.x.shape[1]) < prep.train.lengths[:, None]]
    assert abs(float(train.mean())) < 1e-4 and abs(float(train.std()) - 1) < 1e-2
    assert sum(len(v) for v in prep.split.values()) == 24
    assert prep.train.lengths.min() >= 15  # trailing blanks shortened the series


def test_series_norm_makes_the_model_scale_invariant_and_padding_safe():
    torch.manual_seed(0)
    cfg = ModelConfig(num_outputs=3, input_dim=2, embed_dim=8, hidden_size=5,
                      bidirectional=True, series_norm=True, pooling="max")
    model = SequenceModel(cfg).eval()
    x = torch.randn(4, 9, 2)
    lengths = torch.tensor([9, 3, 6, 1])
    padded = torch.cat([x, 100 * torch.randn(4, 5, 2)], dim=1)
    padded[0, 9:] = 0  # keep row 0's length honest: padding is garbage for others too
    with torch.no_grad():
        out = model(x, lengths)
        assert torch.allclose(out, model(padded, lengths), atol=1e-5)
        assert torch.allclose(out, model(3 * x + 7, lengths), atol=1e-4)
        for i, n in enumerate(lengths.tolist()):  # each row alone, unpadded
            assert torch.allclose(out[i], model(x[i:i + 1, :n], lengths[i:i + 1])[0],
                                  atol=1e-5)


@pytest.mark.parametrize("stem", [None, "fcn"])
def test_cli_tune_and_predict_on_a_ts_pair(runner, tmp_path, stem):
    """A .ts pair end to end with the default space, and with the GRU-FCN (a space file's
    ``stem: fcn``): the bundle predicts the file as the run predicted its test rows."""
    rng = np.random.default_rng(1)

    def part(n):
        series, labels = [], []
        for i in range(n):
            label = "a" if i % 2 else "b"
            t = np.linspace(0, 1, int(rng.integers(10, 20)))
            base = np.sin(8 * t) if label == "a" else np.cos(2 * t)
            series.append(np.stack([base, -base], 1) + 0.05 * rng.standard_normal((len(t), 2)))
            labels.append(label)
        return series, labels

    train, test = tmp_path / "toy_TRAIN.ts", tmp_path / "toy_TEST.ts"
    train.write_text(_ts_text(*part(30)))
    test.write_text(_ts_text(*part(12)))
    run_dir = tmp_path / "run"
    space = []
    if stem:
        (tmp_path / "space.yaml").write_text(f"stem: {stem}\n")
        space = ["--space", str(tmp_path / "space.yaml")]
    result = runner.invoke(app, ["tune", str(train), "--test", str(test), "--task", "series",
                                 "--trials", "2", "--max-epochs", "3", "--folds", "1",
                                 "--repeats", "1", "--workers", "1", "--run-dir",
                                 str(run_dir), *space])
    assert result.exit_code == 0, result.output
    if stem:
        bundle = json.loads((run_dir / "model" / "bundle.json").read_text())
        assert "gru_fcn" in json.dumps(bundle), bundle
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["n"] == 12 and "roc_auc" in metrics
    out = tmp_path / "pred.csv"
    result = runner.invoke(app, ["predict", str(run_dir / "model"), str(test), "--out", str(out)])
    assert result.exit_code == 0, result.output
    preds = pd.read_csv(out)
    saved = pd.read_csv(run_dir / "test_predictions.csv")
    assert len(preds) == 12
    # predict on the file reproduces the saved test predictions, row for row
    np.testing.assert_allclose(np.sort(preds["prob_a"].to_numpy()),
                               np.sort(saved["prob_a"].to_numpy()), rtol=0, atol=1e-6)


def test_ts_with_inconsistent_dimensions_exits_2(runner, tmp_path):
    path = tmp_path / "bad.ts"
    path.write_text("@data\n" + "1,2:3,4:a\n" * 10 + "1,2:b\n")
    run_dir = tmp_path / "run"
    result = runner.invoke(app, ["tune", str(path), "--task", "series", "--run-dir",
                                 str(run_dir)])
    assert result.exit_code == 2
    assert "line 12 has 1 dimensions" in result.output and "Traceback" not in result.output
    assert not run_dir.exists()


@pytest.mark.realdata
@pytest.mark.parametrize("name,channels", [("gunpoint", 1), ("japanese-vowels", 12)])
def test_builtin_series_datasets_prepare(name, channels):
    prep = get_task("series").prepare(DataConfig(dataset=name, task="series"))
    assert prep.state["channels"] == channels
    sizes = {"gunpoint": (50, 150), "japanese-vowels": (270, 370)}[name]
    assert len(prep.train) + len(prep.val) == sizes[0] and len(prep.test) == sizes[1]


def test_sample_draws_that_many_series_in_each_class_s_share():
    """--sample was ignored for series (gunpoint tuned on all 200 series)."""
    prepared = get_task("series").prepare(DataConfig(dataset="gunpoint", sample=40))
    parts = [prepared.train, prepared.val, prepared.test]
    assert sum(len(p) for p in parts) == 40
    assert len(prepared.test) == 30  # the built-in test part keeps its share, 150 of 200
    for part in parts:
        assert len(set(part.y.tolist())) == 2  # both classes in every part
