"""Posters/s through the cached, memory-mapped path against decoding JPEGs with PIL at every step.

    python bench/data_loading.py --data ../shared/posters [--size 64x96] [--batch 128]

Both paths give shuffled batches of uint8 tensors over the training part: the cache through the
loader training uses (`batch_loader`: one sorted read of the memory map per batch), the JPEGs
through a torch DataLoader decoding each poster. The cache is built first and not timed.
"""

import argparse
import time

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from lab.data.images import decode_poster, parse_size
from lab.data.poster_dataset import batch_loader, open_posters


class DecodingDataset(Dataset):
    """What earlier poster projects did: open and resize the JPEG on every access."""

    def __init__(self, paths, size):
        self.paths, self.size = paths, size

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, k):
        return torch.from_numpy(decode_poster(self.paths[k], self.size)).permute(2, 0, 1)


def posters_per_second(loader, limit):
    seen, start = 0, time.perf_counter()
    for item in loader:
        images = item[0] if isinstance(item, (list, tuple)) else item
        images.float().div_(255)  # what a training step does first with a batch
        seen += len(images)
        if seen >= limit:
            break
    return seen / (time.perf_counter() - start)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="../shared/posters")
    p.add_argument("--size", default="64x96")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers for both paths")
    p.add_argument("--limit", type=int, default=4000, help="posters read per path")
    args = p.parse_args()
    size = parse_size(args.size)
    start = time.perf_counter()
    posters = open_posters(args.data, size=size)
    print(f"open (cache build or reuse): {time.perf_counter() - start:.1f}s, {len(posters.table)} posters")
    train = posters.parts["train"]
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(0)).numpy()
    cached = posters_per_second(batch_loader(posters.dataset("train"), args.batch, order=order, workers=args.workers),
                                args.limit)
    paths = np.asarray(posters.table.posters["path"])[train]
    decoded = posters_per_second(DataLoader(DecodingDataset(paths, size), batch_size=args.batch, shuffle=True,
                                            num_workers=args.workers, generator=torch.Generator().manual_seed(0)),
                                 args.limit)
    print(f"size {args.size}, batch {args.batch}, {args.workers} loader workers, {torch.get_num_threads()} threads")
    print(f"cached memmap : {cached:10.0f} posters/s")
    print(f"PIL each step : {decoded:10.0f} posters/s")
    print(f"speed-up      : {cached / decoded:10.1f}x")


if __name__ == "__main__":
    main()
