"""The training side's glue: everything here imports Lightning (building its commands, what runs around training,
atomic checkpoints, distillation and adaptation, and the one module of Lightning's private API). `cli.py`
imports from here only for the Lightning commands, so `--help`, `serve` and `demo` never pay for it."""
