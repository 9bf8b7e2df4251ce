"""Proxy heads' epochs on the validation split (run after `make demo`, from the repository root): zero-shot
top-1 of lite0-minilm heads fitted for E epochs on the demo's cached fashion-proxy tower features (3,000 pairs),
scored on its 1,000 fashion-val images. Writes nothing."""
import time
import numpy as np
import torch
from clipcov_fast.pipeline import towers
from clipcov_fast.pipeline.sources.table import Table
from clipcov_fast.experiment.configs import TEMPLATES, CLASS_NAMES

t0 = time.time()
z = np.load("demo_out/work/proxy/features.npz")
val = Table("demo_out/work/pools/fashion-val-1000/pairs.tsv")
y = np.array([int(r[val.header.index("label")]) for r in val.rows])
model, pre, tok = towers.build()
vimg, _ = towers.tower_features(model, pre, tok, val)
prompts = [t.format(c) for c in CLASS_NAMES for t in TEMPLATES]
with torch.no_grad():
    ptxt = model.text_features(tok(prompts))
for E in (1, 2, 3, 5, 10, 20):
    torch.manual_seed(0)
    m, _, _ = towers.build()
    towers.fit_heads(m, z["img"], z["txt"], epochs=E, seed=0)
    with torch.no_grad():
        fi = torch.nn.functional.normalize(m.image_head(torch.from_numpy(vimg)), dim=-1)
        ft = torch.nn.functional.normalize(m.text_head(ptxt), dim=-1).reshape(len(CLASS_NAMES), len(TEMPLATES), -1)
        W = torch.nn.functional.normalize(ft.mean(1), dim=-1)
    top1 = float(((fi @ W.T).argmax(1).numpy() == y).mean())
    print(f"epochs {E}: fashion-val zero-shot top-1 {100 * top1:.1f}%", flush=True)
print(f"wall {time.time() - t0:.0f} s")
