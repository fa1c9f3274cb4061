"""grutune compare: size matching, the paired test, the verdict, and real comparisons."""

from __future__ import annotations

import html
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from grutune.cli import app
from grutune.config import DataConfig
from grutune.nn.model import count_parameters
from grutune.search_space import load_space
from grutune.tasks import get_task
from grutune.tuning.fitting import build_model
from grutune.workflows.compare import (
    ALPHA,
    SIZE_TOLERANCE,
    fixed_shape,
    lstm_space,
    paired,
    sized_hidden,
    sized_parameters,
    verdict,
    verdict_table,
)

from .browser import ARTIFACTS, chromium, open_page

# --- size matching -------------------------------------------------------------------


@given(gates=st.integers(3, 5), hidden=st.integers(1, 300), inputs=st.integers(1, 400))
def test_sized_hidden_is_the_closest_size(gates, hidden, inputs):
    def count(h: int) -> int:  # one recurrent layer with `gates` gates
        return gates * (h * inputs + h * h + 2 * h)

    target = 3 * (hidden * inputs + hidden * hidden + 2 * hidden)
    found = sized_hidden(count, target)
    best = min(abs(count(h) - target) for h in range(1, 4 * hidden + 2))
    assert abs(count(found) - target) == best


def _text_task(texts_csv: Path):
    task = get_task("text")
    cfg = DataConfig(path=str(texts_csv), task="text")
    space = load_space(task.default_space(task.space_context(cfg)), None)
    return task, task.prepare(cfg, None, space), space


@pytest.mark.parametrize("shape", [
    {}, {"num_layers": 2}, {"bidirectional": False, "hidden_size": 128},
    {"embed_dim": 256, "hidden_size": 32, "num_layers": 3}, {"hidden_size": 8}])
def test_lstm_is_resized_to_the_grus_parameters(texts_csv, shape):
    task, prepared, space = _text_task(texts_csv)
    gru_space, record = fixed_shape(space.apply(shape))
    lstm = lstm_space(gru_space, task, prepared.state, record)
    models = {}
    for cell, s in (("gru", gru_space), ("lstm", lstm)):
        params = {n: s[n].default for n in s.names}
        assert params["cell"] == cell
        assert all(s[n].kind == "fixed" for n in ("embed_dim", "hidden_size", "num_layers",
                                                  "bidirectional"))
        models[cell] = build_model(task, params, prepared.state, 0)
    gru, lstm_count = (sized_parameters(models[c]) for c in ("gru", "lstm"))
    assert abs(lstm_count - gru) / gru <= SIZE_TOLERANCE
    assert record["hidden_size"]["lstm"] < record["hidden_size"]["gru"]  # 4 gates vs 3
    # the sized part leaves out exactly the shared token embedding
    embedding = models["gru"].embed.weight.numel()
    assert count_parameters(models["gru"]) - gru == embedding


# --- the paired test and the verdict -------------------------------------------------

def test_paired_is_the_paired_t_test_by_hand():
    """The p-value is the two-sided paired t-test's: the per-seed differences' mean over
    its standard error, on n - 1 degrees of freedom. Pairing matters: a cell that is
    better by the same margin on every seed wins, however much the seeds differ."""
    gru, lstm = [0.81, 0.83, 0.80, 0.84, 0.82], [0.79, 0.80, 0.80, 0.81, 0.78]
    # differences 0.02, 0.03, 0.0, 0.03, 0.04: mean 0.024, sample variance 0.00023
    t = 0.024 / (0.00023 / 5) ** 0.5  # 3.539 on 4 degrees of freedom
    assert paired(gru, lstm) == pytest.approx(2 * stats.t.sf(t, df=4), rel=1e-6)  # 0.024
    seeds = [0.70, 0.90, 0.75, 0.85, 0.80]
    ahead = [s + 0.010 + 0.001 * (i % 2) for i, s in enumerate(seeds)]
    assert paired(ahead, seeds) < 1e-4  # an unpaired test: p > 0.8
    assert paired([0.8, 0.8], [0.8, 0.8]) == 1.0  # no difference, no evidence


def _runs(gru: list[float], lstm: list[float]) -> list[dict]:
    return [{"cell": c, "seed": i, "test": {"mase": v}, "train_seconds": 1.0 + (c == "lstm")}
            for c, values in (("gru", gru), ("lstm", lstm)) for i, v in enumerate(values)]


SIZES = {"parameters": {"gru": {"total": 100, "sized": 90}, "lstm": {"total": 101, "sized": 91}}}


@pytest.mark.parametrize("gru, lstm, winner", [
    ([0.80, 0.82, 0.81, 0.79], [0.90, 0.93, 0.91, 0.90], "gru"),   # lower MASE wins
    ([0.90, 0.93, 0.91, 0.90], [0.80, 0.82, 0.81, 0.79], "lstm"),
    ([0.80, 0.90, 0.85, 0.95], [0.86, 0.84, 0.91, 0.88], None),    # within the noise
])
def test_verdict_names_a_winner_only_below_alpha(gru, lstm, winner):
    rows = verdict_table(_runs(gru, lstm), [0, 1, 2, 3], {"mase": "minimize"}, SIZES)
    assert [(r["metric"], r["cell"]) for r in rows] == [("mase", "gru"), ("mase", "lstm")]
    assert rows[0]["p_value"] == pytest.approx(stats.ttest_rel(gru, lstm).pvalue)
    assert rows[0]["train_seconds"] == 1.0 and rows[1]["train_seconds"] == 2.0
    assert rows[1]["parameters"] == 101 and rows[1]["sized_parameters"] == 91
    result = verdict(rows, "mase", "minimize", 4)
    assert result["winner"] == winner
    assert (result["p_value"] < ALPHA) == (winner is not None)
    assert ("better" in result["text"]) == (winner is not None)


# --- real comparisons ----------------------------------------------------------------

RUNS = {"forecast": ["--dataset", "sunspots", "--trials", "3", "--max-epochs", "3"],
        "text": ["--dataset", "bbc-news", "--sample", "300", "--folds", "1", "--trials", "2",
                 "--max-epochs", "2"]}


@pytest.fixture(scope="module")
def compared(tmp_path_factory) -> dict[str, Path]:
    from typer.testing import CliRunner

    root = tmp_path_factory.mktemp("compare")
    out = {}
    for kind, args in RUNS.items():
        as_json = ["--json"] if kind == "text" else []  # both ways of showing the result
        result = CliRunner().invoke(app, ["compare", *args, "--seeds", "3", "--workers", "1",
                                          "--run-dir", str(root / kind), *as_json])
        assert result.exit_code == 0, result.output
        assert "verdict:" in result.output
        if as_json:  # standard output holds the JSON summary and nothing else
            summary = json.loads(result.stdout)
            record = json.loads((root / kind / "compare.json").read_text())
            assert summary["verdict"] == record["verdict"]
            assert summary["table"] == record["table"] and summary["run_dir"] == str(root / kind)
        else:  # standard output holds the verdict table and the run directory
            assert "verdict:" in result.stdout and "run directory:" in result.stdout
            assert "study (" not in result.stdout  # the plan went to standard error
        out[kind] = root / kind
    return out


@pytest.mark.realdata
@pytest.mark.parametrize("kind", list(RUNS))
def test_compare_judges_both_cells_on_one_split_one_size_same_seeds(compared, kind):
    import optuna

    run_dir = compared[kind]
    record = json.loads((run_dir / "compare.json").read_text())
    # one split
    gru_split, lstm_split = (json.loads((run_dir / c / "split.json").read_text())["split"]
                             for c in ("gru", "lstm"))
    assert gru_split == lstm_split
    # one size: the recorded counts are the winners' real models' counts, within 5%
    size = record["size"]
    for cell in ("gru", "lstm"):
        study = optuna.load_study(study_name=record["search"][cell]["study"],
                                  storage=f"sqlite:///{run_dir / cell / 'study.db'}")
        assert {t.params.get("hidden_size") for t in study.trials} == {None}  # fixed
        assert {t.user_attrs["config"]["cell"] for t in study.trials} == {cell}
        assert {t.user_attrs["config"]["hidden_size"] for t in study.trials} == {
            size["hidden_size"][cell]}
        assert size["parameters"][cell]["total"] == next(
            t.user_attrs["n_params"] for t in study.trials
            if t.number == record["search"][cell]["best_trial"])
    assert size["within_tolerance"] and size["difference"] <= SIZE_TOLERANCE
    # same seeds, both cells, each scored on test
    assert len(record["seeds"]) == 3
    assert sorted((r["seed"], r["cell"]) for r in record["runs"]) == sorted(
        (s, c) for s in record["seeds"] for c in ("gru", "lstm"))
    # the p-values are the paired t-test of the recorded per-seed values
    metric = record["verdict"]["metric"]
    assert metric == ("mase" if kind == "forecast" else "accuracy")
    values = {c: [next(r["test"][metric] for r in record["runs"]
                       if r["seed"] == s and r["cell"] == c) for s in record["seeds"]]
              for c in ("gru", "lstm")}
    row = next(r for r in record["table"] if r["metric"] == metric and r["cell"] == "gru")
    assert row["values"] == values["gru"]
    assert row["p_value"] == pytest.approx(paired(values["gru"], values["lstm"]))
    assert record["verdict"]["p_value"] == row["p_value"]
    for r in record["table"]:
        assert r["interval"][0] <= r["mean"] <= r["interval"][1]
        assert r["train_seconds"] > 0
    page = (run_dir / "report.html").read_text()
    assert record["verdict"]["text"] in html.unescape(page)
    assert (run_dir / "gru" / "report.html").exists()


@pytest.mark.realdata
def test_rerunning_compare_resumes_without_training_again(compared, runner):
    run_dir = compared["forecast"]
    before = json.loads((run_dir / "compare.json").read_text())
    result = runner.invoke(app, ["compare", *RUNS["forecast"], "--seeds", "3", "--workers",
                                 "1", "--run-dir", str(run_dir)])
    assert result.exit_code == 0, result.output
    after = json.loads((run_dir / "compare.json").read_text())
    assert after["runs"] == before["runs"]  # the seed runs were read back, not retrained
    assert after["search"] == before["search"]  # no new trials


@pytest.mark.realdata
@pytest.mark.skipif(chromium() is None, reason="chromium not installed (.ci/run installs it)")
def test_compare_report_renders_in_a_browser_offline(compared):
    path = compared["text"] / "report.html"
    report = open_page(path, ARTIFACTS / "report-compare.png")
    assert report.errors == []
    assert [u for u in report.requests if not (u.startswith("data:") or u == path.as_uri())] == []
    assert len(report.drawn) == 3 and all(report.drawn)


@pytest.mark.parametrize("args, message", [
    (["--seeds", "1"], "--seeds: a paired test needs at least 2 seeds"),
    (["--space", "SPACE"], "compare fixes the model's size"),
])
def test_compare_refuses_bad_options_in_one_line(runner, tmp_path, texts_csv, args, message):
    space = tmp_path / "space.yaml"
    space.write_text("hidden_size: [32, 64]\n")
    args = [str(space) if a == "SPACE" else a for a in args]
    result = runner.invoke(app, ["compare", str(texts_csv), *args, "--run-dir",
                                 str(tmp_path / "run")])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "run").exists()
