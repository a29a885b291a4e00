"""OpenMP's wait policy: passive by default, a researcher's own value kept, never claimed late.

The subprocess tests read what GNU OpenMP itself says it runs with
(``OMP_DISPLAY_ENV=VERBOSE`` prints its settings as torch loads it): ``GOMP_SPINCOUNT``
is how long a worker spins before it sleeps, 0 when it is passive.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from ami import openmp

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def keep_the_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    """What this process's own ami chose stays what the other tests' threads report."""
    monkeypatch.setattr(openmp, "_chosen", openmp._chosen)


linux_only = pytest.mark.skipif(sys.platform != "linux", reason="torch's GNU OpenMP is Linux's")


def test_an_unset_policy_becomes_passive_before_torch_loads() -> None:
    environ: dict[str, str] = {}
    said = openmp.choose_wait_policy(environ, modules={})
    assert environ == {"OMP_WAIT_POLICY": "PASSIVE"}
    assert said.startswith("passive (ami's default")


def test_a_researchers_own_policy_is_kept() -> None:
    environ = {"OMP_WAIT_POLICY": "active"}
    said = openmp.choose_wait_policy(environ, modules={})
    assert environ == {"OMP_WAIT_POLICY": "active"}
    assert said == "active (OMP_WAIT_POLICY=active from the environment)"


def test_nothing_is_set_or_claimed_once_torch_has_loaded() -> None:
    environ: dict[str, str] = {}
    said = openmp.choose_wait_policy(environ, modules={"torch": ModuleType("torch")})
    assert environ == {}  # a value set now would claim a policy OpenMP never read
    assert said == (
        "as torch loaded before ami (OMP_WAIT_POLICY unset: spin, then sleep; "
        "import ami first to choose)"
    )
    assert openmp.wait_policy() == said


def openmp_settings(code: str, **environ: str) -> tuple[str, str]:
    """GNU OpenMP's spin count as it loaded in ``python -c code``, and what ami said."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(environ, OMP_DISPLAY_ENV="VERBOSE", PYTHONPATH=str(ROOT))
    result = subprocess.run(
        [sys.executable, "-c", code + "; import ami.openmp as o; print(o.wait_policy())"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    spin = re.search(r"GOMP_SPINCOUNT = '(\d+)'", result.stderr)
    assert spin is not None, f"GNU OpenMP printed no settings:\n{result.stderr}"
    return spin.group(1), result.stdout.strip()


@linux_only
def test_importing_ami_first_makes_torchs_workers_passive() -> None:
    spin, said = openmp_settings("import ami, torch; torch.ones(1)")
    assert spin == "0"
    assert said.startswith("passive")


@linux_only
def test_an_active_policy_from_the_environment_reaches_openmp() -> None:
    spin, said = openmp_settings("import ami, torch; torch.ones(1)", OMP_WAIT_POLICY="ACTIVE")
    assert int(spin) > 300_000
    assert said.startswith("active (OMP_WAIT_POLICY=ACTIVE")


@linux_only
def test_openmps_own_spinning_comes_back_with_its_spin_count() -> None:
    spin, said = openmp_settings("import ami, torch; torch.ones(1)", GOMP_SPINCOUNT="300000")
    assert spin == "300000"
    assert said.endswith(", spinning GOMP_SPINCOUNT=300000 from the environment")


@linux_only
def test_torch_loaded_first_keeps_openmps_default_and_says_so() -> None:
    spin, said = openmp_settings("import torch, ami; torch.ones(1)")
    assert spin == "300000"  # GNU OpenMP's own default: spin, then sleep
    assert said.startswith("as torch loaded before ami")
