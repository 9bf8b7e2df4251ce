"""One measurement of the field's selectors in this (fresh) process; prints a JSON line.

    python bench/field_measure.py negclip-ours N D BATCH REPEATS THREADS
    python bench/field_measure.py negclip-torch N D BATCH REPEATS THREADS   # the anchor's way, per batch
    python bench/field_measure.py sgemm B D THREADS                         # this machine's SGEMM rate
    python bench/field_measure.py image-based N D CLUSTERS THREADS
    python bench/field_measure.py write-pool OUT N D PARTS    # a clip-retrieval-layout pool, fp16, streamed
    python bench/field_measure.py pool-scores METHOD POOL WORKERS   # the local engine on that pool, k = 10%

negclip-torch is how the research code computes a batch (ypwang61/negCLIPLoss_NormSim): one matmul of the
whole batch x batch block in float32, then logsumexp by rows and by columns. Peak memory is the process's
maximum RSS (getrusage). Inputs are seeded Gaussian rows (the timing does not depend on the values).
"""
import json
import os
import resource
import sys
import time

import numpy as np


def rows(n, d, seed):
    x = np.random.default_rng(seed).standard_normal((n, d), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def peak_gb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def negclip_ours(n, d, batch, repeats, threads):
    from clipcov_fast import baselines

    A, B = rows(n, d, 0), rows(n, d, 1)
    base = peak_gb()
    t0 = time.perf_counter()
    baselines.negclip_loss_scores(A, B, batch_size=batch, repeats=repeats, num_threads=threads)
    return time.perf_counter() - t0, base


def negclip_torch(n, d, batch, repeats, threads, t=0.01):
    import torch

    torch.set_num_threads(threads)
    A, B = rows(n, d, 0), rows(n, d, 1)
    base = peak_gb()
    t0 = time.perf_counter()
    total = np.zeros(n)
    with torch.no_grad():
        for r in range(repeats):
            perm = np.random.default_rng([0, r]).permutation(n)
            for s in range(0, n, batch):
                idx = perm[s:s + batch]
                a, b = torch.from_numpy(A[idx]), torch.from_numpy(B[idx])
                S = a @ b.T / t
                score = torch.diagonal(S) * t - t / 2 * (torch.logsumexp(S, 1) + torch.logsumexp(S, 0))
                total[idx] += score.numpy()
                del S
    return time.perf_counter() - t0, base


def write_pool(out, n, d, parts):
    """img_emb/img_emb_P.npy and text_emb/text_emb_P.npy (fp16, clip-retrieval's layout), part by part."""
    from pathlib import Path

    out = Path(out)
    for sub in ("img_emb", "text_emb"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    for p, part in enumerate(np.array_split(np.arange(n), parts)):
        rng = np.random.default_rng([3, p])
        for sub, name in (("img_emb", "img_emb"), ("text_emb", "text_emb")):
            x = rng.standard_normal((len(part), d), dtype=np.float32)
            np.save(out / sub / f"{name}_{p}.npy", (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float16))


def pool_scores(method, pool_dir, workers):
    """select_scores on the local engine: seconds, the driver's and the largest worker's peak RSS (VmHWM)."""
    import tempfile

    from clipcov_fast.pipeline.sources import open_pool
    from clipcov_fast.scale import select_scores
    from scale_measure import ChildPeaks, _status

    pool = open_pool(clip_retrieval=pool_dir)
    params = {"target": rows(10_000, pool.d, 5)} if method == "normsim" else {}
    peaks = ChildPeaks()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=os.environ.get("CLIPCOV_BENCH_WORK")) as work:
        sel = select_scores(pool, 0.1, method, params, engine="local", work_dir=work, workers=workers)
    seconds = time.perf_counter() - t0
    peaks.stop()
    return {"method": method, "n": pool.n, "d": pool.d, "seconds": seconds, "plan_s": sel.timings["plan"],
            "driver_peak_gb": _status("VmHWM") / 2**30, "worker_peak_gb": peaks.peak / 2**30, "k": len(sel)}


def flop(n, batch, d, repeats):
    sizes = [min(batch, n - s) for s in range(0, n, batch)]
    return float(repeats * sum(2 * b * b * d for b in sizes))


def main():
    what, *args = sys.argv[1:]
    args = [int(a) if a.isdigit() else a for a in args]
    out = {"case": what, "args": args, "cpu": os.cpu_count()}
    if what in ("negclip-ours", "negclip-torch"):
        n, d, batch, repeats, threads = args
        seconds, base = (negclip_ours if what == "negclip-ours" else negclip_torch)(n, d, batch, repeats, threads)
        out.update(seconds=seconds, peak_gb=peak_gb(), inputs_gb=base, gflops=flop(n, batch, d, repeats) / seconds / 1e9)
    elif what == "sgemm":
        from clipcov_fast import _core

        b, d, threads = args
        A, B = rows(b, d, 0), rows(b, d, 1)
        best = []
        for _ in range(2):  # the tiles alone (no reduction): the primitive's SGEMM floor, 256 x 256 tiles
            t0 = time.perf_counter()
            _core.reduce_block(A, B, threads=threads)
            best.append(time.perf_counter() - t0)
        out.update(seconds=min(best), gflops=2.0 * b * b * d / min(best) / 1e9)
        import torch  # and one large torch SGEMM of 8192 rows against the block's columns

        torch.set_num_threads(threads)
        a, bb = torch.from_numpy(A[:8192]), torch.from_numpy(B)
        a @ bb.T
        t0 = time.perf_counter()
        a @ bb.T
        out["torch_gflops"] = 2.0 * 8192 * b * d / (time.perf_counter() - t0) / 1e9
    elif what == "image-based":
        from clipcov_fast import baselines

        n, d, clusters, threads = args
        A = rows(n, d, 0)
        G = rows(1000, d, 2)
        t0 = time.perf_counter()
        kept = baselines.image_based(A, target=G, n_clusters=clusters, num_threads=threads)
        out.update(seconds=time.perf_counter() - t0, peak_gb=peak_gb(), kept=int(len(kept)))
    elif what == "write-pool":
        write_pool(sys.argv[2], *args[1:])
        out["args"] = sys.argv[2:]
    elif what == "pool-scores":
        out.update(pool_scores(sys.argv[2], sys.argv[3], int(sys.argv[4])))
        out["args"] = sys.argv[2:]
    else:
        raise SystemExit(f"unknown case {what!r}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
