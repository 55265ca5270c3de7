"""QA of a tagged catalog: flag files that hold an unexpected sound, that the model is unsure about or finds
unfamiliar, that could not be read, or whose levels are wrong (silent, clipped, DC offset).

Sounds are judged where they happen: `unexpected` is an event (a sound that reached the model's threshold) of a
label outside the expectation, `unsure` a file where no window names any sound with confidence, and `unfamiliar`
the windows whose audio lies far from anything the model was trained on, reported with their times.

Expectations are a set of labels for every file (`--expect`) and/or a rules file mapping folders to labels:

    # folder (a path fragment, * wildcards allowed): expected labels
    foley/dogs: dog
    ambience/*/rain: rain, water_drops, thunderstorm

`calibrate` gives a model its unfamiliar-audio statistics and threshold from its cross-validation run.
"""

from __future__ import annotations

import csv
import fnmatch
import os
import sqlite3
from contextlib import closing
from dataclasses import dataclass, replace
from pathlib import Path

from soundtag.errors import QAError
from soundtag.library.catalog import CURRENT, current_model, open_catalog, write_atomically

CHECKS = ("unreadable", "unexpected", "unsure", "unfamiliar", "silent", "clipped", "dc_offset")


@dataclass(frozen=True)
class QAConfig:
    """What counts as a problem. `max_ood` None takes the model's own threshold from its ood.safetensors
    (written by `calibrate`; for the shipped model, the 95th percentile of out-of-fold distances)."""

    expect: tuple[str, ...] = ()  # labels allowed in every file (empty: no expectation)
    rules: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (folder pattern, labels); the longest match wins
    unexpected_score: float = 0.0  # an event of a label outside the expectation with at least this peak is flagged
    unsure_score: float | None = None  # a file where no window scores this on any sound is flagged; None: the
    # decision threshold of the model that tagged the catalog (no sound present), 0.3 for catalogs before 0.5
    max_ood: float | None = None  # Mahalanobis distance of a window's embedding from the training clips'
    silence_dbfs: float = -60.0
    max_clipped: float = 0.001  # fraction of samples at full scale
    max_dc_offset: float = 0.01  # |channel mean| relative to full scale (-40 dBFS)


@dataclass(frozen=True)
class Flag:
    path: str
    check: str  # one of CHECKS
    detail: str


def read_rules(path: str | Path) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """`folder: label, label` lines; blank lines and # comments are skipped."""
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise QAError(f"{path}: cannot read the rules file ({err.strerror})") from None
    rules = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        folder, sep, labels = line.partition(":")
        if not sep or not folder.strip() or not labels.strip():
            raise QAError(f"{path}:{number}: expected `folder: label, label`, got {line!r}")
        rules.append((folder.strip().strip("/"), tuple(x.strip() for x in labels.split(",") if x.strip())))
    return tuple(rules)


def expected_labels(path: str, config: QAConfig) -> set[str] | None:
    """The labels a file may contain: `expect` plus its most specific matching rule; None when nothing applies."""
    matches = [(len(folder), labels) for folder, labels in config.rules if fnmatch.fnmatch(path, f"*/{folder}/*")]
    allowed = set(config.expect) | set(max(matches)[1] if matches else ())
    return allowed if config.expect or matches else None


def check_catalog(db: str | Path, config: QAConfig = QAConfig(),
                  under: list[Path] | None = None) -> tuple[list[Flag], int]:
    """Every problem in the catalog (only files under `under`, when given) in path order, and the files checked."""
    with closing(open_catalog(db)) as conn:
        conn.row_factory = sqlite3.Row
        assets = conn.execute(f"SELECT * FROM assets a WHERE {CURRENT} ORDER BY path").fetchall()
        events = _by_asset(conn, "SELECT * FROM events ORDER BY asset_id, score DESC")
        windows = _by_asset(conn, "SELECT * FROM windows WHERE ood IS NOT NULL ORDER BY asset_id, start_s")
        best = dict(conn.execute("SELECT asset_id, score FROM file_tags WHERE rank = 1"))
        if config.unsure_score is None:
            model = current_model(conn)
            config = replace(config, unsure_score=model["threshold"] if model else 0.3)
    if under is not None:
        roots = [os.path.abspath(r) for r in under]  # as the catalog stores them (see `ingest.discover`)
        assets = [a for a in assets if any(a["path"] == r or a["path"].startswith(r.rstrip("/") + "/") for r in roots)]
    flags = []
    for asset in assets:
        flags += _check_asset(asset, events.get(asset["id"], []), windows.get(asset["id"], []),
                              best.get(asset["id"]), config)
    return flags, len(assets)


def _by_asset(conn: sqlite3.Connection, sql: str) -> dict[int, list[sqlite3.Row]]:
    rows: dict[int, list[sqlite3.Row]] = {}
    for row in conn.execute(sql):
        rows.setdefault(row["asset_id"], []).append(row)
    return rows


def _check_asset(asset: sqlite3.Row, events: list[sqlite3.Row], windows: list[sqlite3.Row], best: float | None,
                 config: QAConfig) -> list[Flag]:
    path = asset["path"]
    if asset["status"] == "error":
        return [Flag(path, "unreadable", asset["error"])]
    flags = _level_flags(asset, config)
    if asset["status"] == "silent":
        return flags
    allowed = expected_labels(path, config)
    if allowed is not None:
        seen = {}
        for e in events:  # each unexpected label once, at its strongest event (rows come best first)
            if e["label"] not in allowed and e["score"] >= config.unexpected_score:
                seen.setdefault(e["label"], e)
        flags += [Flag(path, "unexpected", f"{e['label']} {e['score']:.2f} at {e['start_s']:.1f}-{e['end_s']:.1f} s "
                       f"(expected {', '.join(sorted(allowed)) or 'nothing'})") for e in seen.values()]
    if best is not None and best < config.unsure_score:
        flags.append(Flag(path, "unsure", f"no window scores {config.unsure_score} on any sound (best {best:.2f})"))
    far = [w for w in windows if config.max_ood is not None and w["ood"] > config.max_ood]
    if far:
        worst = max(far, key=lambda w: w["ood"])
        flags.append(Flag(path, "unfamiliar", f"{len(far)} of {len(windows)} windows far from the training audio, "
                          f"most at {worst['start_s']:.1f}-{worst['end_s']:.1f} s (distance {worst['ood']:.1f} > "
                          f"{config.max_ood:.1f})"))
    return flags


def _level_flags(asset: sqlite3.Row, config: QAConfig) -> list[Flag]:
    path, flags = asset["path"], []
    measured = asset["rms_dbfs"] is not None  # NULL: catalogued before the level checks existed
    if asset["status"] == "silent" or (measured and asset["rms_dbfs"] < config.silence_dbfs):
        flags.append(Flag(path, "silent", f"RMS {asset['rms_dbfs']:.1f} dBFS" if measured else "below the gate"))
    if measured and asset["clipped"] > config.max_clipped:
        flags.append(Flag(path, "clipped", f"{100 * asset['clipped']:.2f}% of samples at full scale"))
    if measured and asset["dc_offset"] > config.max_dc_offset:
        flags.append(Flag(path, "dc_offset", f"channel mean {asset['dc_offset']:.3f} of full scale"))
    return flags


def write_csv(flags: list[Flag], out: str | Path) -> None:
    with write_atomically(out) as part, part.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "check", "detail"])
        writer.writerows((x.path, x.check, x.detail) for x in flags)
