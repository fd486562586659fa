"""Training throughput: nmu's trainer vs a reference-style PyTorch pipeline, side by side.

Reference = what the authors' code and most unlearning repositories do: a torchvision
``DataLoader`` (worker processes) over PIL images with RandomCrop(pad 4) / RandomHorizontalFlip /
ToTensor / Normalize, fp32, contiguous memory. nmu = :func:`nmu.train.fit`: uint8 data on the
device, one batched gather for crop + flip, bf16 autocast + channels_last where native.
Same model (the quick profile's, unless --arch), same batch size, same optimiser.

    make bench                       # or: python bench/train_throughput.py --steps 60
Prints images/s of each pipeline and their ratio (targets: >= 1.5x on a 2-core CPU, >= 4x on a GPU).
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision import transforms

from nmu.data import DataNotFoundError, load_dataset
from nmu.models import build_model
from nmu.profiles import PROFILES
from nmu.train import Recipe, default_device, fit, resolve_precision


class PILDataset(torch.utils.data.Dataset):
    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform):
        self.images = images.permute(0, 2, 3, 1).numpy()  # HWC uint8, as torchvision's CIFAR10 keeps them
        if self.images.shape[-1] == 1:  # grey images: PIL wants them (H, W)
            self.images = self.images[..., 0]
        self.labels = labels.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.transform(Image.fromarray(self.images[i])), self.labels[i]


def reference_images_per_second(model, images, labels, mean, std, recipe: Recipe, device, steps: int,
                                warmup: int, workers: int) -> float:
    tf = transforms.Compose([transforms.RandomCrop(images.shape[-1], padding=recipe.crop_padding),
                             transforms.RandomHorizontalFlip(), transforms.ToTensor(),
                             transforms.Normalize(mean, std)])
    loader = DataLoader(PILDataset(images, labels, tf), batch_size=recipe.batch_size, shuffle=True,
                        num_workers=workers, drop_last=True, pin_memory=device.type == "cuda",
                        persistent_workers=workers > 0)
    net = torch.nn.Sequential(model.features, model.head).to(device)  # normalisation done by the loader
    opt = torch.optim.SGD(net.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                          weight_decay=recipe.weight_decay)
    net.train()
    done, start = 0, 0.0
    while done < warmup + steps:
        for x, y in loader:
            if done == warmup:
                if device.type == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            loss = torch.nn.functional.cross_entropy(net(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            done += 1
            if done == warmup + steps:
                break
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * recipe.batch_size / (time.perf_counter() - start)


def nmu_images_per_second(model, images, labels, recipe: Recipe, device, steps: int, warmup: int,
                          precision: str) -> float:
    n = (warmup + steps) * recipe.batch_size
    fit(model, images[: warmup * recipe.batch_size], labels[: warmup * recipe.batch_size], recipe, seed=0,
        device=device, precision=precision, progress=False)
    result = fit(model, images[:n][-steps * recipe.batch_size:], labels[:n][-steps * recipe.batch_size:],
                 recipe, seed=1, device=device, precision=precision, progress=False)
    return result.images_per_second


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default=PROFILES["quick"].arch_for("cifar10"))
    ap.add_argument("--steps", type=int, default=60, help="timed steps per pipeline")
    ap.add_argument("--warmup", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    ap.add_argument("--device", default=None)
    args = ap.parse_args()
    device = torch.device(args.device) if args.device else default_device()
    try:
        ds = load_dataset("cifar10")
        images, labels, mean, std, source = ds.train_images, ds.train_labels, ds.mean, ds.std, "CIFAR-10"
    except DataNotFoundError:
        g = torch.Generator().manual_seed(0)
        images = torch.randint(0, 256, (20000, 3, 32, 32), dtype=torch.uint8, generator=g)
        labels = torch.randint(0, 10, (20000,), generator=g)
        mean, std, source = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), "random 32x32 images (CIFAR-10 not found)"
    need = (args.warmup + args.steps) * args.batch_size
    perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))[:need]
    images, labels = images[perm], labels[perm]
    recipe = Recipe(epochs=1, lr=0.05, batch_size=args.batch_size, weight_decay=5e-4, schedule="constant")
    model = lambda: build_model(args.arch, 10, mean, std, seed=0)  # noqa: E731
    auto = resolve_precision("auto", device)
    print(f"device {device} ({torch.get_num_threads()} threads), {args.arch}, batch {args.batch_size}, "
          f"{args.steps} timed steps, data: {source}")
    ref = reference_images_per_second(model(), images, labels, mean, std, recipe, device, args.steps,
                                      args.warmup, args.workers)
    ours = nmu_images_per_second(model(), images, labels, recipe, device, args.steps, args.warmup, auto)
    rows = [("reference: DataLoader + PIL transforms, fp32", ref), (f"nmu.train.fit ({auto})", ours)]
    if auto != "fp32":
        rows.append(("nmu.train.fit (fp32, to separate pipeline from precision)",
                     nmu_images_per_second(model(), images, labels, recipe, device, args.steps, args.warmup,
                                           "fp32")))
    for name, ips in rows:
        print(f"  {name:<60s} {ips:9.1f} images/s  ratio {ips / ref:5.2f}x")
    print(f"RATIO nmu/reference = {ours / ref:.2f}x (target >= {4 if device.type == 'cuda' else 1.5}x)")


if __name__ == "__main__":
    main()
