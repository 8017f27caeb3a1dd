"""LLA-Net in PyTorch, with the parameter names of docs/model.md, and the
project's weight files (format "lla-net/1") from Python.

    import sys; sys.path.insert(0, "scripts")
    import lla_net
    model, meta = lla_net.load_weight_file("model.pt")     # any lla-net/1 file
    ...train or edit model...
    meta["version"] = "my-finetune"
    lla_net.save_weight_file("mine.pt", model, meta)       # fer-server serves it

save_weight_file is the ordinary torch.save of
{"format": "lla-net/1", "state_dict": model.state_dict(), "meta": meta} in the
default zip format; writing that dict yourself works as well. The legacy format
(_use_new_zipfile_serialization=False) is refused by fer-model and fer-server.
"""
import datetime

import torch
from torch import nn

FORMAT = "lla-net/1"
LABELS = ["neutral", "anger", "disgust", "fear", "happiness", "sadness", "surprise"]


class Llam(nn.Module):
    """Lossless attention: F' = F_cur * sigmoid(conv([F_pre; F_cur]))."""

    def __init__(self, channels, kernel=3):
        super().__init__()
        self.conv = nn.Conv2d(2 * channels, channels, kernel, padding=kernel // 2)

    def forward(self, previous, current):
        return current * torch.sigmoid(self.conv(torch.cat([previous, current], 1)))


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride, attention=True, kernel=3):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                            nn.BatchNorm2d(cout))
        self.llam = Llam(cout, kernel) if attention else None

    def forward(self, x):
        # F_pre is the block's input, or its shortcut projection where the
        # block changes the shape (docs/model.md).
        identity = self.downsample(x) if self.downsample is not None else x
        out = torch.relu(self.bn1(self.conv1(x)))
        out = torch.relu(self.bn2(self.conv2(out)) + identity)
        return self.llam(identity, out) if self.llam is not None else out


class LlaNet(nn.Module):
    """ResNet-18 (torchvision names) with an LLAM after each BasicBlock; returns logits."""

    def __init__(self, num_classes=7, attention_kernel=3, attention=True):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 1, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        cin = 64
        for i, cout in enumerate([64, 128, 256, 512]):
            stride = 1 if i == 0 else 2
            setattr(self, f"layer{i + 1}", nn.Sequential(
                BasicBlock(cin, cout, stride, attention, attention_kernel),
                BasicBlock(cout, cout, 1, attention, attention_kernel)))
            cin = cout
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x):
        x = torch.max_pool2d(torch.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(torch.mean(x, (2, 3), keepdim=True), 1))


def build(arch):
    """The network a meta["arch"] dict describes."""
    return LlaNet(int(arch.get("num_classes", 7)), int(arch.get("attention_kernel", 3)),
                  bool(arch.get("attention", True)))


def default_meta(num_classes=7, attention_kernel=3, attention=True):
    """The meta fer-model init writes, for a model built in Python."""
    return {
        "arch": {"num_classes": num_classes, "attention_kernel": attention_kernel,
                 "attention": attention},
        "input_size": 112,
        "mean": [0.5, 0.5, 0.5],
        "std": [0.25, 0.25, 0.25],
        "color": "gray3",
        "input_blur": 0.0,
        "labels": list(LABELS[:num_classes]) if num_classes == len(LABELS)
        else [f"class{i}" for i in range(num_classes)],
        "trained_on": "untrained",
        "metrics": {},
        "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "version": "",
    }


def _allow_libtorch_globals():
    """Files written by C++ (torch::pickle_save) wrap typed lists and dicts in
    torch.jit._pickle's pure helpers; a PyTorch whose torch.load defaults to
    weights_only=True (2.6 and later) must be told they are safe. Not needed,
    and skipped, where add_safe_globals does not exist (Debian's 1.13)."""
    add = getattr(torch.serialization, "add_safe_globals", None)
    if add is None:
        return
    import torch.jit._pickle as jit_pickle
    add([getattr(jit_pickle, name) for name in
         ("build_intlist", "build_doublelist", "build_boollist", "build_tensorlist",
          "build_genericlist", "restore_type_tag") if hasattr(jit_pickle, name)])


def load_weight_file(path, map_location="cpu"):
    """Returns (model, meta) from a weight file; fp16 files load as fp32."""
    _allow_libtorch_globals()
    data = torch.load(path, map_location=map_location)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{path}: not an {FORMAT} weight file")
    model = build(data["meta"]["arch"])
    model.load_state_dict({k: v.float() if v.is_floating_point() else v
                           for k, v in data["state_dict"].items()})
    return model, data["meta"]


def save_weight_file(path, model, meta, half=False):
    """Writes model and meta as fer-model and fer-server read them."""
    state = model.state_dict()
    if half:
        state = type(state)((k, v.half() if v.is_floating_point() else v)
                            for k, v in state.items())
    torch.save({"format": FORMAT, "state_dict": state, "meta": meta}, path)
