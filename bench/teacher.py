"""Choose a distillation teacher on the validation split, never the test set: each member's and the average's
validation accuracy, and what the teacher costs per image (it runs on every training batch of `distill`).

    LIGHTNING_DIGITS_DATA=../shared/data/mnist .venv/bin/python bench/teacher.py runs/default/seed_0 runs/fast/

Members are checkpoints or folders of runs, as `distill` and `ensemble` take them; the validation split is the
first member's (`distill` refuses members whose split differs from the student's). Prints one line per member,
one for the average, and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time

from lightning_digits.checkpoints import load_members
from lightning_digits.data.datamodule import fit_validation_set
from lightning_digits.evaluation.report import test_pass
from lightning_digits.models.averaging import Averaged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("members", nargs="+", help="checkpoints, or folders searched for digits_cnn.ckpt")
    args = parser.parse_args()
    paths, members = load_members(args.members)
    images, labels = fit_validation_set(members[0].data_hparams)
    rows = []
    for path, member in [
        *zip(map(str, paths), [m.net for m in members], strict=True),
        ("average", Averaged([m.net for m in members])),
    ]:
        start = time.perf_counter()
        accuracy = test_pass(member, images, labels).accuracy
        per_image = 1000 * (time.perf_counter() - start) / len(labels)
        rows.append({"member": path, "val_accuracy": accuracy, "ms_per_image": per_image})
        print(f"{path}: val accuracy {accuracy:.4f}, {per_image:.3f} ms/image", flush=True)
    print(json.dumps({"members": args.members, "rows": rows}))


if __name__ == "__main__":
    main()
