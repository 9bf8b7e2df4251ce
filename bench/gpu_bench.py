"""GPU benchmarks of clipcov_fast.select (driven by bench/gpu_check.sh).

Cases (d = 512, Zipf(0.5) class sizes over 1,000 classes, k = 10%, default weights and threshold):
  n1m   1,000,000 rows float32: CUDA backend and the CPU backend on the same machine, same indices?
  cc3m  2,840,000 rows float32 (inputs already on the GPU)
  cc12m 12,000,000 rows float16 (inputs already on the GPU, 24 GB)
Synthetic data is made on the GPU with torch. Each case writes OUT/<case>.json; --table prints the
summary of the JSON files found in OUT. Floors: the coverage flops (sum over classes of 2 n_c^2 d)
over the card's FP32 rate, and the input bytes over its memory bandwidth.
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

CASES = {"n1m": (1_000_000, "float32", True), "cc3m": (2_840_000, "float32", False),
         "cc12m": (12_000_000, "float16", False)}
D, CLASSES, FRACTION = 512, 1000, 0.1
# H100 SXM: FP32 (non-tensor) about 67 TFLOP/s, HBM3 about 3.35 TB/s; H200: same FP32, 4.8 TB/s.
PEAKS = {"H100": (67e12, 3.35e12), "H200": (67e12, 4.8e12)}


def zipf_labels(n, seed):
    p = 1.0 / np.arange(1, CLASSES + 1) ** 0.5
    sizes = np.floor(n * p / p.sum()).astype(np.int64)
    sizes[: n - sizes.sum()] += 1
    return np.random.default_rng(seed).permutation(np.repeat(np.arange(CLASSES), sizes)), sizes


def make_inputs(n, dtype, seed):
    import torch

    g = torch.Generator(device="cuda").manual_seed(seed)
    dt = getattr(torch, dtype)
    A = torch.empty((n, D), dtype=dt, device="cuda")
    B = torch.empty((n, D), dtype=dt, device="cuda")
    step = 1 << 20
    for s in range(0, n, step):  # float32 work in chunks, stored in the case's dtype
        a = torch.randn((min(step, n - s), D), generator=g, device="cuda")
        A[s:s + len(a)] = a.to(dt)
        B[s:s + len(a)] = (0.5 * a + torch.randn(a.shape, generator=g, device="cuda")).to(dt)
    torch.cuda.synchronize()
    return A, B


def run_case(name, out):
    import torch

    import clipcov_fast

    n, dtype, with_cpu = CASES[name]
    y, sizes = zipf_labels(n, seed=1)
    A, B = make_inputs(n, dtype, seed=2)
    card = torch.cuda.get_device_name()
    flops = float(np.sum(2.0 * sizes.astype(np.float64) ** 2 * D))
    in_bytes = 2 * n * D * A.element_size()
    rate, bw = next((v for key, v in PEAKS.items() if key in card), PEAKS["H100"])
    floor = max(flops / rate, in_bytes / bw)
    res = {"case": name, "card": card, "n": n, "d": D, "dtype": dtype, "classes": CLASSES, "k": int(FRACTION * n),
           "coverage_flop": flops, "input_bytes": in_bytes, "floor_s": floor,
           "floor_basis": f"max(flop / {rate:.3g} FLOP/s FP32, bytes / {bw:.3g} B/s)"}
    print(f"[{name}] n={n} {dtype} on {card}; floor {floor:.2f} s", flush=True)
    torch.cuda.reset_peak_memory_stats()
    torch.cuda.synchronize()
    t = time.perf_counter()
    sel = clipcov_fast.select(A, B, FRACTION, labels=y, device="cuda")
    res["gpu_s"] = time.perf_counter() - t
    res["gpu_timings"] = sel.timings
    res["gpu_F"] = sel.objective
    res["device_peak_bytes"] = int(sel.device_peak_bytes + torch.cuda.max_memory_allocated())
    res["times_floor"] = res["gpu_s"] / floor
    print(f"[{name}] GPU {res['gpu_s']:.2f} s ({sel.timings}); peak device memory "
          f"{res['device_peak_bytes'] / 2**30:.1f} GiB", flush=True)
    if with_cpu:
        Ah, Bh = A.cpu().numpy(), B.cpu().numpy()
        del A, B
        torch.cuda.empty_cache()
        t = time.perf_counter()
        cpu = clipcov_fast.select(Ah, Bh, FRACTION, labels=y, device="cpu")
        res["cpu_s"] = time.perf_counter() - t
        res["cpu_threads"] = len(os.sched_getaffinity(0))
        res["speedup"] = res["cpu_s"] / res["gpu_s"]
        res["same_indices"] = bool(np.array_equal(cpu.indices, sel.indices))
        res["same_set_fraction"] = float(len(np.intersect1d(cpu.indices, sel.indices)) / max(1, len(cpu.indices)))
        res["F_rel_diff"] = abs(cpu.objective - sel.objective) / abs(cpu.objective)
        print(f"[{name}] CPU {res['cpu_s']:.2f} s, speedup {res['speedup']:.1f}x, same indices {res['same_indices']}",
              flush=True)
    Path(out, f"{name}.json").write_text(json.dumps(res, indent=2, default=float))


def table(out):
    rows = [json.loads(p.read_text()) for p in sorted(Path(out).glob("*.json"))]
    print(f"{'case':6} {'card':24} {'n':>10} {'dtype':8} {'GPU s':>7} {'floor s':>8} {'x floor':>8} "
          f"{'peak GiB':>8} {'CPU s':>7} {'speedup':>8} {'same idx':>8}")
    for r in rows:
        print(f"{r['case']:6} {r['card'][:24]:24} {r['n']:>10} {r['dtype']:8} {r['gpu_s']:7.2f} {r['floor_s']:8.2f} "
              f"{r['times_floor']:8.1f} {r['device_peak_bytes'] / 2**30:8.1f} {r.get('cpu_s', float('nan')):7.2f} "
              f"{r.get('speedup', float('nan')):8.1f} {str(r.get('same_indices', '-')):>8}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", choices=sorted(CASES))
    ap.add_argument("--table", action="store_true")
    ap.add_argument("--out", default="bench/results/gpu")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    if args.table:
        table(args.out)
    elif args.case:
        run_case(args.case, args.out)
    else:
        sys.exit("give --case or --table")
