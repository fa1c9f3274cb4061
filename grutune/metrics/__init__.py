"""Layer 2, metrics: scores by name with their directions (``scores``) and confidence
intervals over test rows or seeds (``intervals``). Plain numbers in, plain numbers out."""
