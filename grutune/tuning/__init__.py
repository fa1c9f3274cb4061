"""Layer 6, tuning: the search (Optuna studies, samplers, pruners, storages, workers),
one trial's fit and its objective, seed repeats and the final model's evaluation."""
