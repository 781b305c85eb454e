#!/usr/bin/env bash
# Fetch the wheels benchmarks/train_11b.py needs on the GPU box into .whl/ (or $1).
#
# The box has Python 3.12 and torch 2.11 (+ numpy, pandas, pyarrow, PIL, regex, tiktoken,
# sentencepiece, huggingface_hub, safetensors, ...) but no torchtune stack and no network. The
# versions below are the ones this project's environment pins and was tested with. bitsandbytes
# ships one CUDA library per CUDA version (~125 MB unpacked); only the CUDA 13.0 one (the box's
# torch is cu130) and the CPU one are kept, so that everything fits the 64 MiB a call may carry.
#
#   bash benchmarks/gpu_wheels.sh            # then carry .whl (see README, "Training speed and memory")
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-.whl}"
if [[ "$out" != /* ]]; then  # inside the checkout: keep it out of git (and out of commits)
    exclude="$(git rev-parse --git-path info/exclude)"
    mkdir -p "$(dirname "$exclude")"
    grep -qxF "/${out}/" "$exclude" 2>/dev/null || echo "/${out}/" >>"$exclude"
fi
mkdir -p "$out"
python="${PYTHON:-python3}"

platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 \
    manylinux2014_x86_64 manylinux1_x86_64; do
    platforms+=(--platform "$p")
done
"$python" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${platforms[@]}" -d "$out" \
    torchtune==0.6.1 torchao==0.13.0 torchdata==0.11.0 bitsandbytes==0.50.2 omegaconf==2.4.0 \
    datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 \
    pydantic==2.14.3 pydantic-core==2.50.4 annotated-types==0.8.0 typing-inspection==0.4.5

# Keep only bitsandbytes' CUDA 13.0 and CPU libraries.
for whl in "$out"/bitsandbytes-*.whl; do
    tmp="$(mktemp -d)"
    "$python" - "$whl" "$tmp/slim.whl" <<'PY'
import re
import sys
import zipfile

src, dst = sys.argv[1], sys.argv[2]
keep = re.compile(r"libbitsandbytes_(cuda130|cpu)\.so$")
with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
    for item in zin.infolist():
        if item.filename.endswith(".so") and not keep.search(item.filename):
            continue
        data = zin.read(item.filename)
        if item.filename.endswith(".dist-info/RECORD"):
            # Drop the records of removed files; pip checks hashes only of files present.
            lines = [ln for ln in data.decode().splitlines() if not (".so," in ln and not keep.search(ln.split(",")[0]))]
            data = ("\n".join(lines) + "\n").encode()
        zout.writestr(item, data)
PY
    mv "$tmp/slim.whl" "$whl"
    rm -rf "$tmp"
done
du -ch "$out"/*.whl | tail -n 1
