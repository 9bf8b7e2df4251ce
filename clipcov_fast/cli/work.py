"""`clipcov work`: run one share of a planned work directory's jobs (a SLURM array task, a Spark job)."""
from ..scale.work import run_shard
from .types import positive_int


def shard_from_text(text):
    """'3/8' -> (3, 8)."""
    try:
        i, n = (int(x) for x in str(text).split("/"))
    except ValueError:
        raise ValueError(f"--shard must look like i/N (e.g. 3/8), got {text!r}") from None
    if not 0 <= i < n:
        raise ValueError(f"--shard must be i/N with 0 <= i < N, got {text!r}")
    return i, n


def cmd_work(args):
    i, n = shard_from_text(args.shard)
    total, ran = run_shard(args.work_dir, i, n, args.num_threads)
    print(f"shard {i}/{n}: {total} jobs, {ran} run, {total - ran} already done in {args.work_dir}")


def register(sub):
    p = sub.add_parser("work", help="run a share of a work directory's class jobs",
                       description="Run the jobs t with t % N == i of a work directory planned by "
                                   "clipcov select --engine local/ray (or scale.plan); finished jobs are "
                                   "skipped. Then clipcov select with the same arguments merges.")
    p.add_argument("--work-dir", required=True)
    p.add_argument("--shard", default="0/1", help="i/N: this task's share (default 0/1: all)")
    p.add_argument("--num-threads", type=positive_int, default=1, help="threads of the engine (default 1)")
    p.set_defaults(func=cmd_work)
