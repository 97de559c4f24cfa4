"""What torch.compile makes of rms_norm on the `large` shapes: its generated Triton code, the config its
autotuner chose, and its time against our kernel's, all with triton.testing.do_bench (exploration aid).

    python3 scripts/norms/inductor_probe.py --out DIR
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch._inductor.utils import run_and_get_code
from triton.testing import do_bench

REPO = Path(__file__).resolve().parents[2]
SHAPES = [(4, 4096, 8192), (2, 4096, 8192), (8, 4096, 2048), (4, 4096, 4096)]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(REPO / "impls" / "rms_norm_triton"))
    kernel = importlib.import_module("kernel")
    for b, s, d in SHAPES:
        x = torch.randn(b, s, d, device="cuda", dtype=torch.bfloat16)
        w = torch.randn(d, device="cuda", dtype=torch.bfloat16)
        torch._dynamo.reset()
        fn = torch.compile(lambda x, w, d=d: F.rms_norm(x, (d,), w, 1e-6), dynamic=False, fullgraph=True)
        _, codes = run_and_get_code(fn, x, w)
        (args.out / f"inductor_{b}x{s}x{d}.py").write_text("\n\n".join(codes))
        moved = 2 * x.numel() * 2 + 2 * d
        t_c = do_bench(lambda fn=fn, x=x, w=w: fn(x, w), warmup=25, rep=200)
        t_o = do_bench(lambda x=x, w=w: kernel.rms_norm(x, w, 1e-6), warmup=25, rep=200)
        print(f"{b}x{s}x{d}: compile {moved / t_c / 1e6:.0f} GB/s, ours {moved / t_o / 1e6:.0f} GB/s "
              f"(ours {kernel.launch_config(b * s, d)})", flush=True)
        import gc

        from torch._inductor.runtime.triton_heuristics import CachingAutotuner

        for obj in gc.get_objects():
            if isinstance(obj, CachingAutotuner) and getattr(obj, "launchers", None):
                cfgs = [str(getattr(ln, "config", "?")) for ln in obj.launchers]
                print(f"  inductor kernel {getattr(obj.fn, '__name__', obj.fn)}: chosen {cfgs}; "
                      f"candidates {len(obj.configs)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
