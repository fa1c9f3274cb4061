"""The series baseline (1-NN Euclidean, raw or z-normalized as validation chooses) on the
built-in series datasets and the other UCR/UEA archive problems sktime ships offline,
each on the archive's own train/test split. Seconds in all; prints what it measured.

    python bench/baselines.py
"""

from __future__ import annotations

import time

from grutune.config import DataConfig
from grutune.data.datasets import DATASETS, package_dir
from grutune.tasks import get_task

ARCHIVE = ("ACSF1", "ArrowHead", "OSULeaf", "PLAID")  # offline in sktime, not built in


def main() -> None:
    task = get_task("series")
    folder = package_dir("sktime") / "datasets" / "data"
    configs = {name: DataConfig(dataset=name) for name, d in DATASETS.items()
               if d.task == "series"}
    for name in ARCHIVE:
        train, test = (folder / name / f"{name}_{part}.ts" for part in ("TRAIN", "TEST"))
        if train.is_file() and test.is_file():
            configs[name] = DataConfig(path=str(train), test_path=str(test), task="series")
    print(f"{'problem':20s} {'train':>6s} {'test':>5s} {'1-NN acc':>9s}  chosen        seconds")
    for name, cfg in configs.items():
        start = time.perf_counter()
        prepared = task.prepare(cfg)
        base = task.baseline(prepared, 0)
        accuracy = float((base.test_outputs.argmax(1) == prepared.test.y).float().mean())
        print(f"{name:20s} {len(prepared.train) + len(prepared.val):6d} {len(prepared.test):5d} "
              f"{accuracy:9.3f}  znorm {str(base.chosen['znorm']):5s}  "
              f"{time.perf_counter() - start:7.1f}")
    print("command: python bench/baselines.py")


if __name__ == "__main__":
    main()
