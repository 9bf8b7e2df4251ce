"""clipcov eval: metrics on hand-made cases where the answer is known, and the CLI on real models."""
import json
import re

import numpy as np
import pytest
import torch
from PIL import Image

from clipcov_fast import cli
from clipcov_fast.training import evaluate
from conftest import needs_fashion

NAMES = [f"c{i}" for i in range(10)]


class Oracle(torch.nn.Module):
    """Image i of class c is a 2x2 picture with pixels (c, i); caption i is 'c<c> #<i>'. Embeddings:
    one-hot(class) + one-hot(pair), so zero-shot and retrieval are perfect; `confuse` maps a true
    class to the class the image tower reports first (the true class comes second)."""

    def __init__(self, n, confuse=None):
        super().__init__()
        self.n, self.confuse = n, confuse or {}

    def _vec(self, cls, pair):
        v = torch.zeros(len(cls), 10 + self.n)
        v[torch.arange(len(cls)), cls] = 1
        has = pair >= 0
        v[torch.arange(len(cls))[has], 10 + pair[has]] = 1
        return v

    def encode_image(self, x, normalize=False):
        true = x[:, 0, 0, 0].round().long()
        cls = torch.tensor([self.confuse.get(int(c), int(c)) for c in true])
        v = self._vec(cls, x[:, 0, 0, 1].round().long())
        wrong = cls != true
        v[wrong, true[wrong]] = 0.5  # a confused image still leans to its class: second best
        return torch.nn.functional.normalize(v, dim=-1) if normalize else v

    def encode_text(self, tokens, normalize=False):
        v = self._vec(tokens[:, 0], tokens[:, 1])
        return torch.nn.functional.normalize(v, dim=-1) if normalize else v


def oracle_tokenizer(texts):
    out = []
    for t in texts:
        c = int(re.search(r"\bc(\d)\b", t).group(1))
        m = re.search(r"#(\d+)", t)
        out.append([c, int(m.group(1)) if m else -1])
    return torch.tensor(out)


def preprocess(im):
    return torch.from_numpy(np.asarray(im.convert("L"), dtype=np.float32))[None].expand(3, -1, -1).clone()


def make_dataset(folder, counts):
    """pairs.tsv (filepath, title, label) + manifest.json class_names; counts[c] images of class c."""
    (folder / "img").mkdir(parents=True)
    rows, i = ["filepath\ttitle\tlabel"], 0
    for c, count in enumerate(counts):
        for _ in range(count):
            Image.fromarray(np.array([[c, i], [0, 0]], dtype=np.uint8)).save(folder / "img" / f"{i}.png")
            rows.append(f"img/{i}.png\ta photo of c{c} #{i}\t{c}")
            i += 1
    (folder / "pairs.tsv").write_text("\n".join(rows) + "\n")
    (folder / "manifest.json").write_text(json.dumps({"class_names": NAMES}))
    return folder, i


def test_perfect_model_scores_perfectly(tmp_path):
    folder, n = make_dataset(tmp_path, [3] * 10)
    res = evaluate.evaluate("oracle", folder, net=(Oracle(n), preprocess, oracle_tokenizer), templates="simple")
    z, r = res["zero_shot"], res["retrieval"]
    assert res["pairs"] == 30 and res["prompts_per_class"] == 7 and res["classes"] == NAMES
    assert z["top1"] == z["top5"] == z["mean_per_class_recall"] == 1.0
    assert z["per_class_recall"] == [1.0] * 10
    for d in ("image_to_text", "text_to_image"):
        assert r[f"{d}_R@1"] == r[f"{d}_R@5"] == r[f"{d}_R@10"] == 1.0 and r[f"{d}_mean_rank"] == 1.0
    assert r["pairs"] == 30 and r["distinct_captions"] == 30


def test_confused_class_on_imbalanced_data(tmp_path):
    """Class 0 (12 of 30 images) is always taken for class 1: top-1 18/30, per-class recall 9/10."""
    folder, n = make_dataset(tmp_path, [12] + [2] * 9)
    res = evaluate.evaluate("oracle", folder, net=(Oracle(n, confuse={0: 1}), preprocess, oracle_tokenizer),
                            retrieval_limit=0)
    z = res["zero_shot"]
    assert z["top1"] == pytest.approx(18 / 30) and z["mean_per_class_recall"] == pytest.approx(0.9)
    assert z["per_class_recall"][0] == 0.0 and z["per_class_recall"][1:] == [1.0] * 9
    assert z["top5"] == 1.0  # the right class is second best
    assert "retrieval" not in res


def test_limit_and_errors(tmp_path):
    folder, n = make_dataset(tmp_path / "d", [2] * 10)
    net = (Oracle(n), preprocess, oracle_tokenizer)
    assert evaluate.evaluate("oracle", folder, net=net, limit=5)["pairs"] == 5
    with pytest.raises(ValueError, match="--limit"):
        evaluate.evaluate("oracle", folder, net=net, limit=0)
    with pytest.raises(FileNotFoundError, match="--dataset"):
        evaluate.evaluate("oracle", tmp_path / "nowhere", net=net)
    (folder / "manifest.json").write_text("{}")
    with pytest.raises(ValueError, match="class_names"):
        evaluate.evaluate("oracle", folder, net=net)




@needs_fashion
def test_cli_eval_on_the_builtin_test_set(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CLIPCOV_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "r.json"
    assert cli.main(["eval", "--model", "clipcov-tiny", "--dataset", "fashion-mnist-test", "--limit", "40",
                     "--retrieval-limit", "20", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "zero-shot (7 prompts a class): top-1" in printed and "R@10" in printed
    res = json.loads(out.read_text())
    assert res["pairs"] == 40 and len(res["classes"]) == 10
    assert 0 <= res["zero_shot"]["top1"] <= res["zero_shot"]["top5"] <= 1
    assert res["retrieval"]["distinct_captions"] <= 10  # class-name captions: retrieval is ill-posed here
    assert (tmp_path / "cache" / "pools" / "fashion-mnist-test-40" / "pairs.tsv").is_file()


def test_class_retrieval_hand_computed():
    """Images on the unit circle at 0, 90, 180 degrees with classes 0, 1, 1; query (1, 0) of class 0 ranks
    them 0, 90, 180: top-1 relevant, precision@2 = 1/2; query (0, 1) of class 1 ranks 90, then 0 and 180
    tie (stable: 0 first): top-1 relevant, precision@2 = 1/2. Means: top-1 1.0, precision@2 0.5."""
    from clipcov_fast.training.evaluate import class_retrieval

    img = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    got = class_retrieval(img, [0, 1, 1], np.array([[1.0, 0.0], [0.0, 1.0]]), [0, 1], k=2)
    assert got == {"precision_at_2": 0.5, "top1": 1.0, "queries": 2}
    got = class_retrieval(img, [0, 1, 1], np.array([[-1.0, 0.0]]), [0], k=2)  # (-1, 0): 180, then 90/0
    assert got["top1"] == 0.0 and got["precision_at_2"] == 0.0


def test_linear_probe_separates_separable_classes():
    from clipcov_fast.training.evaluate import linear_probe

    rng = np.random.default_rng(0)
    centers = np.eye(3) * 5
    fit_y, y = rng.integers(0, 3, 300), rng.integers(0, 3, 100)
    fit_x, x = centers[fit_y] + rng.standard_normal((300, 3)), centers[y] + rng.standard_normal((100, 3))
    assert linear_probe(fit_x, fit_y, x, y) > 0.95
    assert linear_probe(fit_x, rng.permutation(fit_y), x, y) < 0.6  # labels that carry nothing: near chance
