"""Layer 7, reporting: the numbers behind every figure (``data``), the tables a run prints
(``tables``) and the offline HTML page (``page``)."""
