"""GPU benchmarks of clipcov_fast.select (driven by bench/gpu_check.sh).

Cases (d = 512, Zipf(0.5) class sizes over 1,000 classes, k = 10%, default weights and threshold):
  n1m   1,000,000 rows float32: CUDA backend, then the CPU backend on the same machine with 2 threads
        (the project's 2-core CI machine) and with all cores; same indices?
  cc3m  2,840,000 rows float32 (inputs already on the GPU)
  cc12m 12,000,000 rows float16 (inputs already on the GPU, 24 GB)
Synthetic data is made on the GPU with torch. Each case writes OUT/<case>.json as soon as each of its
figures exists (a later timeout keeps the earlier ones); --extrapolate writes a case that could not
run within its limit from a smaller one, marked as such; --table prints the summary of the JSON
files in OUT. Floors: the coverage flops (sum over classes of 2 n_c^2 d) over the card's FP32 rate,
and the input bytes over its memory bandwidth.
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
CI_THREADS = 2  # the developers' and CI machine: 2 cores
# H100 SXM: FP32 (non-tensor) about 67 TFLOP/s, HBM3 about 3.35 TB/s; H200: same FP32, 4.8 TB/s.
PEAKS = {"H100": (67e12, 3.35e12), "H200": (67e12, 4.8e12)}


def zipf_sizes(n):
    p = 1.0 / np.arange(1, CLASSES + 1) ** 0.5
    sizes = np.floor(n * p / p.sum()).astype(np.int64)
    sizes[: n - sizes.sum()] += 1
    return sizes


def zipf_labels(n, seed):
    sizes = zipf_sizes(n)
    return np.random.default_rng(seed).permutation(np.repeat(np.arange(CLASSES), sizes)), sizes


def coverage_flop(n):
    return float(np.sum(2.0 * zipf_sizes(n).astype(np.float64) ** 2 * D))


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


def save(out, res):
    path = Path(out, f"{res['case']}.json")
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(res, indent=2, default=float))
    tmp.replace(path)


def run_case(name, out):
    import torch

    import clipcov_fast

    n, dtype, with_cpu = CASES[name]
    y, _ = zipf_labels(n, seed=1)
    t = time.perf_counter()
    A, B = make_inputs(n, dtype, seed=2)
    card = torch.cuda.get_device_name()
    flops = coverage_flop(n)
    in_bytes = 2 * n * D * A.element_size()
    rate, bw = next((v for key, v in PEAKS.items() if key in card), PEAKS["H100"])
    floor = max(flops / rate, in_bytes / bw)
    res = {"case": name, "card": card, "n": n, "d": D, "dtype": dtype, "classes": CLASSES, "k": int(FRACTION * n),
           "coverage_flop": flops, "input_bytes": in_bytes, "floor_s": floor, "make_inputs_s": time.perf_counter() - t,
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
    res["device_need_bytes"] = int(sel.device_need_bytes)
    res["times_floor"] = res["gpu_s"] / floor
    save(out, res)
    print(f"[{name}] GPU {res['gpu_s']:.2f} s ({', '.join(f'{k} {v:.2f}' for k, v in sel.timings.items())}); "
          f"peak device memory {res['device_peak_bytes'] / 2**30:.1f} GiB", flush=True)
    if not with_cpu:
        return
    Ah, Bh = A.cpu().numpy(), B.cpu().numpy()
    del A, B
    torch.cuda.empty_cache()
    cores = len(os.sched_getaffinity(0))
    for key, threads in (("cpu_ci", CI_THREADS), ("cpu_all", cores)):
        t = time.perf_counter()
        cpu = clipcov_fast.select(Ah, Bh, FRACTION, labels=y, device="cpu", num_threads=threads)
        res[f"{key}_s"] = time.perf_counter() - t
        res[f"{key}_threads"] = threads
        res[f"{key}_timings"] = cpu.timings
        res[f"speedup_vs_{key}"] = res[f"{key}_s"] / res["gpu_s"]
        res["same_indices"] = bool(np.array_equal(cpu.indices, sel.indices))
        res["same_set_fraction"] = float(len(np.intersect1d(cpu.indices, sel.indices)) / max(1, len(cpu.indices)))
        res["F_rel_diff"] = abs(cpu.objective - sel.objective) / abs(cpu.objective)
        save(out, res)
        print(f"[{name}] CPU {threads} threads {res[f'{key}_s']:.2f} s, GPU speedup {res[f'speedup_vs_{key}']:.1f}x, "
              f"same indices {res['same_indices']}", flush=True)


def extrapolate(name, base, limit, out):
    """A case that did not finish within limit seconds, estimated from a smaller case's stage times:
    terms (coverage) and greedy (per-class pair weights, largest classes first) grow with the sum of
    n_c^2, the other stages with n. An estimate, not a measurement."""
    done = Path(out, f"{name}.json")
    if done.exists() and "gpu_s" in json.loads(done.read_text()):
        print(f"[{name}] measured before its limit: nothing to extrapolate", flush=True)
        return
    path = Path(out, f"{base}.json")
    b = json.loads(path.read_text()) if path.exists() else {}
    if "gpu_timings" not in b:
        print(f"[{name}] not measured (limit {limit} s), and {base} has no GPU figure to extrapolate from", flush=True)
        return
    n = CASES[name][0]
    quad, lin = coverage_flop(n) / b["coverage_flop"], n / b["n"]
    st = b["gpu_timings"]
    est = {key: v * (quad if key in ("terms", "greedy") else lin) for key, v in st.items() if key != "total"}
    res = {"case": name, "card": b["card"], "n": n, "d": D, "dtype": CASES[name][1], "classes": CLASSES,
           "k": int(FRACTION * n), "coverage_flop": coverage_flop(n), "floor_s": b["floor_s"] * quad,
           "extrapolated_from": base, "did_not_finish_within_s": limit, "estimate_s": sum(est.values()),
           "gpu_s": max(sum(est.values()), limit),  # it ran past its limit, if it ran at all
           "gpu_timings": est, "times_floor": max(sum(est.values()), limit) / (b["floor_s"] * quad),
           "basis": f"{base} stage times; terms and greedy x {quad:.1f} (sum of n_c^2), the rest x {lin:.2f} (n); "
                    "at least the limit it did not finish within"}
    save(out, res)
    print(f"[{name}] not measured (limit {limit} s): extrapolated from {base}: about {res['estimate_s']:.1f} s",
          flush=True)


def table(out):
    rows = [json.loads(p.read_text()) for p in sorted(Path(out).glob("*.json")) if p.stem in CASES]
    print(f"{'case':6} {'card':22} {'n':>10} {'dtype':8} {'GPU s':>8} {'floor s':>8} {'x floor':>8} "
          f"{'peak GiB':>8} {'CPU2 s':>7} {'CPUall s':>8} {'x CPU2':>7} {'same idx':>8}  note")
    nan = float("nan")
    for r in rows:
        note = ""
        if "extrapolated_from" in r:
            note = (f"not measured: did not finish in {r['did_not_finish_within_s']:.0f} s; estimate "
                    f"{r['estimate_s']:.1f} s from {r['extrapolated_from']}")
        if "gpu_s" not in r:
            note = "did not finish"
        print(f"{r['case']:6} {r['card'][:22]:22} {r['n']:>10} {r['dtype']:8} {r.get('gpu_s', nan):8.2f} "
              f"{r['floor_s']:8.2f} {r.get('times_floor', nan):8.1f} {r.get('device_peak_bytes', nan) / 2**30:8.1f} "
              f"{r.get('cpu_ci_s', nan):7.2f} {r.get('cpu_all_s', nan):8.2f} {r.get('speedup_vs_cpu_ci', nan):7.1f} "
              f"{str(r.get('same_indices', '-')):>8}  {note}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", choices=sorted(CASES))
    ap.add_argument("--extrapolate", choices=sorted(CASES), help="write this case estimated from --base")
    ap.add_argument("--base", default="cc3m")
    ap.add_argument("--limit", type=float, default=0.0, help="the time limit the case could not meet")
    ap.add_argument("--table", action="store_true")
    ap.add_argument("--out", default="bench/results/gpu")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    if args.table:
        table(args.out)
    elif args.extrapolate:
        extrapolate(args.extrapolate, args.base, args.limit, args.out)
    elif args.case:
        run_case(args.case, args.out)
    else:
        sys.exit("give --case, --extrapolate or --table")
