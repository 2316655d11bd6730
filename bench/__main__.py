"""`make bench`: runs every benchmark script in this folder, in name order.

Each script measures its own baseline in the same run and prints medians; results worth keeping
are recorded in docs/benchmarks.md with the command that produced them.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path


def main() -> int:
    scripts = sorted(Path(__file__).parent.glob("bench_*.py"))
    if not scripts:
        print("no benchmarks yet", file=sys.stderr)
        return 1
    for script in scripts:
        print(f"== {script.stem}", flush=True)
        runpy.run_path(str(script), run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
