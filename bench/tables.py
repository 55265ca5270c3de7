"""The README's robustness and mixture tables, printed as Markdown from the committed results/bench/*.json, so that
the README quotes what the benchmarks wrote and nothing else.

    python bench/tables.py
"""

from __future__ import annotations

import json

from common import RESULTS


def robustness() -> str:
    rows = json.loads((RESULTS / "robustness.json").read_text())["rows"]
    recipes = list(dict.fromkeys(r["recipe"] for r in rows))
    folds = {r["recipe"]: r["folds"] for r in rows}
    conditions = list(dict.fromkeys(r["condition"] for r in rows))
    cell = {(r["recipe"], r["condition"]): r for r in rows}
    lines = ["| condition | " + " | ".join(f"{name}, folds {folds[name]}" for name in recipes) + " |",
             "|---|" + "---:|" * len(recipes)]
    for condition in conditions:
        values = []
        for name in recipes:
            r = cell.get((name, condition))
            values.append("-" if r is None else f"{100 * r['accuracy']:.1f}" if condition == "clean" else
                          f"{100 * r['accuracy']:.1f} ({100 * r['vs_clean']:+.1f})")
        lines.append(f"| {condition} | " + " | ".join(values) + " |")
    lines += ["", "| condition (clean, and 5 points or more below it) | recipe | most often wrong (share wrong) |",
              "|---|---|---|"]
    lines += [f"| {r['condition']} | {r['recipe']} | {r['worst']} |" for r in rows
              if "worst" in r and (r["condition"] == "clean" or r["vs_clean"] <= -0.05)]
    return "\n".join(lines)


def mixtures() -> str:
    rows = json.loads((RESULTS / "mixtures.json").read_text())["rows"]
    lines = ["| recipe | folds | second clip | both above threshold | both in top 2 | first found | second found | "
             "others above | mAP |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['recipe']} | {r['folds']} | {r['level_db']:+.0f} dB | {100 * r['both_above']:.1f} % | "
                     f"{100 * r['both_top2']:.1f} % | {100 * r['first']:.1f} % | {100 * r['second']:.1f} % | "
                     f"{r['others_above']:.2f} | {r['mAP']:.3f} |")
    lines += ["", "| recipe | second clip | least heard (share missing from the top 2) | masking (share of partners "
              "missing) |", "|---|---:|---|---|"]
    lines += [f"| {r['recipe']} | {r['level_db']:+.0f} dB | {r['least_heard']} | {r['masking']} |"
              for r in rows if "least_heard" in r]
    return "\n".join(lines)


if __name__ == "__main__":
    print(robustness(), mixtures(), sep="\n\n")
