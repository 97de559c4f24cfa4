"""Compile the kernel for Hopper (sm_90) on any machine, GPU or not, and report what each variant became.

For every head_dim x causal x path (x warp specialization) x autotune config: shared memory, registers
per thread, spills (ptxas STACK/LOCAL bytes), and what the PTX uses (wgmma, TMA bulk copies, cp.async,
setmaxnreg = warp-specialized register split). Nothing is launched: a stand-in driver answers "sm_90" and
the real Triton compiler and ptxas do the rest. Run with the Triton the GPU has (3.6):

    python scripts/triton_flash/compile_check.py [--dims 64,128,256] [--paths ptr,desc,devdesc] [--seq N]

Exit status 1 when any variant fails to compile (each failure is printed with the compiler's last line).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path


IMPL = Path(__file__).resolve().parents[2] / "impls" / "triton_flash"


def load_kernel():
    """impls/triton_flash/kernel.py, imported with its folder on sys.path (it reads variants.py beside it)."""
    if str(IMPL) not in sys.path:
        sys.path.insert(0, str(IMPL))
    import kernel

    return kernel


def pretend_hopper() -> None:
    """Make Triton compile for sm_90 without a CUDA driver (compilation never touches the device)."""
    from triton.backends.compiler import GPUTarget
    from triton.runtime import driver

    class Hopper:
        def get_current_target(self):
            return GPUTarget("cuda", 90, 32)

        def get_current_device(self):
            return 0

        def get_current_stream(self, device=None):
            return 0

    driver.set_active(Hopper())


def resources(cubin: bytes) -> dict:
    """REG, STACK, LOCAL of the kernel, from cuobjdump -res-usage (ptxas's own accounting)."""
    import triton

    tool = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
    with tempfile.NamedTemporaryFile(suffix=".cubin", delete=False) as f:
        f.write(cubin)
    try:
        text = subprocess.run([str(tool), "-res-usage", f.name], capture_output=True, text=True).stdout
    finally:
        os.unlink(f.name)
    return {k: int(v) for k, v in re.findall(r"\b(REG|STACK|LOCAL):(\d+)", text)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dims", default="64,128,256")
    ap.add_argument("--paths", default="ptr,desc,devdesc")
    ap.add_argument("--causal", default="0,1")
    ap.add_argument("--ws", default="0,1", help="warp specialization (path devdesc only)")
    ap.add_argument("--seq", type=int, default=4096, help="a length that no block divides tests the ragged code")
    ap.add_argument("--dtype", default="bfloat16")
    args = ap.parse_args(argv)
    import torch

    pretend_hopper()
    kernel = load_kernel()
    dtype = getattr(torch, args.dtype)
    print(f"triton {__import__('triton').__version__}, target sm_90, {args.dtype}, B=1 S={args.seq} H=2 Hkv=2")
    print(f"{'D':>4} {'path':8} {'causal':6} {'ws':3} {'config':14} {'smem KB':>8} {'regs':>5} {'spill':>6} "
          f"{'wgmma':>6} {'tma':>4} {'cp.async':>8} {'setmaxnreg':>10} {'s':>5}")
    failures = 0
    for dim in map(int, args.dims.split(",")):
        q = torch.empty(1, args.seq, 2, dim, dtype=dtype)
        for path in args.paths.split(","):
            for causal in map(int, args.causal.split(",")):
                for ws in map(int, args.ws.split(",") if path == "devdesc" else ["0"]):
                    for config in kernel.variants.CONFIGS[dim]:
                        label = f"{dim:>4} {path:8} {causal:6} {ws:3} {','.join(map(str, config)):14}"
                        t0 = time.perf_counter()
                        try:
                            plan = kernel.launch_plan(q, q, q, bool(causal), path=path, warp_specialize=bool(ws),
                                                      config=config)
                            compiled = kernel._fwd_fixed.warmup(grid=(1,), **plan.args, **plan.flags)
                        except Exception as exc:  # a variant that does not compile is a finding, not a crash
                            failures += 1
                            print(f"{label} FAILED: {type(exc).__name__}: {str(exc).strip().splitlines()[-1][:150]}")
                            continue
                        res = resources(compiled.asm["cubin"])
                        ptx = compiled.asm["ptx"]
                        print(f"{label} {compiled.metadata.shared / 1024:8.1f} {res.get('REG', -1):5} "
                              f"{res.get('STACK', 0) + res.get('LOCAL', 0):6} {ptx.count('wgmma.mma_async'):6} "
                              f"{ptx.count('cp.async.bulk.tensor'):4} {len(re.findall(r'cp.async.c[ag]', ptx)):8} "
                              f"{ptx.count('setmaxnreg'):10} {time.perf_counter() - t0:5.1f}", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
