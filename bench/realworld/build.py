"""Rebuild the real-recordings benchmark's audio from manifest.csv: every file from its public repository at the
pinned commit, checked against its sha256. Audio is never committed; this script is how anyone gets it.

    python bench/realworld/build.py                           # git: a blob-less clone of each repository
    python bench/realworld/build.py --mirrors /work/.mirror   # local bare mirrors named owner+name[/repo]

Writes DATA/<source>/<sha256[:12]>.<ext> and DATA/index.csv (the manifest's rows with their local `file`). Files
that cannot be had are listed and the script exits 1; the rest are still written.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import subprocess
import sys
from pathlib import Path

from tqdm import tqdm

HERE = Path(__file__).resolve().parent


def read_manifest(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def git_dir(repo: str, mirrors: Path | None, clones: Path) -> Path:
    """A git directory holding `repo`'s history: a local mirror (bare, or a clone's .git, under owner+name or
    owner+name/repo), else a blob-less clone made once into `clones`."""
    if mirrors is not None:
        mirror = mirrors / repo.replace("/", "+")
        for candidate in (mirror / "repo" / ".git", mirror / "repo", mirror):
            if (candidate / "HEAD").is_file():
                return candidate
    target = clones / repo.replace("/", "+")
    if not (target / "HEAD").is_file():
        subprocess.run(["git", "clone", "--quiet", "--bare", "--filter=blob:none", f"https://github.com/{repo}",
                        str(target)], check=True)
    return target


def blob(git: Path, commit: str, path: str) -> bytes:
    return subprocess.run(["git", "--git-dir", str(git), "show", f"{commit}:{path}"], capture_output=True,
                          check=True).stdout


def local_name(row: dict) -> str:
    source = row["source"].replace("/", "+").replace(":", "-")
    return f"{source}/{row['sha256'][:12]}{Path(row['path']).suffix.lower()}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", type=Path, default=HERE / "manifest.csv")
    parser.add_argument("--out", type=Path, default=Path("data/realworld"), help="(default: %(default)s)")
    parser.add_argument("--mirrors", type=Path, help="folder of local bare mirrors, named owner+name")
    args = parser.parse_args()
    rows = read_manifest(args.manifest)
    clones = args.out / ".git-clones"
    failed, written = [], []
    for row in tqdm(rows, desc="real recordings", unit="file"):
        target = args.out / local_name(row)
        try:
            if not (target.is_file() and hashlib.sha256(target.read_bytes()).hexdigest() == row["sha256"]):
                data = blob(git_dir(row["repo"], args.mirrors, clones), row["commit"], row["path"])
                if hashlib.sha256(data).hexdigest() != row["sha256"]:
                    raise ValueError("sha256 differs from the manifest's")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            written.append({**row, "file": str(target.relative_to(args.out))})
        except (subprocess.CalledProcessError, OSError, ValueError) as err:
            failed.append(f"{row['repo']}@{row['commit'][:10]}:{row['path']}: {err}")
    if written:
        with (args.out / "index.csv").open("w", newline="") as f:
            writer = csv.DictWriter(f, list(written[0]))
            writer.writeheader()
            writer.writerows(written)
    print(f"{len(written)} of {len(rows)} recordings in {args.out}")
    for line in failed:
        print(f"missing: {line}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
