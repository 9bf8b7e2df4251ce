"""Class names and prompt templates for zero-shot classifiers: open_clip's ImageNet sets, Fashion-MNIST,
or a text file with one line each."""
from pathlib import Path

FASHION_MNIST_CLASSES = ("T-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt",
                         "sneaker", "bag", "ankle boot")


def _lines(path, arg):
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{arg}: not a known name and no such file: {p}")
    lines = [s.strip() for s in p.read_text(encoding="utf-8").splitlines() if s.strip()]
    if not lines:
        raise ValueError(f"{arg}: {p} has no non-empty line")
    return lines


def class_names(spec):
    """'imagenet' (open_clip's 1,000 names), 'fashion-mnist', or a file with one class a line."""
    if spec == "imagenet":
        from open_clip import IMAGENET_CLASSNAMES
        return list(IMAGENET_CLASSNAMES)
    if spec == "fashion-mnist":
        return list(FASHION_MNIST_CLASSES)
    return _lines(spec, "--classes")


def templates(spec):
    """'openai' (the 80 ImageNet prompts), 'simple' (open_clip's 7), or a file of lines with '{}'."""
    from open_clip import OPENAI_IMAGENET_TEMPLATES, SIMPLE_IMAGENET_TEMPLATES

    if spec == "openai":
        return list(OPENAI_IMAGENET_TEMPLATES)
    if spec == "simple":
        return list(SIMPLE_IMAGENET_TEMPLATES)
    lines = _lines(spec, "--templates")
    bad = [t for t in lines if "{}" not in t]
    if bad:
        raise ValueError(f"--templates: every line needs '{{}}' where the class name goes, not {bad[0]!r}")
    return lines
