#!/usr/bin/env python3
"""The baseline fer-model bench is compared with: LLA-Net in PyTorch eager mode.

The network is scripts/lla_net.py (same state_dict names as the C++ model), so
it also loads our weight files. Prints faces/s and latency for batch sizes and
precisions, as a user wrapping PyTorch in Python would get.

    python3 scripts/python_baseline_bench.py [--model FILE] [--threads 2]
        [--batch_sizes 1,8,32] [--precisions fp32,bf16] [--seconds 10]
"""
import argparse
import time

import torch

from lla_net import LlaNet, load_weight_file


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", help="weight file (lla-net/1) to load")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch_sizes", default="1,8,32")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    net = (load_weight_file(args.model)[0] if args.model else LlaNet()).eval()
    print(f"torch {torch.__version__}, {args.threads} threads, "
          f"{sum(p.numel() for p in net.parameters())} parameters")
    print(f"{'precision':9} {'batch':>5} {'faces/s':>9} {'p50 ms':>9} {'p99 ms':>9}")
    for precision in args.precisions.split(","):
        for batch in [int(b) for b in args.batch_sizes.split(",")]:
            x = torch.randn(batch, 3, 112, 112)
            times = []
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16,
                                                 enabled=precision == "bf16"):
                net(x)
                start = time.perf_counter()
                while time.perf_counter() - start < args.seconds or len(times) < 3:
                    t0 = time.perf_counter()
                    torch.softmax(net(x).float(), 1)
                    times.append(time.perf_counter() - t0)
            times.sort()
            total = sum(times)
            print(f"{precision:9} {batch:5d} {batch * len(times) / total:9.1f} "
                  f"{times[len(times) // 2] * 1e3:9.1f} {times[min(len(times) - 1, int(0.99 * len(times)))] * 1e3:9.1f}",
                  flush=True)


if __name__ == "__main__":
    main()
