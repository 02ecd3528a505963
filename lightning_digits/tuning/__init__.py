"""Hyperparameter search (`lightning-digits tune`): the search space from YAML, the Optuna study and its storage,
and trials that are `fit` with overrides. Knows nothing of model internals."""
