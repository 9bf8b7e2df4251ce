"""Train a CLIP on a subset with open_clip's own trainer (train) and score it zero-shot (evaluate)."""
