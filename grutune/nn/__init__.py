"""Layer 3, nn: the models (embedding|linear -> GRU|LSTM -> pooling -> head), the GRU
recurrence and its C++ kernel (``csrc/``), the trainer, populations of stacked models.
No Optuna, no command line, no task names."""
