"""The task contract, run for every registered task (in the manner of Optuna's sampler
test case and scikit-learn's estimator checks).

Every task in the registry has a ``Case`` here: a small real sample and what "chance"
means for it. On each, the same checks run:

- prepare -> tensors -> model -> fit one epoch -> score -> bundle -> load -> predict,
  and ``predict`` of a file equals the in-memory prediction, row for row, in the file's
  order; bad input is refused with a ``GrutuneError`` naming the problem;
- a task holds no state between calls; the same seed gives the same split;
- train, validation and test are disjoint by content (repeated series included);
- it learns: a short tune beats chance on test by a clear margin;
- test never chooses: scrambling the test targets changes no choice (the trials, the
  best trial, the seed-repeat winner, the ensemble) while the test metrics change.

The test-only ``regression`` task (``tests/regression_task.py``) runs beside the four
real tasks; it plugs into ``tune``, ``predict``, ``report`` and ``compare`` by
registering itself, with no change to grutune.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
import torch
import yaml
from rich.console import Console

from grutune.bundle import load_bundle, save_bundle
from grutune.cli import app
from grutune.config import DataConfig, StudyConfig
from grutune.data.cache import SequenceData
from grutune.data.datasets import get_dataset, package_dir
from grutune.data.ts_format import read_ts
from grutune.exceptions import GrutuneError
from grutune.nn.model import Ensemble, make_model
from grutune.nn.trainer import fit, predict, seed_everything
from grutune.search_space import Space, load_space, train_config
from grutune.tasks import TASKS, Prepared, Task, get_task
from grutune.tasks.series_classification import series_id
from grutune.tuning.evaluate import final_model, top_trials
from grutune.workflows.predict import predict_file
from grutune.workflows.tune import tune

from . import regression_task  # noqa: F401 - registers the test-only "regression" task

pytestmark = pytest.mark.realdata

SMALL = {"embed_dim": 16, "hidden_size": 32, "num_layers": 1, "bidirectional": False}


# --- the cases: one per registered task ----------------------------------------------

class Case:
    """A task's sample and what chance means for it; the checks below are the same for all.

    ``min_gain``: the share of the way from chance to a perfect score the short tune must
    cover on test (accuracy: (acc - chance) / (1 - chance); an error: 1 - err / chance).
    """

    name: str
    space: dict = SMALL
    max_epochs: int = 8
    chronological = False  # split by time (the seed does not choose it), else by rows
    min_gain = 0.4

    def data(self, root: Path) -> DataConfig:
        raise NotImplementedError

    def other(self, root: Path) -> DataConfig:
        """Other data of the same task (statelessness: preparing it in between changes
        nothing)."""
        raise NotImplementedError

    def score(self, metrics: dict) -> tuple[float, str]:
        """(the test score compared with chance, its direction)."""
        return metrics["accuracy"], "maximize"

    def chance(self, prepared: Prepared) -> float:
        """The test score of predicting the training part's most frequent class."""
        majority = int(torch.bincount(prepared.train.y).argmax())
        return float((prepared.test.y == majority).double().mean())

    def predict_files(self, prepared: Prepared, root: Path, tmp: Path
                      ) -> list[tuple[Path, np.ndarray, list[str]]]:
        """Files of raw rows to predict: (path, the rows of the in-memory prediction
        table its output must equal, in the file's order, the columns to compare)."""
        raise NotImplementedError

    def with_repeats(self, root: Path, tmp: Path) -> tuple[DataConfig, int] | None:
        """Data in which some series (rows) repeat others: (config, how many repeat)."""
        return None

    def bad_data(self, root: Path, tmp: Path) -> tuple[DataConfig, str]:
        """Data ``prepare`` refuses, and a phrase of the refusal."""
        raise NotImplementedError

    def bad_rows(self, tmp: Path) -> tuple[Path, str]:
        """Rows ``predict`` refuses, and a phrase of the refusal."""
        raise NotImplementedError


def _write(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False, float_format="%.9g")  # float32 values round-trip
    return path


def _permutation(n: int) -> np.ndarray:
    return np.random.default_rng(7).permutation(n)


class TextCase(Case):
    name = "text"
    space = {**SMALL, "embed_dim": 64}
    min_gain = 0.5

    def data(self, root: Path) -> DataConfig:
        return DataConfig(dataset="bbc-news", sample=300)

    def other(self, root: Path) -> DataConfig:
        return DataConfig(dataset="bbc-news", sample=200, seed=3)

    def predict_files(self, prepared, root, tmp):
        order = _permutation(len(prepared.test))
        column = prepared.state["text_column"]
        path = _write(prepared.test_frame.iloc[order][[column]], tmp / "rows.csv")
        labels = [f"prob_{label}" for label in prepared.state["labels"]]
        return [(path, order, ["prediction", *labels])]

    def _articles(self) -> pd.DataFrame:
        pool, _ = get_dataset("bbc-news").loader()
        return pool.iloc[::20].rename(columns={"topic": "label"}).reset_index(drop=True)

    def with_repeats(self, root, tmp):
        rows = self._articles()
        repeated = pd.concat([rows, rows.iloc[:15]], ignore_index=True)
        path = _write(repeated.iloc[_permutation(len(repeated))], tmp / "repeats.csv")
        return DataConfig(path=str(path), task="text"), 15

    def bad_data(self, root, tmp):
        rows = self._articles().head(40).copy()
        rows.loc[5, "label"] = ""
        return DataConfig(path=str(_write(rows, tmp / "bad.csv")), task="text"), \
            "missing values"

    def bad_rows(self, tmp):
        return _write(pd.DataFrame({"body": ["a b c"]}), tmp / "bad-rows.csv"), "no column"


class SeriesCase(Case):
    name = "series"
    max_epochs = 20
    dataset = "italy-power-demand"

    def data(self, root: Path) -> DataConfig:
        return DataConfig(dataset=self.dataset)

    def other(self, root: Path) -> DataConfig:
        return DataConfig(dataset="gunpoint")

    def _raw(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        return get_dataset(self.dataset).loader()

    @staticmethod
    def _wide(frame: pd.DataFrame, label: bool = True) -> pd.DataFrame:
        values = np.stack([s[:, 0] for s in frame["series"]])
        wide = pd.DataFrame(values, columns=[f"t{i}" for i in range(values.shape[1])])
        return wide.assign(label=frame["label"].to_numpy()) if label else wide

    def predict_files(self, prepared, root, tmp):
        _, test = self._raw()
        ids = [series_id(np.asarray(s, np.float32), label)
               for s, label in zip(test["series"], test["label"], strict=True)]
        raw = test.set_axis(ids).loc[prepared.test_frame["id"]].reset_index(drop=True)
        order = _permutation(len(raw))
        path = _write(self._wide(raw.iloc[order], label=False), tmp / "rows.csv")
        labels = [f"prob_{label}" for label in prepared.state["labels"]]
        return [(path, order, ["prediction", *labels])]

    def with_repeats(self, root, tmp):
        pool, test = self._raw()
        test = test.head(200)
        repeated = pd.concat([pool, pool.iloc[:10], test.iloc[:5]], ignore_index=True)
        pool_path = _write(self._wide(repeated.iloc[_permutation(len(repeated))]),
                           tmp / "pool.csv")
        test_path = _write(self._wide(test), tmp / "test.csv")
        return DataConfig(path=str(pool_path), test_path=str(test_path), task="series"), 15

    def bad_data(self, root, tmp):
        pool, _ = self._raw()
        wide = self._wide(pool).astype(object)
        wide.loc[3, "t5"] = "inf"
        return DataConfig(path=str(_write(wide, tmp / "bad.csv")), task="series"), "infinite"

    def bad_rows(self, tmp):
        return (_write(pd.DataFrame({"t0": [1.0, 2.0], "t1": ["abc", 3.0]}), tmp / "bad.csv"),
                "not a number")


class ForecastCase(Case):
    name = "forecast"
    space = {**SMALL, "lookback": [48, 96]}
    max_epochs = 6
    chronological = True
    min_gain = 0.15

    def data(self, root: Path) -> DataConfig:
        return DataConfig(dataset="sunspots", horizon=24)

    def other(self, root: Path) -> DataConfig:
        return DataConfig(dataset="gas")

    def score(self, metrics: dict) -> tuple[float, str]:
        return metrics["mae"], "minimize"

    def chance(self, prepared: Prepared) -> float:
        """The naive forecast's test MAE: each window's last value, held."""
        state, test = prepared.state, prepared.test
        center, scale = state["center"][0], state["scale"][0]
        last = test.x[:, -1:, :1].double() * scale + center  # [W, 1, 1]
        actual = test.y.double() * scale + center  # [W, H, 1]
        return float((actual - last).abs().mean())

    def predict_files(self, prepared, root, tmp):
        """The history before the first and before the last test window."""
        series, _ = get_dataset("sunspots").loader()
        out = []
        horizon = prepared.state["horizon"]
        for window in (0, len(prepared.test) - 1):
            start = prepared.test_frame["times"].iloc[window][0]
            path = _write(series[series["time"] < start], tmp / f"history-{window}.csv")
            out.append((path, np.arange(window * horizon, (window + 1) * horizon),
                        ["step", "value"]))
        return out

    def bad_data(self, root, tmp):
        frame = pd.DataFrame({"time": pd.date_range("2000-01-01", periods=300, freq="MS"),
                              "value": np.sin(np.arange(300.0))})
        frame.loc[10, "time"] = frame.loc[9, "time"]
        return (DataConfig(path=str(_write(frame, tmp / "bad.csv")), task="forecast",
                           time_column="time", target_column="value"), "twice")

    def bad_rows(self, tmp):
        series, _ = get_dataset("sunspots").loader()
        return _write(series.head(60), tmp / "short.csv"), "time steps of history"


class RegressionCase(Case):
    name = "regression"

    def data(self, root: Path) -> DataConfig:
        return DataConfig(path=str(root / "tecator.csv"), task="regression",
                          target_column="fat")

    def other(self, root: Path) -> DataConfig:
        return replace(self.data(root), seed=5, sample=100)

    def score(self, metrics: dict) -> tuple[float, str]:
        return metrics["rmse"], "minimize"

    def chance(self, prepared: Prepared) -> float:
        """The test RMSE of predicting the training part's mean target."""
        mean, std = prepared.state["target_mean"], prepared.state["target_std"]
        train = prepared.train.y.double() * std + mean
        test = prepared.test.y.double() * std + mean
        return float(((test - train.mean()) ** 2).mean().sqrt())

    def predict_files(self, prepared, root, tmp):
        table = pd.read_csv(root / "tecator.csv")
        order = _permutation(len(prepared.test))
        rows = table.iloc[prepared.test_frame["row"].to_numpy()[order] - 1]
        return [(_write(rows, tmp / "rows.csv"), order, ["prediction"])]

    def with_repeats(self, root, tmp):
        table = pd.read_csv(root / "tecator.csv")
        repeated = pd.concat([table, table.iloc[:12]], ignore_index=True)
        path = _write(repeated.iloc[_permutation(len(repeated))], tmp / "repeats.csv")
        return replace(self.data(root), path=str(path)), 12

    def bad_data(self, root, tmp):
        table = pd.read_csv(root / "tecator.csv").head(40)
        table.loc[7, "fat"] = np.nan
        return replace(self.data(root), path=str(_write(table, tmp / "bad.csv"))), \
            "needs a target"

    def bad_rows(self, tmp):
        return (_write(pd.DataFrame({"t000": ["abc"], "t001": [1.0]}), tmp / "bad.csv"),
                "not a number")


class RecommendCase(Case):
    name = "recommend"
    space = {"embed_dim": 16, "hidden_size": 32, "num_layers": 1, "history": [20, 50]}
    max_epochs = 4
    min_gain = 0.01  # a share of the way to a perfect Recall@20, from random ranking

    def data(self, root: Path) -> DataConfig:
        return DataConfig(dataset="movielens", sample=40)  # 40 users drawn by the seed

    def other(self, root: Path) -> DataConfig:
        return DataConfig(dataset="movielens", sample=30, seed=3)

    def score(self, metrics: dict) -> tuple[float, str]:
        return metrics["recall_20"], "maximize"

    def chance(self, prepared: Prepared) -> float:
        """Recall@20 of a random ranking of the catalog."""
        return 20 / len(prepared.state["items"])

    def predict_files(self, prepared, root, tmp):
        """The histories before three test events (of three users) in one file."""
        from grutune.tasks.recommend_data import Columns, read_events

        frame, _ = get_dataset("movielens").loader()
        events = read_events(frame, Columns("userId", "movieId", "timestamp"), "movielens")
        test = prepared.test
        rows = {}
        for r in range(len(test)):  # the first test event of three users
            user = prepared.test_frame["userId"].iloc[r]
            rows.setdefault(user, r)
            if len(rows) == 3:
                break
        parts = []
        for user, r in sorted(rows.items()):  # predict lists histories in key order
            mine = events[events["userId"] == user]
            parts.append(frame.iloc[mine["row"].to_numpy()[: int(test.lengths[r])] - 1])
        path = _write(pd.concat(parts)[["userId", "movieId", "timestamp"]], tmp / "events.csv")
        top = 10
        order = np.concatenate([np.arange(r * top, (r + 1) * top) for _, r in
                                sorted(rows.items())])
        return [(path, order, ["rank", "item", "score"])]

    def bad_data(self, root, tmp):
        frame, _ = get_dataset("movielens").loader()
        rows = frame.head(200)[["userId", "movieId", "timestamp"]].astype(object)
        rows.loc[5, "movieId"] = ""
        return (DataConfig(path=str(_write(rows, tmp / "bad.csv")), task="recommend",
                           user_column="userId", item_column="movieId",
                           time_column="timestamp"), "is empty in data row 6")

    def bad_rows(self, tmp):
        return (_write(pd.DataFrame({"userId": [1], "timestamp": [3]}), tmp / "bad.csv"),
                "no column 'movieId'")


CASES = {case.name: case for case in (TextCase(), SeriesCase(), ForecastCase(),
                                      RegressionCase(), RecommendCase())}


# --- fixtures ----------------------------------------------------------------------------

@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: the runs are small, and on a busy 2-core machine the GRU kernel's
    threads wait on each other far longer than they compute."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """The real data of the test-only task: Tecator (sktime's bundled TSER files): 215
    near-infrared absorbance spectra of meat (100 wavelengths) -> fat content (%)."""
    folder = package_dir("sktime") / "datasets" / "data" / "Tecator"
    rows = []
    for part in ("TRAIN", "TEST"):
        series, targets = read_ts(folder / f"Tecator_{part}.ts")
        rows += [[float(t), *s[:, 0].tolist()] for s, t in zip(series, targets, strict=True)]
    root = tmp_path_factory.mktemp("data")
    columns = ["fat"] + [f"t{i:03d}" for i in range(100)]
    _write(pd.DataFrame(rows, columns=columns), root / "tecator.csv")
    return root


@pytest.fixture(scope="module", params=list(CASES))
def case(request) -> Case:
    return CASES[request.param]


def _space_file(case: Case, folder: Path) -> Path:
    path = folder / f"space-{case.name}.yaml"
    path.write_text(yaml.safe_dump(case.space))
    return path


def space_of(task: Task, cfg: DataConfig, space_path: Path | None = None) -> Space:
    """The study's space, as ``tune`` makes it: the task's default for the data, then
    the space file."""
    return load_space(task.default_space(task.space_context(cfg)),
                      str(space_path) if space_path else None)


def prepare(task: Task, cfg: DataConfig, space_path: Path | None = None,
            saved: dict | None = None) -> Prepared:
    """Prepare as ``tune`` does: the data for the study's space."""
    return task.prepare(cfg, saved, space_of(task, cfg, space_path))


@pytest.fixture(scope="module")
def spaces(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("spaces")


@pytest.fixture(scope="module")
def prepared(case, root, spaces) -> tuple[Task, Prepared]:
    task = get_task(case.name)
    return task, prepare(task, case.data(root), _space_file(case, spaces))


def scrambled(cls: type[Task]) -> type[Task]:
    """``cls`` whose prepared test targets are permuted: a test-only change that no
    choice may notice."""

    class Scrambled(cls):
        def prepare(self, cfg, saved_split=None, space=None):
            out = super().prepare(cfg, saved_split, space)
            order = torch.randperm(len(out.test), generator=torch.Generator().manual_seed(0))
            out.test = SequenceData(out.test.x, out.test.lengths, out.test.y[order])
            return out

    return Scrambled


QUIET = Console(stderr=True, quiet=True)


@pytest.fixture(scope="module")
def runs(case, root, spaces, tmp_path_factory) -> dict[str, Path]:
    """The same seeded short tune twice: on the data, and with the test targets scrambled."""
    folder = tmp_path_factory.mktemp(f"runs-{case.name}")
    study = StudyConfig(study_name="contract", trials=3, max_epochs=case.max_epochs,
                        workers=1, folds=1, repeats=2, repeat_top=2, ensemble=3,
                        space_path=str(_space_file(case, spaces)))
    tune(case.data(root), replace(study, run_dir=str(folder / "plain")), console=QUIET)
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(TASKS, case.name, scrambled(TASKS[case.name]))
        tune(case.data(root), replace(study, run_dir=str(folder / "scrambled")),
             console=QUIET)
    return {"plain": folder / "plain", "scrambled": folder / "scrambled"}


# --- helpers ----------------------------------------------------------------------------

def _defaults_model(task: Task, state: dict, space: Space, seed: int = 0
                    ) -> tuple[torch.nn.Module, dict]:
    """The model of the space's defaults (the warm-start trial), seeded; and its params."""
    params = {name: space[name].default for name in space.names}
    seed_everything(seed)
    return make_model(task.model_config(params, state)), params


def _same_prepared(a: Prepared, b: Prepared) -> None:
    assert a.state == b.state
    assert a.split == b.split
    assert a.summary == b.summary
    for part in ("train", "val", "test"):
        x, y = getattr(a, part), getattr(b, part)
        assert torch.equal(x.x, y.x) and torch.equal(x.lengths, y.lengths)
        assert torch.equal(x.y, y.y), part
    pd.testing.assert_frame_equal(a.test_frame, b.test_frame)


def _contents(data: SequenceData) -> set[str]:
    """Each row's input values (its valid steps) as a key."""
    return {hashlib.sha1(data.x[i, : int(data.lengths[i])].numpy().tobytes()).hexdigest()
            for i in range(len(data))}


def _disjoint(prepared: Prepared, chronological: bool) -> None:
    """No input in two parts; split ids in one part each (time ranges in order)."""
    keys = {part: _contents(getattr(prepared, part)) for part in ("train", "val", "test")}
    assert not keys["train"] & keys["val"] and not keys["train"] & keys["test"]
    assert not keys["val"] & keys["test"]
    split = prepared.split
    if chronological:  # [first, last] time of each part
        bounds = [pd.Timestamp(t) for part in ("train", "val", "test") for t in split[part]]
        assert bounds == sorted(bounds) and len(set(bounds)) == len(bounds)
    else:
        ids = [i for part in ("train", "val", "test") for i in split[part]]
        assert len(ids) == len(set(ids))


def _trials(run_dir: Path) -> pd.DataFrame:
    frame = pd.read_csv(run_dir / "trials.csv")
    return frame.drop(columns=["seconds"])


def _metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def _ensemble(task: Task, run_dir: Path, root: Path, case: Case, spaces: Path) -> list[int]:
    """The trials ``final_model`` keeps of the top three (checkpoints or retrained)."""
    study = optuna.load_study(study_name="contract", storage=f"sqlite:///{run_dir / 'study.db'}")
    saved = json.loads((run_dir / "split.json").read_text())["split"]
    prepared = prepare(task, case.data(root), _space_file(case, spaces), saved)
    _, members = final_model(top_trials(study, 3), task, prepared, run_dir, case.max_epochs)
    return [t.number for t in members]


# --- the contract --------------------------------------------------------------------

def test_every_registered_task_has_a_contract_case():
    assert set(TASKS) == set(CASES)


def test_prepare_gives_consistent_tensors(case, prepared):
    task, data = prepared
    assert data.state["task"] == case.name
    assert set(data.split) >= {"train", "val", "test"}
    for part in ("train", "val", "test"):
        d = getattr(data, part)
        assert len(d) == len(d.lengths) == d.y.shape[0] == data.summary["rows"][part] > 0
        assert int(d.lengths.min()) >= 1 and int(d.lengths.max()) == d.x.shape[1]
        assert torch.isfinite(d.x.double()).all() and torch.isfinite(d.y.double()).all()


def test_fit_one_epoch_score_bundle_load_predict(case, prepared, root, spaces, tmp_path):
    task, data = prepared
    space = space_of(task, case.data(root), _space_file(case, spaces))
    model, params = _defaults_model(task, data.state, space)
    result = fit(model, data.train, data.val, train_config(params, 1, 0, task.epoch_rows),
                 task.scoring(data.state))
    assert len(result.history) == 1 and np.isfinite(result.best_metric)
    outputs = predict(model, data.test)
    assert np.isfinite(task.val_metric(outputs, data.test.y, data.state))
    metrics = task.evaluate(outputs, data.test, data.state)
    scalars = task.scalars(outputs, data.test, data.state)
    assert set(task.verdict_metrics) <= set(scalars)  # what compare judges by
    assert all(np.isfinite(v) for v in scalars.values() if v is not None)
    ensemble = Ensemble([model], task.combine).eval()
    save_bundle(tmp_path / "model", ensemble, data.state, metrics)
    bundle = load_bundle(tmp_path / "model")
    assert bundle.state == json.loads(json.dumps(data.state))
    assert torch.equal(predict(bundle.model, data.test), predict(ensemble, data.test))
    expected = task.decode(predict(ensemble, data.test), data.state)
    for path, rows, columns in case.predict_files(data, root, tmp_path):
        table = predict_file(tmp_path / "model", path)
        want = expected.iloc[rows].reset_index(drop=True)[columns]
        pd.testing.assert_frame_equal(table[columns], want, check_dtype=False, atol=1e-5)
    bad, message = case.bad_rows(tmp_path)
    with pytest.raises(GrutuneError, match=message):
        predict_file(tmp_path / "model", bad)


def test_a_task_holds_no_state(case, prepared, root, spaces):
    task, data = prepared
    space = _space_file(case, spaces)
    model, _ = _defaults_model(task, data.state, space_of(task, case.data(root), space), seed=1)
    val_out, test_out = predict(model, data.val), predict(model, data.test)
    before = task.scoring(data.state).val_metric(val_out, data.val.y)
    busy = get_task(case.name)  # an instance that last prepared other data
    attributes = dict(vars(busy))
    prepare(busy, case.other(root))
    assert vars(busy) == attributes  # prepare leaves nothing on the instance
    fresh = get_task(case.name)
    for other in (busy, fresh):
        assert other.val_metric(val_out, data.val.y, data.state) == before
        assert other.evaluate(test_out, data.test, data.state) == task.evaluate(
            test_out, data.test, data.state)
        pd.testing.assert_frame_equal(other.decode(test_out, data.state),
                                      task.decode(test_out, data.state))
    _same_prepared(prepare(busy, case.data(root), space), data)


def test_the_same_seed_gives_the_same_split(case, prepared, root, spaces):
    _, data = prepared
    space = _space_file(case, spaces)
    again = prepare(get_task(case.name), case.data(root), space)
    _same_prepared(again, data)
    reseeded = prepare(get_task(case.name), replace(case.data(root), seed=1), space)
    assert (reseeded.split == data.split) == case.chronological


def test_parts_are_disjoint_by_content(case, prepared, root, tmp_path):
    _disjoint(prepared[1], case.chronological)
    repeats = case.with_repeats(root, tmp_path)
    if repeats is None:  # a forecast: a repeated time is refused (bad input)
        return
    cfg, repeated = repeats
    data = prepare(get_task(case.name), cfg)
    _disjoint(data, case.chronological)
    written = len(pd.read_csv(cfg.path)) + (len(pd.read_csv(cfg.test_path)) if cfg.test_path
                                            else 0)
    assert sum(data.summary["rows"].values()) <= written - repeated


def test_bad_data_is_refused_in_one_line(case, root, tmp_path):
    cfg, message = case.bad_data(root, tmp_path)
    with pytest.raises(GrutuneError, match=message) as err:
        prepare(get_task(case.name), cfg)
    assert "\n" not in str(err.value)


def test_a_short_tune_beats_chance_on_test(case, prepared, runs):
    _, data = prepared
    run = runs["plain"]
    assert json.loads((run / "split.json").read_text())["split"] == data.split
    score, direction = case.score(_metrics(run))
    chance = case.chance(data)
    gain = (score - chance) / (1 - chance) if direction == "maximize" else 1 - score / chance
    assert gain >= case.min_gain, (score, chance)


def test_test_never_chooses(case, runs, root, spaces):
    plain, mixed = runs["plain"], runs["scrambled"]
    pd.testing.assert_frame_equal(_trials(plain), _trials(mixed))
    a, b = _metrics(plain), _metrics(mixed)
    assert case.score(a)[0] != case.score(b)[0]  # the scramble reached the test metrics
    assert a["best_trial"] == b["best_trial"]
    assert a["model"]["members"] == b["model"]["members"]
    ra, rb = a["seed_repeats"], b["seed_repeats"]
    assert ra["chosen_trial"] == rb["chosen_trial"]
    assert [c["validation"] for c in ra["configurations"]] == [
        c["validation"] for c in rb["configurations"]]
    assert [c["test"] for c in ra["configurations"]] != [c["test"] for c in rb["configurations"]]
    task = get_task(case.name)
    assert _ensemble(task, plain, root, case, spaces) == _ensemble(
        scrambled(type(task))(), mixed, root, case, spaces)
    if "baseline" in a:  # the baseline's settings are chosen on validation too
        assert a["baseline"]["chosen"] == b["baseline"]["chosen"]
        assert a["baseline"]["validation"] == b["baseline"]["validation"]
        # the scramble reached its test metrics
        assert a["baseline"]["intervals"] != b["baseline"]["intervals"]


def test_the_model_is_shown_beside_its_baseline(case, prepared, runs):
    """A task with a baseline of its own (``Task.baseline``) reports it on the same test
    rows with its intervals and the paired difference; the report shows both. A task
    without one (the test-only regression task) writes no block."""
    _, data = prepared
    metrics = _metrics(runs["plain"])
    if type(get_task(case.name)).baseline is Task.baseline:
        assert "baseline" not in metrics
        return
    base = metrics["baseline"]
    diff = base["difference"]
    metric = diff["metric"]
    assert diff["model_minus_baseline"] == pytest.approx(metrics[metric] - base[metric])
    low, high = diff["interval"]
    assert low <= diff["model_minus_baseline"] <= high and low < high
    assert metric in base["intervals"] and metric in base["shown"]
    score, direction = case.score(base)  # the baseline beats chance too (a broken one
    chance = case.chance(data)  # would not): majority class, or the naive forecast
    gain = (score - chance) / (1 - chance) if direction == "maximize" else 1 - score / chance
    assert gain > 0, (score, chance)
    assert "Beside the baseline" in (runs["plain"] / "report.html").read_text()


# --- the test-only task through the command line ----------------------------------------

def test_a_test_only_task_plugs_into_tune_predict_report_compare(root, spaces, runner,
                                                                 tmp_path):
    case = CASES["regression"]
    data = ["--task", "regression", "--target", "fat", "--trials", "2", "--max-epochs", "4",
            "--workers", "1", "--folds", "1", "--space", str(_space_file(case, spaces))]
    run = tmp_path / "run"
    result = runner.invoke(app, ["tune", str(root / "tecator.csv"), *data, "--repeats", "1",
                                 "--run-dir", str(run)])
    assert result.exit_code == 0, result.output
    metrics = _metrics(run)
    assert metrics["task"] == "regression" and {"rmse", "mae"} <= set(metrics["intervals"])
    # predict: a file of test rows, in reverse order
    tested = pd.read_csv(run / "test_predictions.csv")
    table = pd.read_csv(root / "tecator.csv").iloc[tested["row"].to_numpy()[::-1] - 1]
    result = runner.invoke(app, ["predict", str(run / "model"), str(_write(table,
                                                                        tmp_path / "new.csv"))])
    assert result.exit_code == 0, result.output
    predicted = pd.read_csv(io.StringIO(result.stdout))
    assert list(predicted.columns) == ["prediction"]
    np.testing.assert_allclose(predicted["prediction"], tested["prediction"][::-1], atol=1e-4)
    # report: rebuilt, with the base's generic metrics table
    (run / "report.html").unlink()
    result = runner.invoke(app, ["report", str(run)])
    assert result.exit_code == 0, result.output
    page = (run / "report.html").read_text()
    for part in ("<h2>Summary", "<h2>Search", "baselines.train_mean.rmse", "regression"):
        assert part in page, part
    # compare: GRU vs LSTM on the same split, judged by the task's verdict metrics
    result = runner.invoke(app, ["compare", str(root / "tecator.csv"), *data, "--seeds", "2",
                                 "--run-dir", str(tmp_path / "compare")])
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "compare" / "compare.json").read_text())
    assert record["task"] == "regression" and record["verdict"]["metric"] == "rmse"
    assert {(r["cell"], tuple(sorted(r["test"]))) for r in record["runs"]} == {
        ("gru", ("mae", "rmse")), ("lstm", ("mae", "rmse"))}
