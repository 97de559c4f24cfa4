"""Run inside the base interpreter (stdlib only): print what host mode needs to know about it as JSON."""

import json
import os
import platform
import sys
from importlib import metadata


def main() -> None:
    site_dirs = [p for p in sys.path if p.rstrip("/").endswith(("site-packages", "dist-packages")) and os.path.isdir(p)]
    packages: dict[str, str] = {}
    for dist in metadata.distributions(path=site_dirs):
        name = dist.metadata["Name"]
        if name:
            packages.setdefault(name, dist.version)  # first on sys.path wins, as at import time
    markers = {
        "implementation_name": sys.implementation.name,
        "implementation_version": platform.python_version(),
        "os_name": os.name,
        "platform_machine": platform.machine(),
        "platform_python_implementation": platform.python_implementation(),
        "platform_release": platform.release(),
        "platform_system": platform.system(),
        "platform_version": platform.version(),
        "python_full_version": platform.python_version(),
        "python_version": ".".join(platform.python_version_tuple()[:2]),
        "sys_platform": sys.platform,
    }
    print(json.dumps({
        "executable": sys.executable,
        "version": platform.python_version(),
        "site_dirs": site_dirs,
        "packages": packages,
        "markers": markers,
    }))


if __name__ == "__main__":
    main()
