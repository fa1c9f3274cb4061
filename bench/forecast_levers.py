"""Sunspots levers on fixed configurations, run alone: validation and test MASE per seed.

    python bench/forecast_levers.py search WINDOW        # the search's best config
    python bench/forecast_levers.py deep                 # 2 layers, lookback 256, plain
    python bench/forecast_levers.py plain LOOKBACK LOSS  # a 2-layer GRU outside grutune
    python bench/forecast_levers.py anchors DATASET      # fixed anchors, no network
    python bench/forecast_levers.py drift DATASET        # anchors with a trend, no network
    python bench/forecast_levers.py log                  # gas's default run on log values
    python bench/forecast_levers.py leads DATASET        # naive's MASE by lead, no network
    python bench/forecast_levers.py mix DATASET RUN_DIR  # a run's forecasts mixed with Theta

``search``: the best configuration of a default ``grutune tune --dataset sunspots`` (1
layer of 64 units, lookback 48, each window normalized by its own mean and spread, no
baseline; RMSprop 1.35e-3), one trial per seed (0, 1), with the normalization computed
over the last WINDOW steps (the search normalizes over its longest lookback, 96; WINDOW
48 = the lookback only). ``deep``: 2 layers of 64, lookback 256, no window
normalization, no baseline, the space's other defaults. ``plain``: a 2-layer GRU(64) in
plain PyTorch on standardized values (training part's mean and std), every training
window each epoch, Adam 1e-3, batch 64, 80 epochs, the epoch with the best validation
MASE; LOSS ``l1`` or ``mse``. ``anchors``: forecasts with no network on DATASET's
validation windows (every step) and test windows (stride 12), horizon and season 12:
seasonal naive, the mean seasonal profile of the last K seasons added to the last
season's mean, and ``nn.model.smoothed_forecast`` (the ``smooth`` anchor) at fixed
weights over a 96-step window. ``drift``: the ``smooth`` anchor with what Theta adds,
over the last 48 or 96 steps, at fixed weights: a drift (D times the OLS slope of the
seasonally adjusted window per step ahead, as Theta's D = 1/2) and a multiplicative
seasonal profile (ratios to each season's mean, not differences). ``log``: the default
run (``grutune.tune`` with its defaults, horizon and season 12) on gas's values
log-transformed, its test forecasts exponentiated and scored in original units.
``leads``: the naive forecast (the last value) of every test step made 1, 12 and 1-12
steps ahead: what a one-step protocol scores against the 12-step one. ``mix``: a
finished default run's test forecasts (``RUN_DIR/test_predictions.csv``) averaged with
Theta's from the same origins (grutune's own Theta baseline, deseasonalized, as
validation chose on the built-ins), weight w on the GRU. MASE as grutune computes it:
mean absolute error over the test windows (stride 12) divided by the training part's
seasonal-naive (lag 12) MAE.
"""

from __future__ import annotations

import itertools
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

import grutune
import grutune.tasks.forecasting as forecasting
from grutune.config import DataConfig
from grutune.data.datasets import get_dataset

SEARCH_BEST = {
    "lookback": [48], "baseline": "none", "window_norm": True, "embed_dim": 64,
    "hidden_size": 64, "num_layers": 1, "bidirectional": False, "pooling": "last",
    "dropout": 0.0, "init": "xavier", "optimizer": "rmsprop", "lr": 0.00135,
    "momentum": 0.72, "regularization": "l2_penalty", "l2_penalty": 5e-5,
    "schedule": "constant", "warmup_epochs": 0, "batch_size": 16, "patience": 8,
    "grad_clip": 1.0}
DEEP = {"lookback": [256], "baseline": "none", "window_norm": False, "num_layers": 2,
        "hidden_size": 64}


def one_trial(space: dict, window: int | None) -> list[tuple[float, float]]:
    """(validation, test) MASE of one trial per seed of ``space``; ``window``: the
    normalization window (the prepared window) apart from the lookback."""
    if window is not None:
        lookbacks = forecasting._lookbacks
        forecasting._lookbacks = lambda s: (lookbacks(s) or []) + [window]
    out = []
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "space.yaml"
        path.write_text(yaml.safe_dump(space))
        for seed in (0, 1):
            run = grutune.tune("sunspots", space=str(path), trials=1, repeats=1, workers=1,
                               baseline=False, seed=seed, quiet=True,
                               run_dir=str(Path(folder) / f"run{seed}"))
            out.append((run.metrics["validation"]["mase"], run.metrics["mase"]))
    return out


def plain(lookback: int, loss_name: str, seed: int = 0) -> tuple[float, float, int]:
    """(validation, test) MASE at the best validation epoch, and that epoch."""
    torch.manual_seed(seed)
    frame, _ = get_dataset("sunspots").loader()
    y = frame["value"].to_numpy(np.float64)
    n, horizon, season = len(y), 12, 12
    n_test = horizon * round(n * 0.15 / horizon)
    train_end, val_end = n - round(n * 0.15) - n_test, n - n_test
    mean, std = y[:train_end].mean(), y[:train_end].std()
    z = torch.tensor((y - mean) / std, dtype=torch.float32)
    scale = np.abs(y[season:train_end] - y[:train_end - season]).mean()

    def windows(origins: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.stack([z[o - lookback:o] for o in origins])[..., None]  # [W, L, 1]
        return x, torch.stack([z[o:o + horizon] for o in origins])  # [W, H]

    x_tr, y_tr = windows(np.arange(lookback, train_end - horizon + 1))
    x_va, y_va = windows(np.arange(train_end, val_end - horizon + 1))
    x_te, y_te = windows(np.arange(val_end, n - horizon + 1, horizon))
    gru, head = torch.nn.GRU(1, 64, 2, batch_first=True), torch.nn.Linear(64, horizon)

    def forward(x: torch.Tensor) -> torch.Tensor:
        return head(gru(x)[0][:, -1])

    params = [*gru.parameters(), *head.parameters()]
    optimizer = torch.optim.Adam(params, 1e-3)
    loss_fn = torch.nn.L1Loss() if loss_name == "l1" else torch.nn.MSELoss()

    @torch.no_grad()
    def mase(x: torch.Tensor, target: torch.Tensor) -> float:
        return float((forward(x) - target).abs().mean()) * std / scale

    best = (float("inf"), float("nan"), 0)
    for epoch in range(80):
        for b in torch.randperm(len(x_tr)).split(64):
            optimizer.zero_grad()
            loss_fn(forward(x_tr[b]), y_tr[b]).backward()
            optimizer.step()
        value = mase(x_va, y_va)
        if value < best[0]:
            best = (value, mase(x_te, y_te), epoch)
    return best


def _series(name: str) -> tuple[np.ndarray, int, int, float]:
    """A built-in forecast's values, grutune's train and validation ends (horizon 12),
    and the MASE denominator: the training part's seasonal-naive (lag 12) MAE."""
    y = get_dataset(name).loader()[0]["value"].to_numpy(np.float64)
    train_end, val_end = forecasting.split_bounds(len(y), DataConfig(dataset=name), 12)
    return y, train_end, val_end, float(np.abs(y[12:train_end] - y[:train_end - 12]).mean())


def anchors(name: str) -> list[tuple[str, float, float]]:
    """(anchor, validation, test) MASE of fixed anchors, horizon and season 12."""
    from grutune.nn.model import baseline_forecast, smoothed_forecast

    y, train_end, val_end, scale = _series(name)
    n, horizon, season, window = len(y), 12, 12, 96
    series = torch.tensor(y)

    def score(forecast, origins: np.ndarray) -> float:  # noqa: ANN001
        past = torch.stack([series[o - window:o] for o in origins])[..., None]  # [W, L, 1]
        actual = torch.stack([series[o:o + horizon] for o in origins])[..., None]
        return float((forecast(past) - actual).abs().mean()) / scale

    def profile(k: int):  # noqa: ANN202
        def forecast(past: torch.Tensor) -> torch.Tensor:
            seasons = past[:, -k * season:].unflatten(1, (k, season))  # [W, k, m, 1]
            shape = (seasons - seasons.mean(2, keepdim=True)).mean(1)  # [W, m, 1]
            return past[:, -season:].mean(1, keepdim=True) + shape[:, :horizon]
        return forecast

    val = np.arange(train_end, val_end - horizon + 1)
    test = np.arange(val_end, n - horizon + 1, horizon)
    rows = [("seasonal naive",
             lambda p: baseline_forecast(p, "seasonal", horizon, season))]
    rows += [(f"profile of the last {k} seasons", profile(k)) for k in (2, 3, 4, 6)]
    rows += [(f"smooth, alpha {a}", lambda p, a=a: smoothed_forecast(
        p, torch.logit(torch.tensor([a], dtype=p.dtype)), horizon, season))
        for a in (0.1, 0.3, 0.5, 0.9)]
    return [(label, score(f, val), score(f, test)) for label, f in rows]


def _trend_anchor(past: torch.Tensor, alpha: float, drift: float, ratio: bool,
                  horizon: int, season: int) -> torch.Tensor:
    """The ``smooth`` anchor (exponentially weighted level of the seasonally adjusted
    window, its profile added back) plus Theta's drift, optionally with a multiplicative
    profile. past: [W, L, 1] -> [W, horizon, 1]."""
    steps = past.size(1)
    k = steps // season
    seasons = past[:, steps - k * season:].unflatten(1, (k, season))  # [W, k, m, 1]
    phase = (torch.arange(steps) - steps) % season  # [L]
    if ratio:
        profile = (seasons / seasons.mean(2, keepdim=True)).mean(1)  # [W, m, 1]
        adjusted = past / profile[:, phase]
    else:
        profile = (seasons - seasons.mean(2, keepdim=True)).mean(1)
        adjusted = past - profile[:, phase]
    ahead = profile[:, torch.arange(horizon) % season]  # [W, H, 1]
    t = torch.arange(steps, dtype=past.dtype)
    t = t - t.mean()
    slope = (adjusted * t[None, :, None]).sum(1, keepdim=True) / (t ** 2).sum()  # [W, 1, 1]
    age = torch.arange(steps - 1, -1, -1, dtype=past.dtype)
    weights = alpha * (1 - alpha) ** age
    level = (adjusted * (weights / weights.sum())[None, :, None]).sum(1, keepdim=True)
    lead = torch.arange(1, horizon + 1, dtype=past.dtype)[None, :, None]  # [1, H, 1]
    level = level + drift * slope * (lead - 1 + 1 / alpha)  # Theta's drift term
    return level * ahead if ratio else level + ahead


def drift(name: str) -> list[tuple[str, float, float]]:
    """(anchor, validation, test) MASE of ``smooth`` with a drift and/or ratio profile."""
    y, train_end, val_end, scale = _series(name)
    n, horizon, season = len(y), 12, 12
    series = torch.tensor(y)
    val = np.arange(train_end, val_end - horizon + 1)
    test = np.arange(val_end, n - horizon + 1, horizon)
    rows = []
    for window, ratio, alpha, d in itertools.product((48, 96), (False, True), (0.1, 0.3, 0.5),
                                                     (0.0, 0.5, 1.0)):
        scores = []
        for origins in (val, test):
            past = torch.stack([series[o - window:o] for o in origins])[..., None]
            actual = torch.stack([series[o:o + horizon] for o in origins])[..., None]
            forecast = _trend_anchor(past, alpha, d, ratio, horizon, season)
            scores.append(float((forecast - actual).abs().mean()) / scale)
        label = (f"window {window}, {'ratio' if ratio else 'additive'} profile, "
                 f"alpha {alpha}, drift {d}")
        rows.append((label, *scores))
    return rows


def leads(name: str) -> list[tuple[str, float]]:
    """(lead, MASE) of the naive forecast over every test step, season 12."""
    y, _, val_end, scale = _series(name)
    horizon = 12
    steps = np.arange(val_end, len(y))

    def mase(lead: int) -> float:
        return float(np.abs(y[steps] - y[steps - lead]).mean() / scale)

    every = float(np.mean([mase(h) for h in range(1, horizon + 1)]))
    return [("1 step ahead", mase(1)), ("12 steps ahead", mase(12)),
            ("1-12 steps ahead, averaged", every)]


def mix(name: str, run_dir: Path) -> list[tuple[float, float, list[float]]]:
    """(GRU weight, test MASE, mean signed error per window) of the run's forecasts
    mixed with Theta's, horizon and season 12; weight 0 is Theta alone."""
    import pandas as pd

    from grutune.tasks.baselines import _theta_windows

    y, _, _, scale = _series(name)
    times = pd.to_datetime(get_dataset(name).loader()[0]["time"])
    table = pd.read_csv(run_dir / "test_predictions.csv", parse_dates=["time"])
    first = table.groupby("window")["time"].first()
    origins = np.array([int(np.flatnonzero(times == t)[0]) for t in first])
    theta = _theta_windows(y[:, None], origins, 12, 12, True).numpy()[:, :, 0]
    gru = table.pivot(index="window", columns="step", values="forecast").to_numpy()
    actual = table.pivot(index="window", columns="step", values="actual").to_numpy()
    out = []
    for w in (0.0, 0.25, 0.5, 0.75, 1.0):
        error = w * gru + (1 - w) * theta - actual  # [windows, horizon]
        out.append((w, float(np.abs(error).mean() / scale), error.mean(1).round().tolist()))
    return out


def log_run() -> tuple[float, float]:
    """(test MASE of the log-value run in original units, seasonal naive's) on gas."""
    import pandas as pd

    frame, _ = get_dataset("gas").loader()
    scale = _series("gas")[3]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "gas_log.csv"
        frame.assign(value=np.log(frame["value"])).to_csv(path, index=False)
        run = grutune.tune(str(path), task="forecast", time="time", target="value",
                           horizon=12, season=12, quiet=True, run_dir=str(Path(folder) / "run"))
        table = pd.read_csv(run.run_dir / "test_predictions.csv")
    actual = np.exp(table["actual"])
    return (float(np.abs(np.exp(table["forecast"]) - actual).mean() / scale),
            float(np.abs(np.exp(table["seasonal_naive"]) - actual).mean() / scale))


def main() -> None:
    mode, start = sys.argv[1], time.perf_counter()
    if mode == "log":
        model, naive = log_run()
        print(f"gas, log values: test MASE {model:.3f} in original units (seasonal naive "
              f"{naive:.3f}); {time.perf_counter() - start:.0f} s")
        print("command: python bench/forecast_levers.py log")
        return
    if mode == "mix":
        for w, value, signed in mix(sys.argv[2], Path(sys.argv[3])):
            print(f"{sys.argv[2]} GRU weight {w:.2f}: test MASE {value:.3f}; mean signed "
                  f"error per window {signed}")
        print(f"command: python bench/forecast_levers.py {' '.join(sys.argv[1:])}")
        return
    if mode == "leads":
        for label, value in leads(sys.argv[2]):
            print(f"{sys.argv[2]} naive, {label}: test MASE {value:.3f}")
        print(f"command: python bench/forecast_levers.py {' '.join(sys.argv[1:])}")
        return
    if mode in ("anchors", "drift"):
        for label, v, t in (anchors if mode == "anchors" else drift)(sys.argv[2]):
            print(f"{sys.argv[2]} {label}: test {t:.3f} (validation {v:.3f})")
        print(f"command: python bench/forecast_levers.py {' '.join(sys.argv[1:])}")
        return
    if mode == "search":
        rows = one_trial(SEARCH_BEST, int(sys.argv[2]))
    elif mode == "deep":
        rows = one_trial(DEEP, None)
    else:
        torch.set_num_threads(2)
        rows = [plain(int(sys.argv[2]), sys.argv[3])]
    shown = ", ".join(f"test {t:.4f} (validation {v:.4f})" for v, t, *_ in rows)
    print(f"sunspots {' '.join(sys.argv[1:])}: {shown}; {time.perf_counter() - start:.0f} s")
    print(f"command: python bench/forecast_levers.py {' '.join(sys.argv[1:])}")


if __name__ == "__main__":
    main()
