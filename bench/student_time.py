"""Train one experiment student in this process, one thread, and print a JSON line: seconds of the
training loop, per step, and the process's minor page faults (the cost the student workers avoid by
keeping freed memory in the heap, experiment.students._keep_freed_memory).

    python bench/student_time.py TABLE [--steps 600] [--batch 128] [--heap keep|default] [--model clipcov-tiny]

TABLE: a pairs.tsv with absolute image paths (e.g. a subset the experiment wrote, runs/*/subsets/*.tsv).
"""
import argparse
import json
import os
import resource
import tempfile
import time

os.environ["OMP_NUM_THREADS"] = "1"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("table")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--heap", choices=("keep", "default"), default="keep")
    p.add_argument("--model", default="clipcov-tiny")
    args = p.parse_args()

    import open_clip_train.main as ocm
    import torch

    from clipcov_fast.experiment import students
    from clipcov_fast.training import train

    torch.set_num_threads(1)
    if args.heap == "keep":
        students._keep_freed_memory()
    loop = {}
    original = ocm.train_one_epoch

    def timed(*a, **k):  # the training loop alone: no imports, no model construction, no checkpoint
        faults, t = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
        out = original(*a, **k)
        loop.update(seconds=time.perf_counter() - t, faults=resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults)
        return out

    ocm.train_one_epoch = timed
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        train.train(args.table, args.model, f"{tmp}/run", steps=args.steps, batch_size=args.batch, seed=0, threads=1,
                    log_every=10 ** 6)
        total = time.perf_counter() - t
    print(json.dumps({"model": args.model, "steps": args.steps, "batch": args.batch, "heap": args.heap,
                      "loop_s": round(loop["seconds"], 2), "per_step_ms": round(1000 * loop["seconds"] / args.steps, 1),
                      "loop_minor_faults": loop["faults"], "train_total_s": round(total, 2)}))


if __name__ == "__main__":
    main()
