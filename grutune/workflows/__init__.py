"""Layer 8, workflows: the jobs a user asks for, each one library call: ``tune``
(checks -> run directory -> search -> evaluate -> bundle -> report), ``predict``,
``compare`` (GRU against LSTM)."""
