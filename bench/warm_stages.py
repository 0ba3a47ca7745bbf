"""A warm start's stages in process, code against code (issue 11 item 4).

``python -m bench.warm_stages --snapshot F --code BASE,CAND [--repeat N]``

Each run is a fresh process in the tree it measures (``--code``: tree
directories, interleaved BASE, CAND, BASE, CAND ...), timing in CPU-s what
``attribution serve`` does from its spawn to answering from a snapshot:
importing the service, then ``load_snapshot`` stage by stage (the file read
and checked, each step of the format 2 loader's ``Loaded``, the commit), and
``gc.freeze``. Stages are timed by wrapping the loader's methods, so the same
child script measures any tree whose loader has them (a stage a tree lacks is
left out). Prints per-stage medians per code, then a JSON line per run.
``bench.restart --routers 16`` gives the same start through a real service.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

STAGES = ["_paths", "_lists", "_cores", "_sets", "_pathsets", "_entries", "_family"]


def child(snapshot: str) -> dict:
    """One warm start's stages, in this process (cwd: the tree measured)."""
    out: dict[str, float] = {}
    t0 = time.process_time()
    import attribution.service as service  # the service's imports, as serve pays them

    out["import"] = time.process_time() - t0
    import gc

    import ribd.snapshot as snapshot_mod
    import ribd.snapshot_format as fmt
    import ribd.snapshot_v2_load as v2
    from ribd.rib import Rib

    def timed(owner: object, name: str, key: str) -> None:
        inner = getattr(owner, name)

        def wrapper(*args, **kwargs):
            t = time.process_time()
            try:
                return inner(*args, **kwargs)
            finally:
                out[key] = out.get(key, 0.0) + time.process_time() - t

        setattr(owner, name, wrapper)

    for name in STAGES:
        if hasattr(v2.Loaded, name):
            timed(v2.Loaded, name, name.lstrip("_"))
    timed(snapshot_mod, "unpack", "unpack")  # checksum and inflate
    timed(snapshot_mod, "commit", "commit")
    del fmt
    service.tune_gc()
    gc.disable()
    rib = Rib()
    t = time.process_time()
    snapshot_mod.load_snapshot(rib, snapshot, hold_time=600.0)
    out["load_snapshot"] = time.process_time() - t
    gc.enable()
    t = time.process_time()
    gc.freeze()
    out["freeze"] = time.process_time() - t
    out["total"] = time.process_time() - t0
    out["prefixes"] = sum(len(t.store) for t in rib.tables.values())
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--snapshot", required=True)
    p.add_argument("--code", help="tree directories, comma-separated (default: this tree)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args.snapshot)))
        return
    trees = [os.path.abspath(c) for c in (args.code or os.getcwd()).split(",")]
    runs: dict[str, list[dict]] = {t: [] for t in trees}
    for _ in range(args.repeat):
        for tree in trees:
            env = dict(os.environ, PYTHONPATH=tree)
            done = subprocess.run(
                [sys.executable, os.path.abspath(__file__), "--child", "--snapshot", args.snapshot],
                cwd=tree,
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            row = json.loads(done.stdout.strip().splitlines()[-1])
            runs[tree].append(row)
            print(json.dumps({"code": tree, **row}), flush=True)
    keys = [k for k in runs[trees[0]][0] if k != "prefixes"]
    print(f"{'stage (CPU-s, median)':24s}" + "".join(f"{os.path.basename(t):>14s}" for t in trees))
    for k in keys:
        cells = []
        for t in trees:
            vals = [r[k] for r in runs[t] if k in r]
            cells.append(f"{statistics.median(vals):14.3f}" if vals else f"{'-':>14s}")
        print(f"{k:24s}" + "".join(cells))


if __name__ == "__main__":
    main()
