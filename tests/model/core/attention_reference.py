"""The attention map of docs/model.md computed from the specification in plain
PyTorch, against what the C++ engine returns (fer-model explain --csv).

    attention_reference.py faces TREE [VAL]   writes TREE/neutral/*.pgm
    attention_reference.py check WEIGHTS CSV   compares; exit 1 on mismatch

Independent of the C++ network and of scripts/lla_net.py's modules: the
forward pass below is written from the specification with
torch.nn.functional, reading the weight file's state_dict directly (eval-mode
BatchNorm, no folding). `faces` writes 112 x 112 grey PGM faces that the
engine reads without resizing, so both sides see the same pixels: real FER2013
faces from VAL (a folder of class folders) when it and PIL are there, smooth
random images otherwise.
"""
import csv
import glob
import math
import os
import sys

import torch
import torch.nn.functional as F

TOLERANCE = 1e-4  # fp32: the measured largest difference is about 1e-7.
LAST_LLAM = "layer4.1"


def load(path):
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "scripts"))
    import lla_net  # only for reading files that C++ wrote (torch.load's allow-list)
    lla_net._allow_libtorch_globals()
    data = torch.load(path, map_location="cpu")
    state = {k: v.float() if v.is_floating_point() else v for k, v in data["state_dict"].items()}
    return state, data["meta"]


def bn(x, s, p):
    return F.batch_norm(x, s[p + ".running_mean"], s[p + ".running_var"], s[p + ".weight"],
                        s[p + ".bias"], False, 0.0, 1e-5)


def blur(x, sigma):
    """model/core/lla_net.cc's GaussianBlur: separable, reflected borders."""
    radius = max(1, math.ceil(3 * sigma))
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-offsets * offsets / (2 * sigma * sigma))
    kernel = kernel / kernel.sum()
    pad = min(radius, min(x.shape[2], x.shape[3]) - 1)
    x = F.pad(x, (pad,) * 4, mode="reflect")
    if pad < radius:
        x = F.pad(x, (radius - pad,) * 4, mode="replicate")
    c = x.shape[1]
    x = F.conv2d(x, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def forward(state, meta, pixels):
    """pixels: N x 1 x H x W floats in 0..255. Returns (probabilities, map of
    the last LLAM averaged over channels)."""
    x = pixels
    if meta.get("input_blur", 0) > 0:
        x = blur(x, meta["input_blur"] * x.shape[3])
    x = x.expand(-1, 3, -1, -1) / 255.0
    mean = torch.tensor(meta["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(meta["std"]).view(1, 3, 1, 1)
    x = (x - mean) / std
    x = F.max_pool2d(F.relu(bn(F.conv2d(x, state["conv1.weight"], padding=3), state, "bn1")),
                     3, 2, 1)
    attention = None
    for layer in range(1, 5):
        for block in range(2):
            p = f"layer{layer}.{block}"
            stride = 2 if layer > 1 and block == 0 else 1
            identity = x
            if p + ".downsample.0.weight" in state:  # F_pre: the shortcut projection
                identity = bn(F.conv2d(x, state[p + ".downsample.0.weight"], stride=stride),
                              state, p + ".downsample.1")
            out = F.relu(bn(F.conv2d(x, state[p + ".conv1.weight"], stride=stride, padding=1),
                            state, p + ".bn1"))
            out = F.relu(bn(F.conv2d(out, state[p + ".conv2.weight"], padding=1), state,
                            p + ".bn2") + identity)
            w = state[p + ".llam.conv.weight"]
            m = torch.sigmoid(F.conv2d(torch.cat([identity, out], 1), w,
                                       state[p + ".llam.conv.bias"], padding=w.shape[-1] // 2))
            x = out * m
            if p == LAST_LLAM:
                attention = m.mean(1)
    logits = F.linear(x.mean((2, 3)), state["fc.weight"], state["fc.bias"])
    return torch.softmax(logits, 1), attention


def write_pgm(path, rows):
    with open(path, "wb") as f:
        f.write(b"P5\n%d %d\n255\n" % (len(rows[0]), len(rows)))
        f.write(bytes(v for row in rows for v in row))


def read_pgm(path):
    with open(path, "rb") as f:
        data = f.read()
    header = data.split(maxsplit=4)
    width, height = int(header[1]), int(header[2])
    pixels = torch.tensor(list(data[len(data) - width * height:]), dtype=torch.float32)
    return pixels.view(1, 1, height, width)


def make_faces(tree, val, size=112, per_class=2):
    os.makedirs(os.path.join(tree, "neutral"), exist_ok=True)
    faces = []
    try:
        from PIL import Image
        for folder in sorted(glob.glob(os.path.join(val, "*"))):
            for name in sorted(os.listdir(folder))[:per_class]:
                image = Image.open(os.path.join(folder, name)).convert("L")
                image = image.resize((size, size), Image.BILINEAR)
                faces.append([list(image.getdata())[r * size:(r + 1) * size]
                              for r in range(size)])
    except ImportError:
        pass
    kind = "real"
    if not faces:  # smooth random images: upsampled noise
        kind = "synthetic"
        torch.manual_seed(7)
        for _ in range(6):
            small = torch.rand(1, 1, 8, 8) * 255
            big = F.interpolate(small, size=(size, size), mode="bilinear", align_corners=False)
            faces.append(big[0, 0].round().clamp(0, 255).to(torch.int64).tolist())
    for i, rows in enumerate(faces):
        write_pgm(os.path.join(tree, "neutral", f"face{i:02d}.pgm"), rows)
    print(f"wrote {len(faces)} {kind} faces")


def check(weights, csv_path):
    state, meta = load(weights)
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows, "no rows in " + csv_path
    pixels = torch.cat([read_pgm(r["file"]) for r in rows])
    with torch.no_grad():
        probabilities, attention = forward(state, meta, pixels)
    side = attention.shape[-1]
    worst_map, worst_p = 0.0, 0.0
    for i, row in enumerate(rows):
        engine = torch.tensor([float(row[f"a_{r}_{c}"]) for r in range(side)
                               for c in range(side)]).view(side, side)
        worst_map = max(worst_map, (engine - attention[i]).abs().max().item())
        top = int(probabilities[i].argmax())
        assert meta["labels"][top] == row["predicted"] or \
            abs(probabilities[i].max() - probabilities[i].sort().values[-2]) < TOLERANCE, \
            (row["file"], meta["labels"][top], row["predicted"])
        worst_p = max(worst_p, abs(probabilities[i, top].item() - float(row["confidence"])))
    print(f"{len(rows)} faces, {side}x{side} maps: max |engine - reference| {worst_map:.2e} "
          f"(map), {worst_p:.2e} (confidence)")
    if worst_map > TOLERANCE or worst_p > TOLERANCE:
        print(f"FAIL: above the tolerance {TOLERANCE}")
        return 1
    return 0


if __name__ == "__main__":
    if len(sys.argv) in (3, 4) and sys.argv[1] == "faces":
        make_faces(sys.argv[2], sys.argv[3] if len(sys.argv) == 4 else "")
    elif len(sys.argv) == 4 and sys.argv[1] == "check":
        sys.exit(check(sys.argv[2], sys.argv[3]))
    else:
        sys.exit(__doc__)
