"""The experiment's configurations: what is selected, trained and scored, and at what size."""
import dataclasses
import json
from pathlib import Path

from ..pipeline.pools.fashion import NOISE, WORDS

# keys of results.json; see docs/experiment.md for what each one selects
# the field's selectors (docs/field.md) as the experiment runs them: NormSim and the image-based filter take the
# proxy's embeddings of fashion-val images as their target (never the test set); negCLIPLoss one batch of the
# whole pool at the proxy's temperature; MetaCLIP the caption words of every class as its entries
FIELD = ("negclip_loss", "normsim2", "normsim_inf", "negclip_normsim", "image_based_clip_score", "metaclip")
METHODS = ("clipcov", "clipcov_global", "clipcov_released", "clipcov_true_quotas", "xcov", "random",
           "random_stratified", "clip_score", "clip_score_balanced", "semdedup", *FIELD, "full", "proxy_data",
           "clipcov_recipe")
WHOLE = ("full", "proxy_data")  # a student on a whole table (the pool, fashion-proxy), one per seed
# the committed study's result (docs/study.json of this source tree), whatever the working directory
STUDY = Path(__file__).resolve().parents[2] / "docs" / "study.json"
PROXIES = ("lite0-minilm", "tiny-clip")  # or MODEL=CHECKPOINT, a real CLIP
# Photo prompts, averaged per class by open_clip. They overlap the pool's caption templates
# (pipeline/pools/fashion.py): "{}" is one of them, "a photo of a {}." and "a black and white photo of the
# {}." differ from two of them only in punctuation and articles; the other three are not templates.
TEMPLATES = ("a photo of a {}.", "a {}.", "{}", "a product photo of a {}.",
             "a black and white photo of the {}.", "a close-up photo of a {}.")
# Candidate class names for the prompts, chosen between on fashion-val by the proxy's zero-shot top-1
# (experiment.run.choose_class_names): the everyday word of each class, as the pool's captions use it, and
# the dataset's own names (whose "trouser" never occurs in a caption). Ties keep the first.
CLASS_NAMES = ("t-shirt", "trousers", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
               "ankle boot")
# synonym captions for class-level text-to-image retrieval: every caption word of a class but its prompt name
SYNONYMS = tuple((w, c) for c, words in enumerate(WORDS) for w in words if w != CLASS_NAMES[c])
NAME_CANDIDATES = {"caption words": CLASS_NAMES,
                   "dataset names": ("T-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt",
                                     "sneaker", "bag", "ankle boot")}


@dataclasses.dataclass(frozen=True)
class Config:
    name: str
    pool: int  # fashion-web base images (near-duplicates add 10% more pairs)
    proxy_pairs: int  # fashion-proxy pairs the proxy is fitted on
    test: int  # fashion-mnist-test images the students are scored on
    budgets: tuple  # subset sizes as fractions of the pool
    seeds: tuple  # one student (and one random / SemDeDup subset) per seed
    budget_seeds: dict = dataclasses.field(default_factory=dict)  # {budget: fewer seeds} where time demands
    methods: tuple = METHODS
    student: str = "clipcov-tiny"
    steps: int = 600
    batch_size: int = 128
    lr: float = 5e-4
    jobs: int = 2  # students trained at once, one thread each
    threads: int = 2  # torch threads of the embedding stages
    proxy: str = "lite0-minilm"
    proxy_epochs: int = 3
    proxy_eval: int = 2000  # test images to report the proxy's own zero-shot accuracy on
    val: int = 2000  # fashion-val images the experiment's choices are made on (never the test set)
    shift: int = 1000  # test images per shift of fashion-mnist-shifted (inverted, rotated, blurred, sketch)
    probe: int = 3000  # fashion-proxy images the linear probe on student features is fitted on
    pool_seed: int = 0
    misaligned: float = NOISE["misaligned"]  # fashion-web's corruption rate: base images captioned as another class
    study: str = str(STUDY)  # `clipcov study`'s result, whose chosen recipe `clipcov_recipe` applies

    def seeds_for(self, budget):
        """The seeds trained at `budget` (a fraction of the pool): those of `seeds` that budget_seeds allows."""
        return tuple(s for s in self.seeds if s in self.budget_seeds.get(budget, self.seeds))


HEADLINE = ("clipcov", "random", "clip_score", "clip_score_balanced", "full")
# the quick config's two field rows: the strongest entries of the two benchmarks behind them (negCLIPLoss then
# NormSim-inf on DataComp-medium; DataComp's image-based filter intersected with CLIP score)
QUICK_FIELD = ("negclip_normsim", "image_based_clip_score")
CONFIGS = {
    # `make demo` (within 15 minutes on 2 cores): the headline methods and two field rows at 10%, 5 seeds, a
    # 4,400-pair pool, short students (200 steps of 64)
    "quick": Config("quick", pool=4000, proxy_pairs=3000, test=2000, budgets=(0.1,), seeds=(0, 1, 2, 3, 4),
                    methods=HEADLINE + QUICK_FIELD, steps=200, batch_size=64, proxy_eval=1000, val=1000, shift=500, probe=2000),
    # issue 11's full run: a 17,600-pair pool, 3 budgets, every method, 5 seeds (3 at 30%, for time), all test
    # images
    "full": Config("full", pool=16000, proxy_pairs=10000, test=10000, budgets=(0.05, 0.1, 0.3),
                   seeds=(0, 1, 2, 3, 4), budget_seeds={0.3: (0, 1, 2)}, steps=600, val=5000, shift=2500,
                   probe=10000),
}


def make_config(base="quick", **overrides):
    """A checked Config: a named one (or a JSON file with optional "base") plus field overrides."""
    if isinstance(base, Config):
        cfg = base
    elif base in CONFIGS:
        cfg = CONFIGS[base]
    elif Path(str(base)).is_file():
        data = json.loads(Path(base).read_text())
        if not isinstance(data, dict):
            raise ValueError(f"--config: {base} must hold a JSON object")
        cfg = make_config(data.pop("base", "quick"), **{"name": Path(base).stem, **data})
    else:
        raise ValueError(f"--config must be one of {sorted(CONFIGS)} or a JSON file, got {base!r}")
    fields = {f.name for f in dataclasses.fields(Config)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"config: unknown field(s) {unknown}; known: {sorted(fields)}")
    for key in ("budgets", "seeds", "methods"):
        if key in overrides and not isinstance(overrides[key], (list, tuple)):
            overrides[key] = (overrides[key],)
    if isinstance(overrides.get("budget_seeds"), dict):  # JSON keys are strings
        try:
            overrides["budget_seeds"] = {float(b): tuple(v) if isinstance(v, (list, tuple)) else v
                                         for b, v in overrides["budget_seeds"].items()}
        except ValueError:
            raise ValueError(f"config: budget_seeds keys must be budgets, got {overrides['budget_seeds']!r}") from None
    cfg = dataclasses.replace(cfg, **{k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()})
    if "budgets" in overrides and "budget_seeds" not in overrides:  # the base's, for the budgets still run
        cfg = dataclasses.replace(cfg, budget_seeds={b: v for b, v in cfg.budget_seeds.items() if b in cfg.budgets})
    _check(cfg)
    return cfg


def _check(cfg):
    for key in ("pool", "proxy_pairs", "test", "steps", "batch_size", "jobs", "threads", "proxy_epochs", "val",
                "shift", "probe"):
        value = getattr(cfg, key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"config: {key} must be a positive integer, got {value!r}")
    if not cfg.budgets or not all(isinstance(b, (int, float)) and 0 < b < 1 for b in cfg.budgets):
        raise ValueError(f"config: budgets must be fractions in (0, 1), got {cfg.budgets!r}")
    if not cfg.seeds or not all(isinstance(s, int) and s >= 0 for s in cfg.seeds):
        raise ValueError(f"config: seeds must be non-negative integers, got {cfg.seeds!r}")
    if not isinstance(cfg.budget_seeds, dict) or any(
            b not in cfg.budgets or not isinstance(v, tuple) or not cfg.seeds_for(b)
            for b, v in cfg.budget_seeds.items()):
        raise ValueError(f"config: budget_seeds must map budgets of {cfg.budgets} to lists of seeds, some of "
                         f"them among {cfg.seeds}, got {cfg.budget_seeds!r}")
    bad = [m for m in cfg.methods if m not in METHODS]
    if not cfg.methods or bad:
        raise ValueError(f"config: methods must be among {METHODS}, got {bad or cfg.methods!r}")
    if not (isinstance(cfg.misaligned, (int, float)) and 0 <= cfg.misaligned <= 1 - NOISE["generic"]):
        raise ValueError(f"config: misaligned must be a fraction in [0, {1 - NOISE['generic']:g}], got "
                         f"{cfg.misaligned!r}")
    if not (isinstance(cfg.lr, (int, float)) and cfg.lr > 0):
        raise ValueError(f"config: lr must be positive, got {cfg.lr!r}")
    if cfg.proxy not in PROXIES:
        model, sep, ckpt = cfg.proxy.partition("=")
        if not sep or not model or not Path(ckpt).is_file():
            raise ValueError(f"config: proxy must be one of {PROXIES} or MODEL=CHECKPOINT with an existing "
                             f"checkpoint file, got {cfg.proxy!r}")
    if "clipcov_recipe" in cfg.methods:  # before anything runs: the study's result must be there
        from .recipes import load
        load(cfg.study)
    for b in cfg.budgets:
        if int(b * cfg.pool) < cfg.batch_size // 4:
            raise ValueError(f"config: a {b:.0%} subset of {cfg.pool} pairs is tiny next to batch_size "
                             f"{cfg.batch_size}: raise pool or lower batch_size")
