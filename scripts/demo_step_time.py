#!/usr/bin/env python
"""Seconds per training iteration of the demo's network and batch (``options/demo/
train_W2AMSN_demo_x2.yml``): 10 timed Adam steps after 2 warm-up steps, median and minimum.

    OMP_NUM_THREADS=2 python scripts/demo_step_time.py
    OMP_NUM_THREADS=2 ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 python scripts/demo_step_time.py

The second line restricts torch and oneDNN to AVX2 kernels: on an AVX-512 CPU it stands in for
an AVX2-only one (same cores and clocks, so it is a lower bound on an older CPU's time).
"""
from __future__ import annotations

import sys
import time

import torch
import yaml

import w2amsn_plugin  # noqa: F401  (registers the network)
from basicsr.archs import build_network


def main() -> int:
    opt = yaml.safe_load(open("options/demo/train_W2AMSN_demo_x2.yml", encoding="utf-8"))
    net = build_network(dict(opt["network_g"]))
    optim = torch.optim.Adam(net.parameters(), 1e-4)
    train = opt["datasets"]["train"]
    batch, gt, scale = train["batch_size_per_gpu"], train["gt_size"], opt["scale"]
    lq, gt_img = torch.rand(batch, 1, gt // scale, gt // scale), torch.rand(batch, 1, gt, gt)
    times = []
    for _ in range(12):
        t0 = time.perf_counter()
        loss = (net(lq) - gt_img).abs().mean()
        optim.zero_grad()
        loss.backward()
        optim.step()
        times.append(time.perf_counter() - t0)
    times = sorted(times[2:])
    print(f"{torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads: "
          f"median {times[len(times) // 2]:.3f} s/iteration, min {times[0]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
