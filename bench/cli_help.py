"""How fast the command line answers: ``grutune --help``, ``grutune tune --help`` and
``grutune --version``, wall time of a fresh process (what a user waits for).

Each command runs ``--runs`` times in a new interpreter, one after the other (run it on
an otherwise idle machine); the first run of each is a warm-up (bytecode, disk cache) and
is not counted. Prints the median, the fastest and the slowest, the command that
reproduces each figure, and as the last line a JSON object.

    python bench/cli_help.py                      # the installed `grutune` command
    python bench/cli_help.py --runs 11
    python bench/cli_help.py --src /tmp/before    # a copy of another version's source
                                                  # tree (its grutune/ folder) instead
    python bench/cli_help.py --predict runs/gas/model gas.csv   # also time a prediction
                                                  # (a bundle and rows to predict)

``--src DIR`` puts DIR first on PYTHONPATH, so ``DIR/grutune`` is imported in place of
the installed package: how a before/after comparison is made (copy ``grutune/`` aside
before a change, then run this once with ``--src`` and once without).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMANDS = (["--help"], ["tune", "--help"], ["--version"])


def grutune_command() -> list[str]:
    """The console script next to this interpreter (the venv's), else ``python -m``."""
    script = Path(sys.executable).parent / "grutune"
    if script.is_file():
        return [str(script)]
    found = shutil.which("grutune")
    return [found] if found else [sys.executable, "-m", "grutune"]


def measure(command: list[str], runs: int, env: dict, cwd: str) -> list[float] | str:
    """Wall seconds of ``runs`` fresh processes (after one uncounted warm-up), or why the
    command failed (an older version without ``--version``)."""
    times = []
    for i in range(runs + 1):
        start = time.perf_counter()
        proc = subprocess.run(command, env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
        took = time.perf_counter() - start
        if proc.returncode != 0:
            return f"exit code {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}"
        if i:
            times.append(took)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="counted runs per command")
    parser.add_argument("--src", type=Path, help="a folder holding another grutune/ "
                        "source tree to measure instead of the installed one")
    parser.add_argument("--predict", nargs=2, metavar=("MODEL", "ROWS"), type=Path,
                        help="also time `grutune predict MODEL ROWS` (the rows' table "
                        "printed to a discarded standard output)")
    args = parser.parse_args()
    env = {**os.environ, "COLUMNS": "100"}
    prefix = ""
    if args.src:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(args.src.resolve()),
                                                         env.get("PYTHONPATH")]))
        prefix = f"PYTHONPATH={args.src} "
    base = grutune_command()
    where = args.src.resolve() / "grutune" if args.src else None
    cwd = tempfile.mkdtemp()  # no grutune/ folder of the current directory in the way
    check = subprocess.run([sys.executable, "-c", "import grutune; print(grutune.__file__)"],
                           env=env, cwd=cwd, capture_output=True, text=True,
                           check=True).stdout.strip()
    if where and not check.startswith(str(where)):
        sys.exit(f"--src {args.src}: grutune is imported from {check}, not {where}")
    print(f"grutune imported from {check}; {args.runs} runs each after a warm-up; "
          f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs\n")
    results = {}
    commands = list(COMMANDS)
    if args.predict:
        commands.append(["predict", *(str(p.resolve()) for p in args.predict)])
    for words in commands:
        times = measure([*base, *words], args.runs, env, cwd)
        name = "grutune " + " ".join(words)
        if isinstance(times, str):
            results[name] = {"failed": times}
            print(f"{name:<22} failed ({times})")
            continue
        results[name] = {"median_s": round(statistics.median(times), 3),
                         "min_s": round(min(times), 3), "max_s": round(max(times), 3),
                         "runs": len(times)}
        print(f"{name:<22} median {statistics.median(times):6.3f} s   "
              f"(min {min(times):.3f}, max {max(times):.3f})   "
              f"reproduce: {prefix}{' '.join(base)} {' '.join(words)}")
    print(json.dumps({"source": check, "results": results}))


if __name__ == "__main__":
    main()
