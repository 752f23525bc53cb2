"""Run every benchmark and print a table: ours, the baseline measured in the same run, target.

python bench/run.py            # all rows
python bench/run.py commit     # only the rows whose name starts with "commit"
python bench/run.py daemon     # the real daemon (MDBACKUP_BENCH_IDLE=10 for a short idle window)
python bench/run.py workloads  # issue 11's workloads W1-W3 and idle (full scale, ~10 min)
python bench/run.py --quick workloads   # smaller N (or MDBACKUP_BENCH_QUICK=1), ~3 min
python bench/run.py sync       # two machines syncing (MDBACKUP_BENCH_SYNC_EDITS=20 for a short run)
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import bench_commit, bench_daemon, bench_push, bench_sync, bench_workloads
from bench.common import Row

SUITES = {
    "commit": bench_commit.run,
    "push": bench_push.run,
    "daemon": bench_daemon.run,
    "workloads": bench_workloads.run,
    "sync": bench_sync.run,
}


def main(argv: list[str]) -> int:
    if "--quick" in argv:
        os.environ[bench_workloads.QUICK_ENV] = "1"
        argv = [a for a in argv if a != "--quick"]
    chosen = [name for name in SUITES if not argv or name in argv]
    rows: list[Row] = []
    for name in chosen:
        with tempfile.TemporaryDirectory(prefix=f"mdbackup-bench-{name}-") as tmp:
            print(f"running {name} ...", file=sys.stderr, flush=True)
            rows.extend(SUITES[name](Path(tmp)))
    fields = ("name", "ours", "baseline", "target", "verdict")
    table = [Row("benchmark", "mdbackup", "baseline", "target", "verdict"), *rows]
    widths = [max(len(getattr(r, f)) for r in table) for f in fields]
    for row in table:
        print("  ".join(getattr(row, f).ljust(w) for f, w in zip(fields, widths, strict=True)))
    return 0 if all(not r.verdict.startswith("FAIL") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
