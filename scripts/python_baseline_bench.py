#!/usr/bin/env python3
"""The baseline fer-model bench is compared with: LLA-Net in PyTorch eager mode.

A plain re-implementation with the same state_dict names, so it also loads our
weight files. Prints faces/s and latency for batch sizes and precisions, as a
user wrapping PyTorch in Python would get.

    python3 scripts/python_baseline_bench.py [--model FILE] [--threads 2]
        [--batch_sizes 1,8,32] [--precisions fp32,bf16] [--seconds 10]
"""
import argparse
import time

import torch
from torch import nn


class Llam(nn.Module):
    def __init__(self, channels, kernel=3):
        super().__init__()
        self.conv = nn.Conv2d(2 * channels, channels, kernel, padding=kernel // 2)

    def forward(self, previous, current):
        return current * torch.sigmoid(self.conv(torch.cat([previous, current], 1)))


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                            nn.BatchNorm2d(cout))
        self.llam = Llam(cout)

    def forward(self, x):
        identity = self.downsample(x) if self.downsample is not None else x
        out = torch.relu(self.bn1(self.conv1(x)))
        out = torch.relu(self.bn2(self.conv2(out)) + identity)
        return self.llam(identity, out)


class LlaNet(nn.Module):
    def __init__(self, num_classes=7):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 1, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        cin = 64
        for i, cout in enumerate([64, 128, 256, 512]):
            stride = 1 if i == 0 else 2
            setattr(self, f"layer{i + 1}",
                    nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)))
            cin = cout
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x):
        x = torch.max_pool2d(torch.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(torch.mean(x, (2, 3), keepdim=True), 1))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", help="weight file (lla-net/1) to load")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch_sizes", default="1,8,32")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    net = LlaNet().eval()
    if args.model:
        net.load_state_dict({k: v.float() if v.is_floating_point() else v
                             for k, v in torch.load(args.model)["state_dict"].items()})
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
