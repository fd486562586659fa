"""The quick profile's training step on this CPU: nmu's configuration against the alternatives.

Times one SGD step (forward, backward, update; synthetic batch, median of ``--steps``) of a model
under nmu's configuration (bf16 autocast where native, channels_last, batch 128, eager) and under
each single change: NCHW layout, fp32, ``torch.compile``, a larger batch. Prints ms per step,
images per second and each variant's speed relative to nmu's (> 1: faster), measured side by side
in one process. Where nmu's configuration is the fastest, a cheaper ``make figures`` must come from
fewer images through the model, not from the kernels. ``--profile`` adds the share of each kind of
operator in nmu's step (torch profiler).

    python bench/studies/train_step.py --arch smallcnn16 --steps 40 --profile
"""

from __future__ import annotations

import argparse
import time

import pandas as pd
import torch
import torch.nn.functional as F

from nmu.models import build_model
from nmu.train import resolve_precision


def step_ms(arch: str, batch: int, bf16: bool, channels_last: bool, compiled: bool, steps: int,
            profile: bool = False) -> float:
    """Median milliseconds of one training step (after warm-up; compilation excluded); ``profile``
    then prints each operator kind's share of the CPU time of a few more steps."""
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = build_model(arch, 10, [0.5] * 3, [0.25] * 3, seed=0).to(memory_format=fmt).train()
    forward = torch.compile(model) if compiled else model
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    x = torch.rand(batch, 3, 32, 32).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (batch,))

    def one_step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(forward(x), y).float()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(5):
        one_step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        one_step()
        times.append(time.perf_counter() - start)
    if profile:  # after the timed steps, so the profiler does not slow them
        with torch.profiler.profile() as profiler:
            for _ in range(min(steps, 10)):
                one_step()
        print_op_shares(profiler)
    return 1000 * sorted(times)[len(times) // 2]


OP_KINDS = {"convolution": ("convolution",), "batch norm": ("batch_norm",), "max-pool": ("max_pool",),
            "ReLU": ("relu", "threshold", "clamp_min")}


def print_op_shares(profiler: torch.profiler.profile) -> None:
    """Self CPU time of the profiled steps by operator kind (forward and backward together)."""
    events = [e for e in profiler.key_averages() if e.key.startswith("aten::")]
    total = sum(e.self_cpu_time_total for e in events)
    shares = {kind: sum(e.self_cpu_time_total for e in events if any(w in e.key for w in words)) / total
              for kind, words in OP_KINDS.items()}
    shares["other"] = 1 - sum(shares.values())
    print("nmu's step by operator kind (self CPU time): "
          + ", ".join(f"{kind} {share * 100:.0f} %" for kind, share in shares.items()))


def main(argv: list[str] | None = None) -> pd.DataFrame:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="smallcnn16")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--no-compile", action="store_true", help="leave out the torch.compile variant")
    ap.add_argument("--profile", action="store_true", help="print nmu's step by operator kind")
    args = ap.parse_args(argv)
    bf16 = resolve_precision("auto", torch.device("cpu")) == "bf16"
    nmu = dict(batch=128, bf16=bf16, channels_last=True, compiled=False)
    variants = {"nmu (bf16 where native, channels_last, batch 128, eager)": nmu,
                "NCHW layout": {**nmu, "channels_last": False},
                "fp32": {**nmu, "bf16": False},
                "batch 256": {**nmu, "batch": 256},
                "batch 512": {**nmu, "batch": 512}}
    if not args.no_compile:
        variants["torch.compile (inductor)"] = {**nmu, "compiled": True}
    rows = []
    for name, v in variants.items():
        ms = step_ms(args.arch, steps=args.steps, profile=args.profile and v is nmu, **v)
        rows.append({"variant": name, "ms_per_step": ms, "images_per_s": v["batch"] / ms * 1000})
    table = pd.DataFrame(rows)
    table["speed_vs_nmu"] = table["images_per_s"] / table["images_per_s"].iloc[0]
    print(f"{args.arch}, {torch.get_num_threads()} threads, native bf16: {bf16}")
    print(table.round(2).to_markdown(index=False))
    return table


if __name__ == "__main__":
    main()
