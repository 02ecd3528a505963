"""Render the tables of README.md and docs/ that a JSON file of the repository records, so that the two can
never disagree: the committed model's table and training time come from artifacts_digits/summary.json, which
`evaluate` writes; the default config's per-seed table and the sentence that gives its mean on the home and
Keras pages from docs/results/default_config.json; adapt's per-hand table and the choice of its settings from
docs/results/hands.json and docs/results/adapt_choice.json, the JSON lines that `bench/robustness.py --suite hands`
printed; the accuracy goals from the JSON lines of `bench/time_to_accuracy.py` and `bench/ensembles.py`; the second
round of page-and-camera augmentation from `bench/robustness.py --suite mnist-c --split choose`'s lines, one per change.

    python tools/render_figures.py            # rewrite every rendered block in place
    python tools/render_figures.py --check    # exit 1, naming the files, when a block differs from its JSON

A block sits between `<!-- figures: NAME -->` and `<!-- /figures -->`; what lies between is replaced whole.
Knows nothing of the package: it reads JSON and writes Markdown.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SUMMARY = REPO / "artifacts_digits" / "summary.json"
RESULTS = REPO / "docs" / "results"
SOURCES = {
    "summary": SUMMARY,
    "hands": RESULTS / "hands.json",
    "adapt-choice": RESULTS / "adapt_choice.json",
    # The JSON lines of bench/time_to_accuracy.py and bench/ensembles.py behind the accuracy goals.
    "best-preset": RESULTS / "best_preset.json",
    "best-ensemble": RESULTS / "best_ensemble.json",
    "fast-preset": RESULTS / "fast_preset.json",
    "fast-distilled": RESULTS / "fast_distilled.json",
    # Measurements of `-c best` runs that differ in what they trained on, one per machine: each member's
    # bench/time_to_accuracy.py JSON line (as "members") and bench/ensembles.py's line for them averaged ("ensemble").
    "diverse-ensemble": RESULTS / "diverse_ensemble.json",
    # distill -c fast taught by the latest diverse ensemble's members: bench/teacher.py's line ("teacher"), the
    # candidates at seed 0 ("candidates", time_to_accuracy lines, students and the plain network alike), and the
    # chosen student and the plain network of its length on seeds 0-2 ("student", "plain": lines to concatenate).
    "distill-diverse": RESULTS / "distill_diverse.json",
    # The fast network trained for 40 epochs, a candidate for the best single network: time_to_accuracy lines.
    "fast-long": RESULTS / "fast_long.json",
    # The best preset beside candidates to change it, one seed each on one machine: each run's time_to_accuracy line
    # ("fit") and its bench/robustness.py --suite mnist-c --network_only lines on the choosing split ("choose") and on
    # the test images ("test"); the first two averaged, bench/teacher.py's and bench/ensembles.py's lines ("averaged").
    "best-candidates": RESULTS / "best_candidates.json",
    # The fast preset again on a CPU without AVX-512, where fit runs in fp32 (bf16 would only be emulated).
    "fast-preset-fp32": RESULTS / "fast_preset_fp32.json",
    # MNIST-C of the default config's runs, one JSON line of bench/robustness.py --suite mnist-c per seed.
    "default-config": RESULTS / "default_config.json",
    # MNIST-C of the committed ONNX model, both columns (bench/robustness.py --suite mnist-c's JSON line).
    "committed-mnist-c": RESULTS / "committed_mnist_c.json",
    # The one-change-at-a-time runs of page-and-camera augmentation on MNIST-C's choosing set.
    "page-augmentation-round2": RESULTS / "page_augmentation_round2.json",
    "styles-round": RESULTS / "styles_round.json",
}
# Every page: a block is rendered wherever it stands.
TARGETS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
BLOCK = re.compile(r"(<!-- figures: (?P<name>[a-z0-9-]+) -->\n)(?P<body>.*?)(<!-- /figures -->)", re.S)


def machine(hardware: dict) -> str:
    """'Intel(R) Xeon(R) Processor', 2 cores, no GPU -> 'Intel Xeon, 2 cores'; with torch's CPU capability where
    it was recorded (the same processor name covers CPUs with and without AVX-512): 'AMD EPYC (AVX2), 2 cores'."""
    cpu = re.sub(r"\((R|TM)\)|\bProcessor\b|\bCPU\b", "", hardware["cpu"])
    cpu = re.sub(r"\s+", " ", cpu).strip()
    if "cpu_capability" in hardware:
        cpu += f" ({hardware['cpu_capability']})"
    gpu = hardware.get("gpu", "none")
    return f"{cpu}, {hardware['cpu_cores']} cores" + ("" if gpu in ("none", None) else f", {gpu}")


def committed_model(summary: dict) -> str:
    seconds = summary["training_wall_seconds"]
    rows = [
        "| model | test accuracy | test loss | training | machine |",
        "| --- | --- | --- | --- | --- |",
        f"| CNN, default config ({summary['parameters']:,} parameters) | **{summary['test_accuracy']:.4f}** "
        f"| {summary['test_loss']:.4f} | {summary['epochs_run']} epochs, {seconds:.1f} s; best epoch "
        f"{summary['best_epoch']} | {machine(summary['hardware'])} |",
    ]
    for name, baseline in summary.get("baselines", {}).items():
        rows.append(f"| {name} | {baseline['accuracy']:.4f} | | {baseline['fit_seconds']:.1f} s | |")
    rows.append("")
    rows.append(
        f"From `artifacts_digits/summary.json`: {summary['misclassified']} of {summary['test_images']:,} test "
        f"images misclassified; the ONNX file agrees with PyTorch to {summary['onnx']['max_logit_difference']:.1e} "
        "in the logits."
    )
    return "\n".join(rows) + "\n"


def committed_training(summary: dict) -> str:
    return (
        f"The committed model (`make train`; `artifacts_digits/summary.json`): {summary['epochs_run']} epochs in "
        f"{summary['training_wall_seconds']:.1f} s on an {machine(summary['hardware'])}.\n"
    )


def hands(run: dict) -> str:
    """Accuracy on a hand's other digits against the digits per class that `adapt` learnt."""
    first = next(iter(run["by_k"].values()))
    start = min((r for r in run["runs"] if r["k"] == run["runs"][0]["k"]), key=lambda r: r["hand_before"])
    rows = [
        "| digits per class learnt (k) | mean of the hands | worst hand | MNIST test after | seconds per adapt |",
        "| --- | --- | --- | --- | --- |",
        f"| 0 (the model as trained) | {first['before']:.4f} | {start['hand_before']:.4f} ({start['family']}) "
        f"| {start['mnist_test_before']:.4f} | |",
    ]
    for k, row in run["by_k"].items():
        worst = "every hand" if row["worst"] == row["mean"] else row["worst_family"]
        rows.append(
            f"| {k} | **{row['mean']:.4f}** | {row['worst']:.4f} ({worst}) | {row['mnist_test']:.4f} "
            f"| {row['seconds']:.1f} |"
        )
    families = sorted({r["family"] for r in run["runs"]})
    rows.append("")
    rows.append(
        f"From `docs/results/hands.json`: the {run['part']} part's {len(families)} hands, {run['tested']} digits "
        f"of each read after every k; {machine(run['hardware'])}."
    )
    return "\n".join(rows) + "\n"


def adapt_choice(choice: dict) -> str:
    """adapt's settings on the choose part's hands at one k, against the starting model's MNIST validation."""
    rows = [
        "| setting (changed from the first row) | mean of the hands | worst hand | MNIST validation | "
        "seconds per adapt |",
        "| --- | --- | --- | --- | --- |",
    ]
    for run in choice["runs"]:
        [(k, row)] = run["by_k"].items()
        rows.append(
            f"| {run['setting']} | {row['mean']:.4f} | {row['worst']:.4f} ({row['worst_family']}) | "
            f"{row['mnist_validation']:.4f} | {row['seconds']:.1f} |"
        )
    first = choice["runs"][0]
    hardware = next(run["hardware"] for run in choice["runs"] if "hardware" in run)  # the first run predates it
    rows.append("")
    rows.append(
        f"From `docs/results/adapt_choice.json`: k = {k}, the {first['part']} part's hands (before adapting "
        f"{next(iter(first['by_k'].values()))['before']:.4f}), starting from a model of MNIST validation "
        f"{choice['start_mnist_validation']:.4f}; {machine(hardware)}."
    )
    return "\n".join(rows) + "\n"


def _spread(runs: list[dict], key: str) -> str:
    values = [run[key] for run in runs]
    return f"**{sum(values) / len(values):.4f}** ({min(values):.4f}-{max(values):.4f})"


def _seconds(runs: list[dict]) -> str:
    seconds = sorted(run["fit_seconds"] for run in runs)
    return f"{seconds[0]:.0f}-{seconds[-1]:.0f} s each" if len(seconds) > 1 else f"{seconds[0]:.0f} s"


def _load(runs: list[dict]) -> str:
    loads = [run["load_average_1min_after_fit"] for run in runs if "load_average_1min_after_fit" in run]
    if not loads:
        return "load not recorded"
    low, high = f"{min(loads):.1f}", f"{max(loads):.1f}"
    return f"load {low}" if low == high else f"load {low}-{high}"


def _variant(member: dict) -> str:
    """A diverse ensemble's member by its flags and seed: '`--data.stroke=0.5` (seed 1)'."""
    return f"{' '.join(f'`{flag}`' for flag in member['extra']) or 'plain'} (seed {member['runs'][0]['seed']})"


def _diverse_ensemble_row(measurement: dict) -> str:
    """One measurement of `-c best` variants averaged: each member's time_to_accuracy line, and ensembles.py's."""
    [ensemble] = measurement["ensemble"]["ensembles"]
    variants = ", ".join(map(_variant, measurement["members"]))
    members = ", ".join(f"{accuracy:.4f}" for accuracy in ensemble["member_test_accuracy"])
    runs = _runs(measurement["members"])
    return (
        f"| {len(runs)} `-c best` variants averaged: {variants} | 0.9975 in 30 min | "
        f"**{ensemble['test_accuracy']:.4f}** (members {members}) | {ensemble['training_seconds']:,.0f} s in all | "
        f"{machine(measurement['ensemble']['hardware'])}, {_load(runs)} |"
    )


def _runs(lines: list[dict]) -> list[dict]:
    """The runs of several time_to_accuracy lines of one setting (seed 0 first, then more seeds added)."""
    return [run for line in lines for run in line["runs"]]


def _flag(line: dict, name: str, default: str) -> str:
    return next((flag.split("=", 1)[1] for flag in line["extra"] if flag.startswith(f"--{name}=")), default)


def _command(line: dict) -> str:
    """A time_to_accuracy line's configuration as the user types it: '-c best --data.noise=0.3'."""
    presets = " ".join(f"-c {Path(config).stem}" for config in line["config"])
    return " ".join([presets, *line["extra"]])


def _fast_steps(line: dict) -> str:
    """The fast preset's steps: 320 batches an epoch, 2 epochs unless the line's flags say otherwise."""
    return f"{320 * int(_flag(line, 'trainer.max_epochs', '2')):,}"


def _teacher(line: dict, diverse: dict) -> str:
    """'the three variants averaged', or the one variant a --teacher of one checkpoint names (by its seed folder)."""
    if line["command"] != "distill":
        return "none"
    paths = _flag(line, "teacher", "[]").strip("[]").split(",")
    if len(paths) > 1:
        return f"the {len(paths)} variants averaged"
    seed = int(re.search(r"seed_(\d+)", paths[0])[1])
    [member] = [m for m in diverse["members"] if m["runs"][0]["seed"] == seed]
    return f"{_variant(member)} alone"


def distill_choice(records: dict[str, dict]) -> str:
    """The student's settings for the diverse ensemble as its teacher, one seed each, chosen on validation."""
    record, diverse = records["distill"], records["diverse"][-1]
    rows = [
        "| student (fast network) | teacher | temperature, weight | steps | val acc | (test acc, not used) | fit |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for line in record["candidates"]:
        [run] = line["runs"]
        distilled = line["command"] == "distill"
        settings = f"{_flag(line, 'temperature', '3')}, {_flag(line, 'teacher_weight', '0.8')}" if distilled else ""
        rows.append(
            f"| {'`distill -c fast`' if distilled else '`-c fast`'} | {_teacher(line, diverse)} | {settings} | "
            f"{_fast_steps(line)} | {run['val_accuracy']:.4f} | {run['test_accuracy']:.4f} | "
            f"{run['fit_seconds']:.0f} s |"
        )
    teacher = ", ".join(f"{row['val_accuracy']:.4f}" for row in record["teacher"]["rows"][:-1])
    rows += [
        "",
        f"From `docs/results/distill_diverse.json`, seed 0, {machine(record['candidates'][0]['hardware'])}. The "
        f"teacher's validation accuracy (`bench/teacher.py`): the members {teacher}, the average "
        f"{record['teacher']['rows'][-1]['val_accuracy']:.4f}.",
    ]
    return "\n".join(rows) + "\n"


def _measured_row(label: str, goal: str, lines: list[dict], key: str = "test_accuracy") -> str:
    """A row of the accuracy goals from time_to_accuracy lines of one setting: their runs' mean, time and machine."""
    runs = _runs(lines)
    return (
        f"| {label} |{f' {goal}' if goal else ''} | {_spread(runs, key)} | {_seconds(runs)} | "
        f"{machine(lines[0]['hardware'])}, {_load(runs)} |"
    )


def accuracy_goals(records: dict[str, dict]) -> str:
    """The four accuracy goals of 2 CPU cores against what the bench runs measured, mean over seeds."""
    best, ensemble, fast, distilled, fp32, diverse, distill, long = (
        records[name]
        for name in ("best", "ensemble", "fast", "distilled", "fast_fp32", "diverse", "distill", "fast_long")
    )
    student, plain = distill["student"][0], distill["plain"][0]
    settings = f"T {_flag(student, 'temperature', '3')}, w {_flag(student, 'teacher_weight', '0.8')}"
    seeds = ", ".join(str(run["seed"]) for run in best["runs"])
    rows = [
        "| model | goal | test accuracy, mean (min-max) | training | machine |",
        "| --- | --- | --- | --- | --- |",
        _measured_row(
            f"`-c best`, the checkpoint `evaluate` uses (seeds {seeds})",
            "0.9972 in 10 min",
            [best],
            "best_test_accuracy",
        ),
        f"| `-c best`, the final checkpoint | | {_spread(best['runs'], 'test_accuracy')} | | |",
        _measured_row(
            f"the fast network for {_fast_steps(long[0])} steps (`-c fast "
            f"--trainer.max_epochs={_flag(long[0], 'trainer.max_epochs', '2')}`), the checkpoint `evaluate` uses",
            "0.9972 in 10 min",
            long,
            "best_test_accuracy",
        ),
        f"| the same, the final checkpoint | | {_spread(_runs(long), 'test_accuracy')} | | |",
        f"| the three seeds averaged (`ensemble`) | 0.9975 in 30 min | **{ensemble['mean']:.4f}** (one ensemble) | "
        f"{ensemble['max_training_seconds']:,.0f} s in all | {machine(best['hardware'])} |",
        *map(_diverse_ensemble_row, diverse),
        _measured_row("`distill -c fast` taught by the three seeds averaged", "0.9955", [distilled]),
        _measured_row(
            f"`distill -c fast` taught by {_teacher(student, diverse[-1])} ({settings}), {_fast_steps(student)} steps",
            "0.9955",
            distill["student"],
        ),
        _measured_row(f"`{_command(plain)}`, no teacher", "", distill["plain"]),
        _measured_row("`-c fast`", "0.9950 in 20 s", [fast]),
        _measured_row("`-c fast` on a CPU without AVX-512 (fit in fp32)", "", [fp32]),
        "",
        "From `docs/results/best_preset.json`, `best_ensemble.json`, `diverse_ensemble.json`, `fast_distilled.json`, "
        "`distill_diverse.json`, `fast_long.json`, "
        "`fast_preset.json` and `fast_preset_fp32.json`; training is the fit loop's time (validation included, "
        "start-up not), and the load is the machine's 1-minute load average after each fit (a fit alone keeps both "
        "cores busy, a load of about 2; more means other work beside it, and longer times).",
    ]
    return "\n".join(rows) + "\n"


def best_candidates(record: dict) -> str:
    """The best preset beside candidates to change it, one seed each on one machine, and two of them averaged:
    validation decides, MNIST-C's choosing split says what a change does to robustness; test figures not used."""
    rows = [
        "| run | val acc, last epoch (best) | MNIST-C choosing mean (worst) | fit "
        "| (test acc: `evaluate`'s checkpoint, final) | (MNIST-C mean) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for candidate in record["candidates"]:
        [run] = candidate["fit"]["runs"]
        choose, test = candidate["choose"], candidate["test"]
        worst = choose["worst"]
        rows.append(
            f"| `{_command(candidate['fit'])}` | {run['val_accuracy']:.4f} ({choose['clean']['network']:.4f}, epoch "
            f"{run['best_epoch']}) | {choose['mean']['network']:.4f} ({worst['corruption'].replace('_', ' ')} "
            f"{worst['network']:.4f}) | {run['fit_seconds']:,.0f} s | {run['best_test_accuracy']:.4f}, "
            f"{run['test_accuracy']:.4f} | {test['mean']['network']:.4f} |"
        )
    teacher, [ensemble] = record["averaged"]["teacher"], record["averaged"]["ensemble"]["ensembles"]
    rows.append(
        f"| the first two averaged (final checkpoints) | {teacher['rows'][-1]['val_accuracy']:.4f} | not measured | "
        f"{ensemble['training_seconds']:,.0f} s in all | {ensemble['test_accuracy']:.4f} | |"
    )
    [seed] = {candidate["fit"]["runs"][0]["seed"] for candidate in record["candidates"]}
    rows += [
        "",
        f"From `docs/results/best_candidates.json`: seed {seed}, `bench/time_to_accuracy.py CONFIG --seeds 1 --keep "
        "DIR`, then `bench/robustness.py DIR/seed_0/digits_cnn.ckpt --suite mnist-c --network_only` with `--split "
        "choose` and without; the two averaged by `bench/teacher.py` (validation) and `bench/ensembles.py --members 2` "
        f"(test); {machine(record['candidates'][0]['fit']['hardware'])}.",
    ]
    return "\n".join(rows) + "\n"


def default_config(record: dict) -> str:
    """MNIST test, MNIST-C and the digits from outside MNIST (report part) of the default config per seed, and
    their mean."""
    shown = ("canny_edges", "zigzag", "glass_blur", "rotate")
    runs = record["runs"]

    def figures(run: dict) -> dict[str, float]:
        return {"clean": run["clean"]["network"], "mean": run["mean"]["network"], "report": run["ood"]["report"]} | {
            name: value["network"] for name, value in run["corruptions"].items()
        }

    def row(label: str, values: dict[str, float], worst: str) -> str:
        worst_cell = f"{worst.replace('_', ' ')} {values[worst]:.4f}"
        cells = [label, f"{values['clean']:.4f}", f"{values['mean']:.4f}", worst_cell]
        cells += [f"{values[name]:.4f}" for name in shown]
        return "| " + " | ".join([*cells, f"{values['report']:.4f}"]) + " |"

    header = ["seed", "MNIST test", "MNIST-C mean", "worst corruption", *(name.replace("_", " ") for name in shown)]
    header.append("outside MNIST (report part)")
    rows = ["| " + " | ".join(header) + " |", "| --- " * len(header) + "|"]
    for run in runs:
        rows.append(row(str(run["seed"]), figures(run), run["worst"]["corruption"]))
    mean = {key: sum(figures(run)[key] for run in runs) / len(runs) for key in figures(runs[0])}
    worst = min(runs[0]["corruptions"], key=mean.get)
    rows.append(row("**mean**", mean, worst))
    rows.append("")
    measures = " and `".join(f"{command}`" for command in record["measure"])
    rows.append(
        f"From `docs/results/default_config.json`: `{record['command']}`, then `{measures}; "
        f"{machine(record['hardware'])}."
    )
    return "\n".join(rows) + "\n"


def default_config_sentence(record: dict) -> str:
    """The default config's mean MNIST test accuracy in one sentence, for the pages that name it in prose."""
    accuracies = [run["clean"]["network"] for run in record["runs"]]
    return (
        f"The default config reads **{sum(accuracies) / len(accuracies):.4f}** of MNIST's test set, mean of "
        f"{len(accuracies)} seeds ({min(accuracies):.4f}-{max(accuracies):.4f}; {machine(record['hardware'])}).\n"
    )


def committed_mnist_c(record: dict) -> str:
    """Per corruption, the committed model's accuracy on the 28x28 arrays and through predict's preprocessing."""
    rows = ["| corruption | network | through `predict` |", "| --- | --- | --- |"]
    for name, value in record["corruptions"].items():
        rows.append(f"| {name.replace('_', ' ')} | {value['network']:.4f} | {value['predict']:.4f} |")
    rows.append(f"| **mean** | **{record['mean']['network']:.4f}** | **{record['mean']['predict']:.4f}** |")
    rows.append(f"| clean | {record['clean']['network']:.4f} | {record['clean']['predict']:.4f} |")
    rows.append("")
    rows.append(
        f"From `docs/results/committed_mnist_c.json`: `bench/robustness.py {record['model']} --suite mnist-c` "
        f"({record['images']:,} images per corruption, seed {record['seed']}); {machine(record['hardware'])}."
    )
    return "\n".join(rows) + "\n"


def headline(records: dict[str, dict]) -> str:
    """README's results: the default config, the fast and the best preset, each over its seeds."""
    default, fast, best = records["default"], records["fast"], records["best"]

    def spread(values: list[float]) -> str:
        return f"{sum(values) / len(values):.4f} ({min(values):.4f}-{max(values):.4f})"

    def seeds(runs: list[dict]) -> str:
        return ", ".join(str(run["seed"]) for run in runs)

    mnist_c = sum(run["mean"]["network"] for run in default["runs"]) / len(default["runs"])
    rows = [
        "| config | MNIST test accuracy | training | machine | command |",
        "| --- | --- | --- | --- | --- |",
        f"| default config, seeds {seeds(default['runs'])} | "
        f"**{spread([run['clean']['network'] for run in default['runs']])}**; MNIST-C {mnist_c:.4f} | 10 epochs | "
        f"{machine(default['hardware'])} | `lightning-digits fit --seed_everything SEED` |",
        f"| fast preset, seeds {seeds(fast['runs'])} | {spread([run['test_accuracy'] for run in fast['runs']])} | "
        f"{_seconds(fast['runs'])} | {machine(fast['hardware'])}, {_load(fast['runs'])} | "
        f"`bench/time_to_accuracy.py -c configs/fast.yaml --seeds {len(fast['runs'])}` |",
        f"| best preset, seeds {seeds(best['runs'])} | {spread([run['best_test_accuracy'] for run in best['runs']])} | "
        f"{_seconds(best['runs'])} | {machine(best['hardware'])}, {_load(best['runs'])} | "
        f"`bench/time_to_accuracy.py -c configs/best.yaml --seeds {len(best['runs'])}` |",
    ]
    return "\n".join(rows) + "\n"


def page_augmentation(record: dict, validation_cost: float = 0.0015, gain: float = 0.005) -> str:
    """One change at a time against the baseline, with the rule's verdict (results.md states the rule)."""
    base = record["runs"][0]
    rows = [
        "| change | validation | choosing mean | canny edges | zigzag | worst corruption | kept by the rule |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for run in record["runs"]:
        validation, mean = run["clean"]["network"], run["mean"]["network"]
        if run is base:
            verdict = ""
        elif mean - base["mean"]["network"] < gain:
            verdict = "no: gains less than 0.5 point"
        elif base["clean"]["network"] - validation > validation_cost:
            verdict = f"no: costs {100 * (base['clean']['network'] - validation):.2f} point"
        else:
            verdict = "passes"
        corruptions = run["corruptions"]
        change = run["change"] if run is base else f"`{run['change']}`"
        rows.append(
            f"| {change} | {validation:.4f} | {mean:.4f} | {corruptions['canny_edges']['network']:.4f} | "
            f"{corruptions['zigzag']['network']:.4f} | {run['worst']['corruption'].replace('_', ' ')} "
            f"{run['worst']['network']:.3f} | {verdict} |"
        )
    rows.append("")
    rows.append(
        f"From `docs/results/page_augmentation_round2.json`: `{record['baseline']}` plus the change, then "
        f"`{record['measure']}`; {machine(record['hardware'])}."
    )
    return "\n".join(rows) + "\n"


def styles_round(record: dict, validation_cost: float = 0.0015, gain: float = 0.005, mean_cost: float = 0.005) -> str:
    """The style digits' weights against the baseline, with the rule's verdict (results.md states the rule)."""
    base, *changes = record["runs"]
    verdicts = {id(base): ""}
    kept = None  # the changes go by rising weight: a heavier one that passes is kept only by gaining more
    for run in changes:
        if run["ood"]["choose"] - base["ood"]["choose"] < gain:
            verdicts[id(run)] = "no: raises the choose part less than 0.5 point"
        elif base["validation"] - run["validation"] > validation_cost:
            verdicts[id(run)] = f"no: costs {100 * (base['validation'] - run['validation']):.2f} point of validation"
        elif base["choosing_mean"] - run["choosing_mean"] > mean_cost:
            verdicts[id(run)] = f"no: costs {100 * (base['choosing_mean'] - run['choosing_mean']):.2f} point of MNIST-C"
        elif kept is not None and run["ood"]["choose"] - kept["ood"]["choose"] < gain:
            verdicts[id(run)] = f"passes, but adds less than 0.5 point to `{kept['change']}` on the choose part"
        else:
            if kept is not None:
                verdicts[id(kept)] = f"passes, but `{run['change']}` adds another 0.5 point on the choose part"
            verdicts[id(run)], kept = "**kept**", run
    rows = [
        "| change | validation | MNIST-C choosing mean | OOD choose | (OOD report, not used) | MNIST test | fit s | "
        "kept by the rule |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for run in record["runs"]:
        change = run["change"] if run is base else f"`{run['change']}`"
        rows.append(
            f"| {change} | {run['validation']:.4f} | {run['choosing_mean']:.4f} | {run['ood']['choose']:.4f} | "
            f"{run['ood']['report']:.4f} | {run['mnist_test']:.4f} | {run['fit_seconds']:.0f} | {verdicts[id(run)]} |"
        )
    rows.append("")
    rows.append(
        f"From `docs/results/styles_round.json`: `{record['baseline']}` plus the change, then "
        f"{' and '.join(f'`{m}`' for m in record['measure'])}; {machine(record['hardware'])}, "
        f"load {record['load']}."
    )
    return "\n".join(rows) + "\n"


RENDERERS = {  # block name -> (its JSON source in SOURCES, or several by the renderer's names; the renderer)
    "committed-model": ("summary", committed_model),
    "committed-training": ("summary", committed_training),
    "hands": ("hands", hands),
    "adapt-choice": ("adapt-choice", adapt_choice),
    "default-config": ("default-config", default_config),
    "default-config-sentence": ("default-config", default_config_sentence),
    "committed-mnist-c": ("committed-mnist-c", committed_mnist_c),
    "headline": ({"default": "default-config", "fast": "fast-preset", "best": "best-preset"}, headline),
    "page-augmentation-round2": ("page-augmentation-round2", page_augmentation),
    "styles-round": ("styles-round", styles_round),
    "accuracy-goals": (
        {
            "best": "best-preset",
            "ensemble": "best-ensemble",
            "fast": "fast-preset",
            "distilled": "fast-distilled",
            "fast_fp32": "fast-preset-fp32",
            "diverse": "diverse-ensemble",
            "distill": "distill-diverse",
            "fast_long": "fast-long",
        },
        accuracy_goals,
    ),
    "distill-choice": ({"distill": "distill-diverse", "diverse": "diverse-ensemble"}, distill_choice),
    "best-candidates": ("best-candidates", best_candidates),
}


def render(text: str, sources: dict[str, dict]) -> str:
    """`text` with every block rendered from `sources` (SOURCES' names -> their JSON)."""

    def replace(match: re.Match) -> str:
        source, renderer = RENDERERS[match["name"]]
        names = {source: source} if isinstance(source, str) else source  # one JSON, or a renderer's key -> JSON
        for name in names.values():
            if name not in sources:
                raise SystemExit(f"the block {match['name']!r} is rendered from {SOURCES[name]}, which does not exist")
        data = sources[source] if isinstance(source, str) else {key: sources[name] for key, name in names.items()}
        return f"{match.group(1)}{renderer(data)}{match.group(4)}"

    return BLOCK.sub(replace, text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report blocks that differ from their JSON")
    args = parser.parse_args(argv)
    sources = {name: json.loads(path.read_text()) for name, path in SOURCES.items() if path.is_file()}
    stale = []
    for target in TARGETS:
        text = target.read_text()
        rendered = render(text, sources)
        if rendered != text:
            stale.append(target.relative_to(REPO))
            if not args.check:
                target.write_text(rendered)
    if args.check and stale:
        names = ", ".join(map(str, stale))
        print(
            f"{names}: tables differ from their JSON ({', '.join(str(p.relative_to(REPO)) for p in SOURCES.values())})"
            "; run python tools/render_figures.py"
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
