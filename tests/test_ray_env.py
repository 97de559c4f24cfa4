"""Which of the driver's variables the Ray executor hands to its workers (pure: no cluster)."""

from __future__ import annotations

from orchestrator.executors.ray.driver import forwarded_env


def test_gpu_and_framework_settings_are_forwarded_but_paths_and_device_choice_are_not():
    env = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1",
           "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": "0,1", "CUDA_HOME": "/usr/local/cuda", "PATH": "/bin",
           "HOME": "/root", "VIRTUAL_ENV": "/venv"}
    assert forwarded_env(env) == {"HF_HUB_OFFLINE": "1", "NCCL_NVLS_ENABLE": "0", "NVSHMEM_DISABLE_NVLS": "1",
                                  "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1"}
