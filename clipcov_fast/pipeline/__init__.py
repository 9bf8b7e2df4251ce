"""From image-caption files to the arrays select() takes: sources (tables, webdataset shards, image
folders), built-in pools, embedding with open_clip, zero-shot proxy labels, the locked-tower proxy, and
the chosen subset written back in its source's format. torch, open_clip and webdataset (the [clip]
extra) are imported where they are used."""
