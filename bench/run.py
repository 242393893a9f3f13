"""The whole benchmark suite, one entry point.

    python bench/run.py            # 1M and 10M records, 10M-row manifest (~13 min here)
    python bench/run.py --quick    # 100k records, 200k-row manifest, 1M for threads (~1.5 min)
    python bench/run.py --world    # 130M records numbered by issuance ranges (bench/world.py)

Runs every benchmark script with its data generated on first use (bench/data/) and prints
each one's table (figure, value, baseline, ratio) with the machine and versions.
"""

from __future__ import annotations

import argparse
import datetime as dt
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent


def main() -> None:
    ap = argparse.ArgumentParser(description="sltd benchmark suite")
    ap.add_argument("--quick", action="store_true", help="small sizes, about a minute")
    ap.add_argument("--world", action="store_true",
                    help="only the 130M-record world run (bench/world.py)")
    args = ap.parse_args()
    if args.world:
        runs = [["world.py"]]
    elif args.quick:
        runs = [
            ["check_latency.py", "--sizes", "100000", "--queries", "3000"],
            ["near_miss.py", "--sizes", "100000", "--queries", "1000", "--brute", "5"],
            ["workflow.py", "--records", "100000", "--reveals", "100"],
            ["screening.py", "--records", "100000", "--manifest", "200000",
             "--loop-rows", "20000", "--near-rows", "5000"],
            ["threads.py", "--quick"],
            ["migrate.py", "--records", "100000"],
            ["load.py", "--sizes", "100000"],
            ["feed.py", "--records", "100000"],
            ["sealed.py", "--records", "100000", "--queries", "2000"],
        ]
    else:
        runs = [
            ["check_latency.py"],
            ["near_miss.py", "--queries", "5000"],
            ["workflow.py", "--records", "1000000", "--reveals", "500"],
            ["screening.py"],
            ["threads.py"],
            ["migrate.py"],
            ["load.py"],
            ["feed.py"],
            ["sealed.py"],
        ]
    print(f"sltd benchmark suite, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, "
          f"{'world' if args.world else 'quick' if args.quick else 'full'}")
    start = time.perf_counter()
    for cmd in runs:
        print(f"\n$ python bench/{' '.join(cmd)}", flush=True)
        subprocess.run([sys.executable, str(HERE / cmd[0]), *cmd[1:]], check=True)
    print(f"\nsuite done in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
