"""webdataset tar shards (image as jpg/png/webp + caption as txt), read with the webdataset library."""
import io
import itertools
import os
import tarfile
from pathlib import Path

import webdataset as wds
from braceexpand import braceexpand
from PIL import Image
from webdataset.tariterators import base_plus_ext

from ... import files

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")
SHARD_SIZE = 10000  # samples per written shard


def shard_list(spec):
    """A .tar file, a folder of .tar files, or a brace pattern such as shards/{000..009}.tar."""
    path = Path(spec)
    if path.is_dir():
        shards = sorted(path.glob("*.tar"))
    else:
        shards = [Path(p) for p in braceexpand(str(spec))]
    missing = [str(p) for p in shards if not p.is_file()]
    if not shards or missing:
        raise FileNotFoundError(f"--data: no such shard(s): {', '.join(missing) or spec}")
    return shards


def count_samples(shard):
    """Samples in a shard from the tar headers alone (no image data read), grouped the way
    webdataset groups them: consecutive members with the same key."""
    count, last = 0, None
    with tarfile.open(shard) as tar:
        for member in tar:
            key, _ = base_plus_ext(member.name)
            if member.isfile() and key is not None and key != last:
                count, last = count + 1, key
    return count


def _caption(sample):
    return sample.get("txt", b"").decode("utf-8", errors="replace").strip()


class Shards:
    kind = "webdataset"

    def __init__(self, spec):
        self.spec_text = str(spec)
        self.shards = shard_list(spec)
        self.n = sum(count_samples(s) for s in self.shards)

    def spec(self):
        return {"kind": self.kind, "path": os.path.abspath(self.spec_text),
                "shards": [str(s.resolve()) for s in self.shards]}

    def __len__(self):
        return self.n

    def _samples(self):
        # every reader sees every shard in order; rows are split by index, not by shard
        return wds.WebDataset([str(s) for s in self.shards], shardshuffle=False, nodesplitter=None,
                              workersplitter=None, empty_check=False)

    def captions(self):
        return [_caption(s) for s in self._samples()]

    def items(self, start=0, worker=0, num_workers=1):
        for i, sample in enumerate(self._samples()):
            if i < start or (i - start) % num_workers != worker:
                continue
            ext = next((e for e in IMAGE_EXTS if e in sample), None)
            caption = _caption(sample)
            if ext is None:
                def opener(s=sample):
                    raise ValueError(f"sample has no image ({'/'.join(IMAGE_EXTS)}): {sorted(s)}")
            else:
                def opener(data=sample[ext]):
                    return Image.open(io.BytesIO(data))
            yield i, sample["__key__"], caption, opener

    def write_subset(self, rows, out, absolute_paths=False):
        """Chosen samples, in shard order, as new shards OUT/subset-000000.tar, ... (SHARD_SIZE
        samples each, each shard written atomically), and OUT/sizes.json ({shard name: samples}),
        which open_clip_train reads when --train-num-samples is not given."""
        out = Path(out)
        chosen = set(int(r) for r in rows)
        samples = (s for i, s in enumerate(self._samples()) if i in chosen)
        sizes = {}
        for shard in itertools.count():
            first = next(samples, None)
            if first is None:
                files.save_json(out / "sizes.json", sizes)
                return out
            with files.atomic_path(out / f"subset-{shard:06d}.tar") as tmp, \
                    wds.TarWriter(str(tmp), encoder=False) as writer:
                count = 0
                for sample in itertools.chain([first], itertools.islice(samples, SHARD_SIZE - 1)):
                    # drop webdataset's bookkeeping (__url__, ...), keep the key
                    writer.write({k: v for k, v in sample.items() if not k.startswith("__") or k == "__key__"})
                    count += 1
            sizes[f"subset-{shard:06d}.tar"] = count
