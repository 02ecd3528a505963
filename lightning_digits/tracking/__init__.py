"""MLflow tracking: `runs` (the `--mlflow.*` settings, a fit's record of its run, evaluate's files, the study's
parent run; no Lightning) and `fit_logger` (what `fit` adds to its Trainer). MLflow itself is an optional extra."""
