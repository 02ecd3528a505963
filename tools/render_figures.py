"""Render the tables of README.md and docs/ that a JSON file of the repository records, so that the two can
never disagree: the committed model's table and training time come from artifacts_digits/summary.json, which
`evaluate` writes.

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
TARGETS = [REPO / "README.md", REPO / "docs" / "results.md", REPO / "docs" / "benchmarks.md"]
BLOCK = re.compile(r"(<!-- figures: (?P<name>[a-z-]+) -->\n)(?P<body>.*?)(<!-- /figures -->)", re.S)


def machine(hardware: dict) -> str:
    """'Intel(R) Xeon(R) Processor', 2 cores, no GPU -> 'Intel Xeon, 2 cores'."""
    cpu = re.sub(r"\((R|TM)\)|\bProcessor\b|\bCPU\b", "", hardware["cpu"])
    cpu = re.sub(r"\s+", " ", cpu).strip()
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


RENDERERS = {"committed-model": committed_model, "committed-training": committed_training}


def render(text: str, summary: dict) -> str:
    def replace(match: re.Match) -> str:
        body = RENDERERS[match["name"]](summary)
        return f"{match.group(1)}{body}{match.group(4)}"

    return BLOCK.sub(replace, text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report blocks that differ from their JSON")
    args = parser.parse_args(argv)
    summary = json.loads(SUMMARY.read_text())
    stale = []
    for target in TARGETS:
        text = target.read_text()
        rendered = render(text, summary)
        if rendered != text:
            stale.append(target.relative_to(REPO))
            if not args.check:
                target.write_text(rendered)
    if args.check and stale:
        names = ", ".join(map(str, stale))
        print(f"{names}: tables differ from {SUMMARY.relative_to(REPO)}; run python tools/render_figures.py")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
