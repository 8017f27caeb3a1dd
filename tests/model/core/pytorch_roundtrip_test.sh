#!/bin/sh
# The round trip a PyTorch user makes, with the binaries: fer-model init writes
# a file, PyTorch (scripts/lla_net.py) trains it a step and saves it the
# ordinary way, fer-model info reads it, fer-model convert writes it back at
# fp16, and PyTorch reads that with the same outputs (to fp16 accuracy).
# Usage: pytorch_roundtrip_test.sh FER_MODEL PYTHON SOURCE_DIR
# Exit 77 (ctest: skipped) when PYTHON cannot import torch.
set -eu
fer_model=$1
python=$2
source_dir=$3
if ! "$python" -c "import torch" >/dev/null 2>&1; then
  echo "SKIP: $python cannot import torch (Debian: apt-get install python3-torch)"
  exit 77
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

"$fer_model" init --out="$dir/init.pt" --seed=3
"$python" - "$source_dir/scripts" "$dir" <<'PY'
import collections, os, sys
sys.path.insert(0, sys.argv[1])
import torch, lla_net
d = sys.argv[2]
torch.manual_seed(1)
model, meta = lla_net.load_weight_file(os.path.join(d, "init.pt"))
assert meta["trained_on"] == "untrained", meta
opt = torch.optim.SGD(model.parameters(), lr=0.01)
loss = torch.nn.functional.cross_entropy(model.train()(torch.randn(2, 3, 112, 112)),
                                         torch.tensor([3, 5]))
loss.backward()
opt.step()
assert type(model.state_dict()) is collections.OrderedDict
meta.update(version="py-step", trained_on="one step in PyTorch", metrics={"loss": loss.item()})
lla_net.save_weight_file(os.path.join(d, "py.pt"), model, meta)
probe = torch.rand(2, 3, 112, 112)
with torch.no_grad():
    torch.save({"probe": probe, "logits": model.eval()(probe)}, os.path.join(d, "io.pt"))
PY
"$fer_model" info --model="$dir/py.pt" --json > "$dir/info.json"
grep -q '"version": "py-step"' "$dir/info.json" || { cat "$dir/info.json"; exit 1; }
grep -q '"trained_on": "one step in PyTorch"' "$dir/info.json" || { cat "$dir/info.json"; exit 1; }
"$fer_model" convert --model="$dir/py.pt" --out="$dir/half.pt" --half
"$python" - "$source_dir/scripts" "$dir" <<'PY'
import os, sys
sys.path.insert(0, sys.argv[1])
import torch, lla_net
d = sys.argv[2]
model, meta = lla_net.load_weight_file(os.path.join(d, "half.pt"))
assert meta["version"] == "py-step", meta
io = torch.load(os.path.join(d, "io.pt"))
with torch.no_grad():
    got = model.eval()(io["probe"])
err = (got - io["logits"]).abs().max().item()
scale = io["logits"].abs().max().item()
assert err <= 0.01 * scale, (err, scale)  # fp16 rounding: measured ~2e-4 of scale
print(f"round trip: fp16 file from fer-model convert, max logit error {err:.2e} of {scale:.2f}")
PY
echo "PASS"
