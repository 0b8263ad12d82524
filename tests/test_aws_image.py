"""The Lambda image (deploy/aws/Dockerfile) and the functions Terraform makes of it agree with the
package: every function's command names an entry point of ``glucosestream.aws.handlers`` taking
``(event, context)``, the image installs an extra the project has, and its entry point script is
valid shell. (The image itself cannot be built here: no Docker daemon; docs/aws.md lists the
check to run where one is.)"""

from __future__ import annotations

import inspect
import re
import subprocess
import tomllib
from pathlib import Path

from glucosestream.aws import handlers

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy" / "aws"


def _commands() -> dict[str, str]:
    text = (DEPLOY / "modules" / "glucosestream" / "compute.tf").read_text()
    return dict(re.findall(r'(\w+)\s*=\s*"glucosestream\.aws\.handlers\.(\w+)"', text))


def test_every_function_runs_an_entry_point_of_the_handlers_module():
    commands = _commands()
    # every entry point has its function, and every function an entry point
    assert set(commands.values()) == set(handlers.__all__) - {"settings"}
    for function, name in commands.items():
        entry = getattr(handlers, name, None)
        assert callable(entry), f"{function}: glucosestream.aws.handlers.{name} is missing"
        assert list(inspect.signature(entry).parameters) == ["event", "context"], function
        assert name in handlers.__all__


def test_the_image_installs_the_aws_extra_and_warms_the_kernels():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    installed = re.findall(r'build\[(\w+)\]"', dockerfile)
    assert installed == ["aws"]
    assert "boto3" in " ".join(extras["aws"])
    assert "-c ${LAMBDA_TASK_ROOT}/build/constraints.txt" in dockerfile
    assert "python -m glucosestream.metrics.warmup" in dockerfile
    assert 'CMD ["glucosestream.aws.handlers.ingest"]' in dockerfile
    for copied in re.findall(r"^COPY (\S+)", dockerfile, flags=re.M):
        assert (ROOT / copied).exists(), f"the Dockerfile copies {copied}, which is missing"


def test_the_entry_point_script_is_valid_shell_and_executable():
    script = DEPLOY / "image" / "entrypoint.sh"
    assert script.stat().st_mode & 0o111
    checked = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    assert "exec /lambda-entrypoint.sh" in script.read_text()
