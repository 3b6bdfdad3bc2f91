"""Rebuilds a golden fixture's weight files on the GPU machine instead of carrying them (63 MB).

The fixtures' weights were drawn with numpy default_rng(seed) in file order: N(0, 0.02) for
matrices and embeddings, 1 + N(0, 0.1) for layer-norm weights, N(0, 0.1) for biases, then cast
to float32; the fp16 file is that float32 data rounded to float16 (see
../shared/fixtures/model/README.md). The bundle carries each file's safetensors header; this
appends the data and checks the result against the SHA-256 in golden.json, so a numpy whose
generator differs is caught, never used.

    python3 scripts/gpu/regen_fixture.py FIXTURE_DIR   (e.g. .../fixtures/tiny-seed1234)
"""

import hashlib
import json
import re
import struct
import sys
from pathlib import Path

import numpy as np


def tensors_in_order(header_bytes):
    (n,) = struct.unpack("<Q", header_bytes[:8])
    header = json.loads(header_bytes[8 : 8 + n])
    names = [k for k in header if k != "__metadata__"]
    return sorted(names, key=lambda k: header[k]["data_offsets"][0]), header


def draw(rng, name, shape):
    if name.endswith("layernorm.weight") or name.endswith("layer_norm.weight"):
        return 1 + rng.normal(0, 0.1, size=shape)
    if name.endswith(".bias"):
        return rng.normal(0, 0.1, size=shape)
    return rng.normal(0, 0.02, size=shape)


def main(fixture):
    seed = int(re.search(r"-seed(\d+)$", fixture.name).group(1))
    expected = json.loads((fixture / "golden.json").read_text())["weights"]
    head32 = (fixture / "model.safetensors.head").read_bytes()
    head16 = (fixture / "model.fp16.safetensors.head").read_bytes()
    names, header = tensors_in_order(head32)
    if tensors_in_order(head16)[0] != names:
        raise SystemExit(f"{fixture}: the two headers list different tensors")
    rng = np.random.default_rng(seed)
    data32 = [head32]
    data16 = [head16]
    for name in names:
        values = draw(rng, name, header[name]["shape"]).astype(np.float32)
        data32.append(values.tobytes())
        data16.append(values.astype(np.float16).tobytes())
    ok = True
    for file, parts in (("model.safetensors", data32), ("model.fp16.safetensors", data16)):
        blob = b"".join(parts)
        digest = hashlib.sha256(blob).hexdigest()
        if digest != expected[file]:
            print(f"{fixture.name}/{file}: sha256 {digest} != golden {expected[file]} (numpy {np.__version__})")
            ok = False
            continue
        (fixture / file).write_bytes(blob)
        print(f"{fixture.name}/{file}: rebuilt, sha256 matches golden.json")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
