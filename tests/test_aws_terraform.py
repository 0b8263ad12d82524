"""deploy/aws offline, layers 1-3 of the AWS deploy's tests: ``terraform fmt`` and ``validate``;
``terraform test`` with a mocked provider asserting the security invariants (the module's
tests/*.tftest.hcl), and a deliberately broken copy that the policy test must catch; checkov with
the reviewed skips (each a ``checkov:skip`` comment with its reason beside the resource), none
of them stale.

Terraform and the AWS provider come from the machine's image (tests/terraform_cli.py); the tests
skip where either is absent. checkov runs from its own virtual environment (scripts/checkov.sh),
and the checkov tests skip where that cannot be made.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .terraform_cli import DEPLOY, SKIP_REASON, Terraform, copy_deploy, terraform_env

pytestmark = pytest.mark.skipif(bool(SKIP_REASON), reason=SKIP_REASON or "terraform is here")

ROOT = Path(__file__).resolve().parents[1]
MODULE = Path("modules") / "glucosestream"
# Every run of the module's tests/*.tftest.hcl: a deleted file or run fails the count.
TFTEST_RUNS = {"invariants.tftest.hcl": 13, "policies.tftest.hcl": 2}
CHECKOV_UNAVAILABLE = 3  # scripts/checkov.sh's exit status when it cannot install checkov
_SKIP_COMMENT = re.compile(r"^\s*#\s*checkov:skip=.*\n", re.MULTILINE)


@dataclass(frozen=True)
class Scratch:
    """A scratch folder holding a copy of deploy/aws, and terraform's environment (one CLI
    config and plugin cache for the session)."""

    root: Path
    env: dict[str, str]

    def copy(self, name: str) -> Path:
        return copy_deploy(self.root / name)

    def terraform(self, workdir: Path) -> Terraform:
        return Terraform(workdir, self.env)

    def init(self, workdir: Path) -> Terraform:
        terraform = self.terraform(workdir)
        terraform.run("init", "-backend=false", "-input=false", "-no-color")
        return terraform


@pytest.fixture(scope="session")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Scratch:
    root = tmp_path_factory.mktemp("terraform")
    return Scratch(root, terraform_env(root))


@pytest.fixture(scope="module")
def deploy_copy(scratch: Scratch) -> Path:
    return scratch.copy("deploy")


def test_terraform_files_are_formatted(scratch: Scratch, deploy_copy: Path) -> None:
    output = scratch.terraform(deploy_copy).run("fmt", "-check", "-recursive", "-diff", check=False)
    assert output.strip() == "", f"run `terraform fmt -recursive deploy/aws`:\n{output}"


@pytest.mark.parametrize("root", [str(MODULE), "example"])
def test_the_module_and_the_example_root_validate(
    scratch: Scratch, deploy_copy: Path, root: str
) -> None:
    terraform = scratch.init(deploy_copy / root)
    output = terraform.run("validate", "-no-color")
    assert "Success! The configuration is valid." in output


def test_terraform_test_proves_the_security_invariants(scratch: Scratch, deploy_copy: Path) -> None:
    module = deploy_copy / MODULE
    assert sorted(p.name for p in (module / "tests").glob("*.tftest.hcl")) == sorted(TFTEST_RUNS)
    terraform = scratch.init(module)
    output = terraform.run("test", "-no-color", check=False)
    runs = sum(TFTEST_RUNS.values())
    assert f"Success! {runs} passed, 0 failed." in output, output


# Broken copies the policy run must catch: (what the module grants, what the copy grants
# instead, the message of the one assertion that must fail).
BROKEN_POLICIES = {
    "wildcard_action": (
        'Action   = ["s3:GetObject"]',
        'Action   = ["s3:GetObject", "s3:*"]',
        "A policy allows a wildcard action",
    ),
    # The functions' dead-letter statement, outside the statements allowed Resource "*".
    "wildcard_resource": (
        "Resource = aws_sqs_queue.lambda_dlq.arn",
        'Resource = "*"',
        'A policy allows Resource "*" outside the statements AWS requires it for',
    ),
}


@pytest.mark.parametrize("broken", sorted(BROKEN_POLICIES))
def test_a_broken_policy_fails_the_policy_test(scratch: Scratch, broken: str) -> None:
    granted, instead, message = BROKEN_POLICIES[broken]
    module = scratch.copy(f"broken-{broken}") / MODULE
    iam = module / "iam.tf"
    text = iam.read_text()
    assert text.count(granted) == 1
    iam.write_text(text.replace(granted, instead))
    terraform = scratch.init(module)
    output = terraform.run("test", "-no-color", "-filter=tests/policies.tftest.hcl", check=False)
    assert "Failure! 1 passed, 1 failed." in output, output
    assert 'run "no_policy_allows_a_wildcard_action_or_an_unneeded_wildcard_resource"... fail' in (
        output
    )
    assert message in output
    others = {m for _, _, m in BROKEN_POLICIES.values()} - {message}
    assert not any(other in output for other in others), output


def _checkov(directory: Path) -> dict[str, Any]:
    """checkov's JSON report over ``directory`` (a deploy/aws) with its .checkov.yaml."""
    done = subprocess.run(
        [
            str(ROOT / "scripts" / "checkov.sh"),
            *("--directory", str(directory)),
            *("--config-file", str(directory / ".checkov.yaml")),
            *("--output", "json"),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if done.returncode == CHECKOV_UNAVAILABLE:
        pytest.skip(done.stderr.strip())
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        message = f"checkov gave no JSON report:\n{done.stdout}\n{done.stderr}"
        raise AssertionError(message) from None
    assert isinstance(report, dict), "checkov ran more than the terraform framework"
    return report


@pytest.fixture(scope="module")
def checkov_report() -> dict[str, Any]:
    return _checkov(DEPLOY)


def _checks(report: dict[str, Any], kind: str) -> set[tuple[str, str]]:
    return {(check["check_id"], check["resource"]) for check in report["results"][kind]}


def test_checkov_fails_nothing_beyond_the_reviewed_skips(checkov_report: dict[str, Any]) -> None:
    summary = checkov_report["summary"]
    failed = sorted(_checks(checkov_report, "failed_checks"))
    assert summary["failed"] == 0, f"checkov failed checks: {failed}"
    assert summary["parsing_errors"] == 0
    assert summary["passed"] > 100
    assert summary["skipped"] == len(checkov_report["results"]["skipped_checks"]) > 0
    for check in checkov_report["results"]["skipped_checks"]:
        reason = check["check_result"].get("suppress_comment") or ""
        assert len(reason) >= 40, f"{check['check_id']} on {check['resource']}: no reason given"


def test_every_checkov_skip_is_still_needed(checkov_report: dict[str, Any], tmp_path: Path) -> None:
    """Without its skip comments the configuration must fail exactly the skipped checks: a skip
    whose check would pass is stale, and is to be removed."""
    unskipped = tmp_path / "aws"
    shutil.copytree(DEPLOY, unskipped, ignore=shutil.ignore_patterns(".terraform*"))
    for tf in unskipped.rglob("*.tf"):
        tf.write_text(_SKIP_COMMENT.sub("", tf.read_text()))
    report = _checkov(unskipped)
    assert report["summary"]["skipped"] == 0
    skipped = _checks(checkov_report, "skipped_checks")
    failed = _checks(report, "failed_checks")
    assert sorted(skipped - failed) == [], "stale skips: these checks pass without them"
    assert sorted(failed - skipped) == []
