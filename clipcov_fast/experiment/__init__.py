"""The paper's experiment in miniature: configs, the run (pools -> proxy -> subsets -> students),
the student pool, the report; and the synthetic demo."""
