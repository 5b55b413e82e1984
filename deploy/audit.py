"""Vulnerability scan of the locked dependencies that never passes for a scan it could not do.

`pip-audit` asks PyPI's JSON API about each pinned package. Where that API is unreachable
or answers 404 (as on machines that reach only a package mirror), pip-audit marks every
package "Dependency not found on PyPI and could not be audited", prints "No known
vulnerabilities found" and exits 0: a clean report for an audit that did not happen.
This wrapper reads pip-audit's JSON report instead of its exit code and says which of
three things happened (C7, S6, R6):

    exit 0  every locked package was audited; no known vulnerability
    exit 1  known vulnerabilities (listed with their fix versions)
    exit 3  the audit could NOT be performed, or not for every package: why, and which

Usage: python deploy/audit.py [-r requirements/dev.lock] [--pip-audit PATH]
"""

import argparse
import json
import subprocess  # nosec B404 - runs pip-audit from this venv with fixed arguments
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

CLEAN, VULNERABLE, NOT_PERFORMED = 0, 1, 3

# Seen in requests/urllib3 errors when no route, DNS or TLS connection reaches the service.
_NETWORK_MARKERS = (
    "ConnectionError",
    "Max retries exceeded",
    "NameResolutionError",
    "Name or service not known",
    "Temporary failure in name resolution",
    "Failed to establish a new connection",
    "Connection refused",
    "timed out",
    "ConnectTimeout",
    "ReadTimeout",
    "SSLError",
    "ProxyError",
    "Could not connect",
    "not redirecting properly",
)
_NOT_FOUND = "not found on PyPI"


@dataclass(frozen=True)
class Verdict:
    exit_code: int
    message: str


def _tail(text: str, lines: int = 3) -> str:
    kept = [line for line in text.strip().splitlines() if line.strip()]
    return "\n".join(kept[-lines:])


def _not_performed(why: str) -> Verdict:
    return Verdict(
        NOT_PERFORMED,
        f"VULNERABILITY AUDIT NOT PERFORMED: {why}\n"
        "This is not a clean result: the dependencies were not checked.",
    )


def classify(returncode: int, report: str | None, stderr: str) -> Verdict:
    """Decide what a pip-audit run showed, from its exit code, JSON report and stderr.

    Pure, so the detection is tested on canned outputs without a network.
    """
    if report is None or not report.strip():
        if any(marker in stderr for marker in _NETWORK_MARKERS):
            return _not_performed(
                "the vulnerability service could not be reached (network error):\n" + _tail(stderr)
            )
        return _not_performed(
            f"pip-audit exited with {returncode} and wrote no report:\n"
            + (_tail(stderr) or "(no output)")
        )
    try:
        dependencies = json.loads(report)["dependencies"]
    except (ValueError, KeyError, TypeError) as error:
        return _not_performed(f"pip-audit's report could not be read ({error})")

    skipped = [d for d in dependencies if "skip_reason" in d]
    audited = [d for d in dependencies if "skip_reason" not in d]
    vulnerable = [d for d in audited if d.get("vulns")]

    findings = [
        f"  {d['name']} {d.get('version', '?')}: {v['id']}"
        + (f" (fixed in {', '.join(v['fix_versions'])})" if v.get("fix_versions") else "")
        for d in vulnerable
        for v in d["vulns"]
    ]
    if vulnerable:
        message = f"{len(findings)} known vulnerabilities in {len(vulnerable)} packages:\n"
        message += "\n".join(findings)
        if skipped:
            message += f"\nand {len(skipped)} packages could not be audited at all."
        return Verdict(VULNERABLE, message)

    if not dependencies:
        return _not_performed("pip-audit reported no dependencies: nothing was audited")
    if not audited:
        if all(_NOT_FOUND in d["skip_reason"] for d in skipped):
            why = (
                f"the vulnerability database did not answer for any of the {len(skipped)} "
                "locked packages (every lookup came back 'Dependency not found on PyPI'): "
                "PyPI's JSON API is unreachable or blocked from this machine"
            )
        else:
            why = f"none of the {len(skipped)} locked packages could be audited"
        return _not_performed(f"{why}.\n  e.g. {skipped[0]['skip_reason']}")
    if skipped:
        listed = "\n".join(f"  {d['name']}: {d['skip_reason']}" for d in skipped)
        return _not_performed(
            f"{len(skipped)} of {len(dependencies)} locked packages could not be audited:\n"
            + listed
        )
    if returncode != 0:
        return _not_performed(
            f"pip-audit exited with {returncode} without reporting a vulnerability:\n"
            + (_tail(stderr) or "(no output)")
        )
    return Verdict(CLEAN, f"Audited {len(audited)} locked packages: no known vulnerabilities.")


def run_pip_audit(pip_audit: str, requirements: Path, timeout: float) -> Verdict:
    with tempfile.TemporaryDirectory() as tmp:
        report_path = Path(tmp) / "report.json"
        command = [
            pip_audit,
            "--requirement",
            str(requirements),
            # Hash-pinned lock: audit exactly these versions, resolve nothing, run no pip.
            "--require-hashes",
            "--disable-pip",
            "--progress-spinner",
            "off",
            "--format",
            "json",
            "--output",
            str(report_path),
        ]
        try:
            done = subprocess.run(  # nosec B603 - fixed argv, no shell
                command, capture_output=True, text=True, timeout=timeout, check=False
            )
        except FileNotFoundError:
            return _not_performed(f"pip-audit not found at {pip_audit} (run `make install`)")
        except subprocess.TimeoutExpired:
            return _not_performed(f"pip-audit did not finish within {timeout:.0f} s")
        report = report_path.read_text() if report_path.exists() else None
        return classify(done.returncode, report, done.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").partition("\n")[0])
    parser.add_argument("-r", "--requirements", type=Path, default=Path("requirements/dev.lock"))
    parser.add_argument(
        "--pip-audit",
        default=str(Path(sys.executable).with_name("pip-audit")),
        help="pip-audit executable (default: the one beside this Python)",
    )
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument(
        "--allow-not-performed",
        action="store_true",
        help="exit 0 (after saying so) when the audit could not be performed, e.g. in a CI "
        "without a route to PyPI's JSON API; vulnerabilities still exit 1",
    )
    args = parser.parse_args(argv)
    verdict = run_pip_audit(args.pip_audit, args.requirements, args.timeout)
    print(verdict.message, file=sys.stdout if verdict.exit_code == CLEAN else sys.stderr)
    if verdict.exit_code == NOT_PERFORMED and args.allow_not_performed:
        print("audit not performed: allowed by --allow-not-performed", file=sys.stderr)
        return CLEAN
    return verdict.exit_code


if __name__ == "__main__":
    sys.exit(main())
