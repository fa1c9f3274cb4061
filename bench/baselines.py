"""The series baselines on the built-in series datasets and the other UCR/UEA archive
problems sktime ships offline, each on the archive's own train/test split, beside the
figures the archive and InceptionTime's authors publish. Seconds to a minute in all;
prints what it measured.

Both baselines look for neighbours in train + validation (the archive's whole training
set), as in a default run (``--refit``): 1-NN Euclidean (raw or z-normalized as
validation chooses) and the series task's baseline, 1-NN with the distance (Euclidean or
DTW in a window of 2-20% of the length) chosen on validation.

    python bench/baselines.py
"""

from __future__ import annotations

import time

from grutune.config import DataConfig
from grutune.data.datasets import DATASETS, package_dir
from grutune.tasks import get_task
from grutune.tasks.baselines import nearest_neighbour

ARCHIVE = ("ACSF1", "ArrowHead", "OSULeaf", "PLAID")  # offline in sktime, not built in
# published test accuracies: (1-NN Euclidean, 1-NN DTW with the learned window) from the
# UCR archive's DataSummary.csv (2018) and InceptionTime from hfawaz/InceptionTime
# (results-InceptionTime-128.csv; results-mts.csv for the multivariate problems);
# None where the archive publishes none
PUBLISHED = {
    "gunpoint": (0.9133, 0.9133, 1.0), "italy-power-demand": (0.9553, 0.9553, 0.9650),
    "basic-motions": (None, None, 1.0), "japanese-vowels": (None, None, 0.9919),
    "ACSF1": (0.54, 0.62, 0.92), "ArrowHead": (0.80, 0.80, 0.8457),
    "OSULeaf": (0.5207, 0.6116, 0.9421), "PLAID": (0.5233, 0.8343, 0.9441),
}


def _accuracy(base, prepared) -> float:  # noqa: ANN001 - a Baseline and a Prepared
    return float((base.test_outputs.argmax(1) == prepared.test.y).float().mean())


def _shown(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def main() -> None:
    task = get_task("series")
    folder = package_dir("sktime") / "datasets" / "data"
    configs = {name: DataConfig(dataset=name) for name, d in DATASETS.items()
               if d.task == "series"}
    for name in ARCHIVE:
        train, test = (folder / name / f"{name}_{part}.ts" for part in ("TRAIN", "TEST"))
        if train.is_file() and test.is_file():
            configs[name] = DataConfig(path=str(train), test_path=str(test), task="series")
    print(f"{'problem':20s} {'train':>5s} {'test':>5s} {'1-NN ED':>8s} {'chosen 1-NN':>11s}"
          f"  {'distance chosen':24s} {'seconds':>7s}   published: ED, DTW, InceptionTime")
    for name, cfg in configs.items():
        prepared = task.prepare(cfg)
        parts = {k: getattr(prepared, k) for k in ("train", "val", "test")}
        euclid = nearest_neighbour(parts, len(prepared.state["labels"]),
                                   task.scoring(prepared.state), refit=True)
        start = time.perf_counter()
        base = task.baseline(prepared, 0, refit=True)
        seconds = time.perf_counter() - start
        chosen = ("DTW " + f"{base.chosen['window']:.0%}" if base.chosen["window"] else "ED") + (
            ", z-normalized" if base.chosen["znorm"] else ", raw")
        published = ", ".join(_shown(v) for v in PUBLISHED.get(name, (None,) * 3))
        print(f"{name:20s} {len(prepared.train) + len(prepared.val):5d} "
              f"{len(prepared.test):5d} {_accuracy(euclid, prepared):8.3f} "
              f"{_accuracy(base, prepared):11.3f}  {chosen:24s} {seconds:7.1f}   {published}")
    print("command: python bench/baselines.py")


if __name__ == "__main__":
    main()
