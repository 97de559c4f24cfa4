"""Clocks and heat around a workload's timed reps, read through NVML (nvidia-ml-py, module `pynvml`; no root).

A window is the recorded part of a workload's timing (adaptive reps and cold reps, after the settle that lifts the
clocks): one reading when it starts, one every SAMPLE_S from a background thread while it runs, one when it ends.
A reading is the SM clock (current and max), the memory clock, the temperature, the power and the clocks-throttle
reasons. The window is throttled when a reading taken while the GPU was busy shows an SM clock below SAG of its
max, or when a counting throttle reason was set (SW power cap, HW slowdown, SW/HW thermal, power brake; sync boost
is named but does not count; idle, application-clocks and display settings are ignored). A throttled window is
timed once more (opbench.reps.clocked_reps); if the repeat is throttled too, the record's `clocks.flagged` is true.

`throttled` and `verdict` are pure (readings in, verdict out). Everything that touches NVML is here, lazily: no
pynvml, no driver, an unknown device or any NVML error means no reading (None) and a record with `clocks: null`,
never a failed run.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from opbench.record import Clocks

SAG = 0.9  # an SM clock below this fraction of its max, while busy, is a sagging clock
SAMPLE_S = 0.05  # the background sampler's period

# NVML's clocks-throttle (clocks-event) reason bits
IDLE = 0x1
APPLICATIONS_CLOCKS_SETTING = 0x2
SW_POWER_CAP = 0x4
HW_SLOWDOWN = 0x8
SYNC_BOOST = 0x10
SW_THERMAL = 0x20
HW_THERMAL = 0x40
POWER_BRAKE = 0x80
DISPLAY_CLOCK_SETTING = 0x100
REASONS = {SW_POWER_CAP: "sw_power_cap", HW_SLOWDOWN: "hw_slowdown", SW_THERMAL: "sw_thermal",
           HW_THERMAL: "hw_thermal", POWER_BRAKE: "power_brake", SYNC_BOOST: "sync_boost"}
COUNTING = SW_POWER_CAP | HW_SLOWDOWN | SW_THERMAL | HW_THERMAL | POWER_BRAKE  # what makes a window throttled


@dataclass(frozen=True)
class Reading:
    """One NVML reading: MHz, degrees C, watts, the throttle-reasons bitmask; None where NVML would not say."""

    sm_mhz: int | None
    sm_max_mhz: int | None
    mem_mhz: int | None = None
    temp_c: float | None = None
    power_w: float | None = None
    reasons: int = 0

    @property
    def idle(self) -> bool:
        return bool(self.reasons & IDLE)


def reason_names(mask: int) -> list[str]:
    """The named reasons set in `mask` (counting ones and sync boost), in bit order."""
    return [name for bit, name in sorted(REASONS.items()) if mask & bit]


def _busy_sm(readings: Sequence[Reading]) -> list[int]:
    """SM clocks of the readings taken while the GPU was busy (an idle GPU's low clock is no sag)."""
    return [r.sm_mhz for r in readings if r.sm_mhz is not None and not r.idle]


def _limit(readings: Sequence[Reading]) -> int | None:
    limits = [r.sm_max_mhz for r in readings if r.sm_max_mhz]
    return max(limits) if limits else None


def throttled(readings: Sequence[Reading]) -> bool:
    """A window's verdict: a busy SM clock below SAG of the max, or a counting throttle reason set."""
    sm, limit = _busy_sm(readings), _limit(readings)
    if sm and limit and min(sm) < SAG * limit:
        return True
    return any(r.reasons & COUNTING for r in readings)


def steady(reading: Reading) -> bool:
    """One reading of a GPU at work at full speed: busy, SM clock at ≥ SAG of its max, no throttle reason at all."""
    return not reading.idle and reading.sm_mhz is not None and bool(reading.sm_max_mhz) and not throttled([reading])


def verdict(windows: Sequence[Sequence[Reading]]) -> Clocks | None:
    """The record's `clocks` from the windows timed, in order (a second one only where the first was throttled):
    the last window's readings, repeated when there was more than one, flagged when the last is still throttled.
    None where the last window has no reading (no NVML)."""
    if not windows or not windows[-1]:
        return None
    last = windows[-1]
    sm = _busy_sm(last)
    mem = [r.mem_mhz for r in last if r.mem_mhz is not None and not r.idle]
    temps = [r.temp_c for r in last if r.temp_c is not None]
    power = [r.power_w for r in last if r.power_w is not None]
    mask = 0
    for r in last:
        mask |= r.reasons
    return Clocks(
        sm_mhz_min=min(sm) if sm else None, sm_mhz_max_seen=max(sm) if sm else None, sm_mhz_limit=_limit(last),
        mem_mhz=min(mem) if mem else None, temp_c=max(temps) if temps else None,
        power_w=round(max(power), 1) if power else None, throttle=reason_names(mask),
        repeated=len(windows) > 1, flagged=throttled(last),
    )


# --- NVML: everything below may fail; a failure is no reading -----------------------------------------------------

@dataclass(frozen=True)
class Target:
    """Which GPU NVML should read: its PCI bus id where the framework gives one, else its CUDA_VISIBLE_DEVICES
    entry (an NVML index, or a GPU-/MIG- UUID) or, without that variable, the framework's device index."""

    pci: str | None
    visible: str | None


def visible_entry(index: int) -> str:
    """The CUDA_VISIBLE_DEVICES entry of visible device `index` (its own index when the variable is unset). An
    index maps to NVML's order, which is the PCI order: right with CUDA_DEVICE_ORDER=PCI_BUS_ID or one visible GPU."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None or not visible.strip():
        return str(index)
    entries = [e.strip() for e in visible.split(",") if e.strip()]
    return entries[index] if 0 <= index < len(entries) else str(index)


def torch_target(torch, device) -> Target | None:
    """The NVML target of a torch CUDA device: the PCI bus id from its properties, and its visible entry."""
    try:
        index = device.index if device.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(index)
        bus, dev = getattr(props, "pci_bus_id", None), getattr(props, "pci_device_id", None)
        dom = getattr(props, "pci_domain_id", 0) or 0
        # NVML's form, "00000000:19:00.0" (torch.numa builds the sysfs one from the same three fields)
        pci = f"{dom:08X}:{bus:02X}:{dev:02X}.0" if isinstance(bus, int) and isinstance(dev, int) else None
        return Target(pci, visible_entry(index))
    except Exception:
        return None


_state: dict = {}  # "nvml": the module once initialised, or None when it cannot be; handles per target
_lock = threading.Lock()


def _nvml():
    with _lock:
        if "nvml" not in _state:
            try:
                import pynvml

                pynvml.nvmlInit()
                _state["nvml"] = pynvml
            except Exception as exc:
                _state["nvml"] = None
                if os.environ.get("OPBENCH_VERBOSE"):
                    print(f"opbench: clocks not read (NVML: {type(exc).__name__}: {exc})", file=sys.stderr)
        return _state["nvml"]


def _handle(nv, target: Target):
    if target.pci:
        try:
            return nv.nvmlDeviceGetHandleByPciBusId(target.pci)
        except Exception:
            pass
    entry = target.visible
    if entry is None:
        return None
    if entry.startswith(("GPU-", "MIG-")):
        return nv.nvmlDeviceGetHandleByUUID(entry)
    return nv.nvmlDeviceGetHandleByIndex(int(entry))


class Probe:
    """Reads one GPU through NVML; `read` never raises (None on any error)."""

    def __init__(self, nv, handle):
        self.nv, self.handle = nv, handle
        self._reasons = (getattr(nv, "nvmlDeviceGetCurrentClocksEventReasons", None)  # the newer name
                         or getattr(nv, "nvmlDeviceGetCurrentClocksThrottleReasons", None))

    def _try(self, call, *args):
        try:
            return call(self.handle, *args)
        except Exception:
            return None

    def read(self) -> Reading | None:
        nv = self.nv
        try:
            sm = self._try(nv.nvmlDeviceGetClockInfo, nv.NVML_CLOCK_SM)
            if sm is None:
                return None
            power = self._try(nv.nvmlDeviceGetPowerUsage)
            temp = self._try(nv.nvmlDeviceGetTemperature, nv.NVML_TEMPERATURE_GPU)
            return Reading(
                sm_mhz=int(sm), sm_max_mhz=_int(self._try(nv.nvmlDeviceGetMaxClockInfo, nv.NVML_CLOCK_SM)),
                mem_mhz=_int(self._try(nv.nvmlDeviceGetClockInfo, nv.NVML_CLOCK_MEM)),
                temp_c=float(temp) if temp is not None else None,
                power_w=power / 1000.0 if power is not None else None,
                reasons=int((self._try(self._reasons) if self._reasons else None) or 0),
            )
        except Exception:
            return None


def _int(value) -> int | None:
    return int(value) if isinstance(value, (int, float)) and value > 0 else None


def probe_for(backend) -> Probe | None:
    """The NVML probe of the device a backend runs on, opened once per device; None on the CPU, without pynvml,
    or on any NVML error."""
    if not getattr(backend, "has_cuda", False) or not hasattr(backend, "nvml_target"):
        return None
    try:
        target = backend.nvml_target()
        if target is None:
            return None
        nv = _nvml()
        if nv is None:
            return None
        with _lock:
            if target not in _state:
                try:
                    handle = _handle(nv, target)
                    probe = Probe(nv, handle) if handle is not None else None
                    _state[target] = probe if probe is not None and probe.read() is not None else None
                except Exception:
                    _state[target] = None
            return _state[target]
    except Exception:
        return None


class Window:
    """The readings of one timing window: `start` reads and starts the sampler thread, `stop` stops it (joined)
    and reads again. A reading that fails is left out."""

    def __init__(self, probe: Probe, period: float = SAMPLE_S):
        self.probe, self.period = probe, period
        self.readings: list[Reading] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _add(self) -> None:
        r = self.probe.read()
        if r is not None:
            self.readings.append(r)  # list.append is atomic under the GIL

    def _sample(self) -> None:
        while not self._stop.wait(self.period):
            self._add()

    def start(self) -> None:
        self._add()
        self._thread = threading.Thread(target=self._sample, name="opbench-clocks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        self._add()
