"""Terraform for the deploy/aws tests, offline: the binary, the AWS provider's filesystem mirror,
and a CLI config of the tests' own.

These machines carry terraform and the AWS provider as a filesystem mirror in their image, with no
registry access (PLATFORM.md). ``terraform_env`` writes a CLI config that installs the provider
from the mirror (never the network) into a plugin cache, so the 700 MB provider is linked, not
copied, by every ``terraform init``. ``SKIP_REASON`` says why the tests cannot run where terraform
or the mirror is absent. ``copy_module`` puts the module in a scratch folder: ``init`` never writes
into the source tree.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

__all__ = [
    "DEPLOY",
    "SKIP_REASON",
    "Terraform",
    "copy_deploy",
    "find_mirror",
    "terraform_env",
]

DEPLOY = Path(__file__).resolve().parents[1] / "deploy" / "aws"
PROVIDER = Path("registry.terraform.io") / "hashicorp" / "aws"
_SEARCH_ROOTS = ("/opt", "/usr/share", "/usr/local/share", "/usr/local", "/var/lib", "/root")


@cache
def find_mirror() -> Path | None:
    """The root of a filesystem mirror holding the hashicorp/aws provider, or None.

    ``GLUCOSESTREAM_TF_MIRROR`` names it outright; else the usual places are searched the way
    PLATFORM.md says (a ``registry.terraform.io`` folder at most four levels down).
    """
    named = os.environ.get("GLUCOSESTREAM_TF_MIRROR")
    if named:
        return Path(named) if (Path(named) / PROVIDER).is_dir() else None
    for root in _SEARCH_ROOTS:
        base = Path(root)
        if not base.is_dir():
            continue
        for depth in range(4):
            for candidate in base.glob("/".join(["*"] * depth + ["registry.terraform.io"])):
                if (candidate.parent / PROVIDER).is_dir():
                    return candidate.parent
    return None


def _skip_reason() -> str:
    if shutil.which("terraform") is None:
        return "terraform is not on PATH (these machines carry 1.11 in their image)"
    if find_mirror() is None:
        return (
            "no filesystem mirror of the hashicorp/aws provider was found (a registry.terraform.io"
            " folder under /opt or /usr/share; or set GLUCOSESTREAM_TF_MIRROR)"
        )
    return ""


SKIP_REASON = _skip_reason()


def terraform_env(scratch: Path) -> dict[str, str]:
    """The environment for terraform: a CLI config in ``scratch`` that installs hashicorp
    providers from the mirror only, with a plugin cache there; no checkpoint calls."""
    mirror = find_mirror()
    if mirror is None:
        raise RuntimeError(SKIP_REASON)
    cache_dir = scratch / "plugin-cache"
    cache_dir.mkdir(parents=True, exist_ok=True)
    config = scratch / "terraform.rc"
    config.write_text(
        f'plugin_cache_dir = "{cache_dir}"\n'
        "plugin_cache_may_break_dependency_lock_file = true\n"
        "provider_installation {\n"
        "  filesystem_mirror {\n"
        f'    path    = "{mirror}"\n'
        '    include = ["registry.terraform.io/hashicorp/*"]\n'
        "  }\n"
        "  direct {\n"
        '    exclude = ["registry.terraform.io/hashicorp/*"]\n'
        "  }\n"
        "}\n"
    )
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("TF_", "AWS_"))
    }  # nothing of the caller's AWS or terraform set-up leaks in
    env.update(
        TF_CLI_CONFIG_FILE=str(config),
        TF_IN_AUTOMATION="1",
        TF_INPUT="0",
        CHECKPOINT_DISABLE="1",
    )
    return env


def copy_deploy(scratch: Path) -> Path:
    """A copy of deploy/aws in ``scratch`` (its .terraform folders and state left behind)."""
    target = scratch / "aws"
    shutil.copytree(
        DEPLOY,
        target,
        ignore=shutil.ignore_patterns(".terraform", "*.tfstate*", ".terraform.lock.hcl"),
    )
    return target


@dataclass(frozen=True)
class Terraform:
    """terraform in one working folder with the tests' environment."""

    workdir: Path
    env: dict[str, str]

    def run(self, *args: str, timeout: float = 600, check: bool = True) -> str:
        """Run ``terraform ARGS``; its output (stdout and stderr); raise with it on failure."""
        done = subprocess.run(
            ["terraform", *args],
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        output = done.stdout + done.stderr
        if check and done.returncode != 0:
            raise AssertionError(f"terraform {' '.join(args)} failed:\n{output}")
        return output
