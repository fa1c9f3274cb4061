"""Regenerate the golden bundles: ``python tests/golden/make_golden.py [TASK...]``.

The version-1 folders were made by grutune at the last commit before format 2::

    git archive HEAD | tar -x -C /tmp/head   # (that commit)
    PYTHONPATH=/tmp/head python tests/golden/make_golden.py

Each ``v<format>-<task>`` folder holds a tiny bundle (``model/``) trained by the grutune
of the day, an input file (``input.csv``) and the predictions that grutune gave for it
(``expected.csv``). ``test_golden_bundles.py`` checks that today's grutune still loads
every folder's bundle and predicts exactly the same. Once committed, the folders of an
older format must not be regenerated: they stand for bundles users already have.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
TINY = {
    "text": "embed_dim: 4\nhidden_size: 4\nnum_layers: 1\nbidirectional: false\n",
    "series": "embed_dim: 4\nhidden_size: 4\nnum_layers: 1\nbidirectional: true\n",
    "forecast": "embed_dim: 4\nhidden_size: 4\nnum_layers: 1\nlookback: 14\n",
}
COMMON = ["--trials", "1", "--max-epochs", "1", "--repeats", "1", "--ensemble", "1",
          "--workers", "1", "--seed", "0"]


def text_data() -> tuple[pd.DataFrame, pd.DataFrame]:
    words = {"sport": ["match", "goal", "team", "coach"],
             "tech": ["phone", "software", "chip", "data"],
             "food": ["pizza", "bread", "cheese", "soup"]}
    filler = ["the", "a", "today", "new", "big", "week"]
    rng = random.Random(0)
    rows = []
    for label, topic in words.items():
        for _ in range(20):
            doc = [rng.choice(topic) if rng.random() < 0.4 else rng.choice(filler)
                   for _ in range(rng.randint(4, 12))]
            rows.append({"text": " ".join(doc), "label": label})
    rng.shuffle(rows)
    frame = pd.DataFrame(rows)
    new = pd.DataFrame({"text": ["goal team match", "cheese soup today", "the chip",
                                 "unknown words only", "a"]})
    return frame, new


def series_data() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    length, rows = 16, []
    for label in ("sine", "ramp"):
        for _ in range(15):
            n = int(rng.integers(length // 2, length + 1))
            t = np.linspace(0, 1, n)
            base = np.sin(6 * t) if label == "sine" else t
            values = list((base + 0.1 * rng.standard_normal(n)).round(4))
            values += [np.nan] * (length - n)
            rows.append({"label": label, **{f"t{i}": v for i, v in enumerate(values)}})
    frame = pd.DataFrame(rows).sample(frac=1.0, random_state=0).reset_index(drop=True)
    new = frame.drop(columns="label").head(5)
    return frame, new


def forecast_data() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    n = 160
    t = np.arange(n)
    y = 20 + 0.02 * t + 3 * np.sin(2 * np.pi * t / 7) + 0.3 * rng.standard_normal(n)
    frame = pd.DataFrame({"date": pd.date_range("2024-01-01", periods=n, freq="D")
                          .strftime("%Y-%m-%d"), "load": y.round(4)})
    return frame, frame.iloc[:-7]


TASKS = {
    "text": (text_data, []),
    "series": (series_data, ["--task", "series", "--target", "label"]),
    "forecast": (forecast_data, ["--task", "forecast", "--time", "date", "--target", "load",
                                 "--horizon", "7"]),
}


def grutune(*args: str) -> None:
    """``python -m grutune ARGS``, run outside the checkout: ``PYTHONPATH=/elsewhere``
    then picks the grutune that writes the bundles (e.g. an export of an older commit)."""
    subprocess.run([sys.executable, "-m", "grutune", *args], check=True,
                   cwd=tempfile.gettempdir())


def make(task: str, version: int) -> Path:
    build, options = TASKS[task]
    out = HERE / f"v{version}-{task}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    train, new = build()
    with tempfile.TemporaryDirectory() as tmp:
        data, space, run_dir = Path(tmp) / "train.csv", Path(tmp) / "space.yaml", Path(tmp) / "run"
        train.to_csv(data, index=False)
        space.write_text(TINY[task])
        grutune("tune", str(data), *options, *COMMON, "--space", str(space),
                "--run-dir", str(run_dir))
        shutil.copytree(run_dir / "model", out / "model")
    new.to_csv(out / "input.csv", index=False)
    grutune("predict", str(out / "model"), str(out / "input.csv"), "--out",
            str(out / "expected.csv"))
    return out


if __name__ == "__main__":
    from grutune.bundle import FORMAT_VERSION

    for name in sys.argv[1:] or list(TASKS):
        print(make(name, FORMAT_VERSION))
