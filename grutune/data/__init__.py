"""Layer 2, data: readers (CSV / Parquet / JSON Lines / .ts), the built-in real datasets,
a split's tensors (``SequenceData``) and cross-validation folds. Knows no model, no task."""
