"""The proxy towers' input size on the validation split (from the repository root, after an experiment run made
its pools): for each size, lite0-minilm heads fitted for 3 epochs on the first N fashion-proxy pairs, zero-shot
top-1 on the first M fashion-val images with the experiment's prompts. Writes nothing; prints one line per size.

    python scripts/proxy_size_on_val.py PROXY_PAIRS.tsv VAL_PAIRS.tsv [--n 3000] [--m 2000] [--sizes 64,96,128]
"""
import argparse
import json
import os
import subprocess
import sys
import time


def one(args):
    import numpy as np
    import torch

    from clipcov_fast.experiment.configs import CLASS_NAMES, TEMPLATES
    from clipcov_fast.pipeline import towers
    from clipcov_fast.pipeline.sources.table import Table

    t0 = time.time()
    torch.set_num_threads(1)
    proxy, val = Table(args.proxy), Table(args.val)
    proxy.rows, val.rows = proxy.rows[:args.n], val.rows[:args.m]
    y = np.array([int(r[val.header.index("label")]) for r in val.rows])
    model, pre, tok = towers.build()
    img, txt = towers.tower_features(model, pre, tok, proxy)
    vimg, _ = towers.tower_features(model, pre, tok, val)
    torch.manual_seed(0)
    towers.fit_heads(model, img, txt, epochs=3, seed=0)
    prompts = [t.format(c) for c in CLASS_NAMES for t in TEMPLATES]
    with torch.no_grad():
        fi = torch.nn.functional.normalize(model.image_head(torch.from_numpy(vimg)), dim=-1)
        ft = torch.nn.functional.normalize(model.text_head(model.text_features(tok(prompts))), dim=-1)
        W = torch.nn.functional.normalize(ft.reshape(len(CLASS_NAMES), len(TEMPLATES), -1).mean(1), dim=-1)
    top1 = float(((fi @ W.T).argmax(1).numpy() == y).mean())
    print(json.dumps({"px": towers.IMAGE_SIZE, "proxy_pairs": len(proxy), "val_images": len(val),
                      "val_top1": round(top1, 4), "seconds": round(time.time() - t0, 1)}), flush=True)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("proxy")
    p.add_argument("val")
    p.add_argument("--n", type=int, default=3000)
    p.add_argument("--m", type=int, default=2000)
    p.add_argument("--sizes", default="64,96,128")
    p.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        one(args)
    else:  # the size is read when towers is imported: one process per size
        for px in args.sizes.split(","):
            subprocess.run([sys.executable, __file__, "--one", args.proxy, args.val, "--n", str(args.n), "--m",
                            str(args.m)], env={**os.environ, "CLIPCOV_TOWER_PX": px, "OMP_NUM_THREADS": "1",
                                               "TQDM_DISABLE": "1"}, check=True)
