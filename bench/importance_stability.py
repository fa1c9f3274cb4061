"""How stable are a run's factor importances? One fANOVA per forest seed against the
report's resampled importances (``reporting.data.importances``) per seed.

    python bench/importance_stability.py RUN_DIR [SEEDS]

For each of SEEDS seeds (default 5): the top three factors of one fANOVA with Optuna's
defaults (64 trees) on all complete trials, which is what the report showed before, and
the top three of the report's importances (20 bootstrap resamples of the trials, 16
trees each) with their resampled 90% ranges and the page's "stands apart" line. No
training; seconds.
"""

from __future__ import annotations

import sys
import time
import warnings

import optuna

from grutune.reporting import data as rd


def main() -> None:
    run_dir, seeds = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 5
    study = rd.read_run(run_dir).study
    if study is None:
        raise SystemExit(f"{run_dir}: no study found")
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    print(f"{run_dir}: {len(complete)} complete trials")
    for seed in range(seeds):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            single = optuna.importance.get_param_importances(
                study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=seed))
        start = time.perf_counter()
        resampled = rd.importances(study, seed=seed)
        seconds = time.perf_counter() - start
        one = ", ".join(f"{k} {v:.2f}" for k, v in list(single.items())[:3])
        many = ", ".join(f"{k} {v.share:.2f} [{v.low:.2f}, {v.high:.2f}]"
                         for k, v in list(resampled.items())[:3])
        print(f"seed {seed}: one fANOVA: {one} | resampled ({seconds:.1f} s): {many}")
        print(f"  {rd.importance_note(resampled, len(complete)).split('. ', 1)[1]}")
    print(f"command: python bench/importance_stability.py {' '.join(sys.argv[1:])}")


if __name__ == "__main__":
    main()
