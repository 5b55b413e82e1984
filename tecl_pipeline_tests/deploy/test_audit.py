"""deploy/audit.py tells a real vulnerability audit from one that could not be done (C7, R6).

The canned outputs are shaped like pip-audit 2.10's JSON report; the first is what it
produces on machines that reach only a package mirror (every lookup a 404).
"""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _load_audit():
    spec = importlib.util.spec_from_file_location("deploy_audit", REPO / "deploy" / "audit.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Registered first: dataclasses look their module up in sys.modules.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


audit = _load_audit()


def skipped(name: str, version: str) -> dict:
    reason = f"Dependency not found on PyPI and could not be audited: {name} ({version})"
    return {"name": name, "skip_reason": reason}


def audited(name: str, version: str, *vulns: dict) -> dict:
    return {"name": name, "version": version, "vulns": list(vulns)}


def report(*dependencies: dict) -> str:
    return json.dumps({"dependencies": list(dependencies), "fixes": []})


ALL_NOT_FOUND = report(skipped("alembic", "1.20.1"), skipped("boto3", "1.44.8"))
NETWORK_TRACEBACK = """Traceback (most recent call last):
  File "/work/main/.venv/bin/pip-audit", line 8, in <module>
requests.exceptions.ConnectionError: HTTPSConnectionPool(host='pypi.org', port=443): Max \
retries exceeded with url: /pypi/alembic/1.20.1/json (Caused by NameResolutionError(\
"HTTPSConnection(host='pypi.org', port=443): Failed to resolve 'pypi.org'"))
"""
CVE = {"id": "PYSEC-2099-1", "fix_versions": ["2.0.1"], "aliases": ["CVE-2099-1"]}


def test_every_package_not_found_is_not_a_clean_result():
    # What pip-audit itself calls success: exit 0 and "No known vulnerabilities found".
    verdict = audit.classify(0, ALL_NOT_FOUND, "No known vulnerabilities found\n")
    assert verdict.exit_code == audit.NOT_PERFORMED == 3
    assert "NOT PERFORMED" in verdict.message
    assert "unreachable" in verdict.message
    assert "any of the 2 locked packages" in verdict.message


def test_network_error_without_a_report_is_not_performed():
    verdict = audit.classify(1, None, NETWORK_TRACEBACK)
    assert verdict.exit_code == 3
    assert "could not be reached" in verdict.message
    assert "Failed to resolve 'pypi.org'" in verdict.message


def test_other_failure_without_a_report_is_not_performed():
    stderr = "ERROR:pip_audit._cli:requirement alpaca-py==0.44.0 does not contain a hash\n"
    verdict = audit.classify(1, None, stderr)
    assert verdict.exit_code == 3
    assert "does not contain a hash" in verdict.message


def test_some_packages_skipped_is_incomplete_not_clean():
    verdict = audit.classify(0, report(audited("attrs", "26.1.0"), skipped("boto3", "1.44.8")), "")
    assert verdict.exit_code == 3
    assert "1 of 2 locked packages could not be audited" in verdict.message
    assert "boto3" in verdict.message


@pytest.mark.parametrize("text", ["", "not json", '{"fixes": []}', "[1, 2]"])
def test_unreadable_report_is_not_performed(text):
    assert audit.classify(0, text, "").exit_code == 3


def test_empty_report_is_not_performed():
    assert audit.classify(0, report(), "").exit_code == 3


def test_nonzero_exit_without_findings_is_not_performed():
    assert audit.classify(2, report(audited("attrs", "26.1.0")), "boom").exit_code == 3


def test_vulnerabilities_are_listed_with_their_fixes():
    verdict = audit.classify(1, report(audited("attrs", "26.1.0"), audited("x", "1.0", CVE)), "")
    assert verdict.exit_code == audit.VULNERABLE == 1
    assert "x 1.0: PYSEC-2099-1 (fixed in 2.0.1)" in verdict.message


def test_vulnerabilities_with_skips_still_say_what_was_not_audited():
    verdict = audit.classify(1, report(audited("x", "1.0", CVE), skipped("boto3", "1.44.8")), "")
    assert verdict.exit_code == 1
    assert "1 packages could not be audited" in verdict.message


def test_a_full_audit_without_findings_is_clean():
    verdict = audit.classify(0, report(audited("attrs", "26.1.0"), audited("boto3", "1.44.8")), "")
    assert verdict.exit_code == audit.CLEAN == 0
    assert "Audited 2 locked packages" in verdict.message


def fake_pip_audit(tmp_path: Path, canned: str, exit_code: int) -> Path:
    """A stand-in pip-audit that records its argv and writes a canned JSON report."""
    script = tmp_path / "pip-audit"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, sys\n"
        f"open({str(tmp_path / 'argv.json')!r}, 'w').write(json.dumps(sys.argv[1:]))\n"
        "out = sys.argv[sys.argv.index('--output') + 1]\n"
        f"open(out, 'w').write({canned!r})\n"
        "print('No known vulnerabilities found', file=sys.stderr)\n"
        f"sys.exit({exit_code})\n"
    )
    script.chmod(0o755)
    return script


def test_main_runs_pip_audit_on_the_lock_and_exits_3_when_nothing_was_audited(tmp_path, capsys):
    script = fake_pip_audit(tmp_path, ALL_NOT_FOUND, 0)
    code = audit.main(["-r", str(REPO / "requirements" / "dev.lock"), "--pip-audit", str(script)])
    assert code == 3
    assert "VULNERABILITY AUDIT NOT PERFORMED" in capsys.readouterr().err
    argv = json.loads((tmp_path / "argv.json").read_text())
    assert argv[:2] == ["--requirement", str(REPO / "requirements" / "dev.lock")]
    assert {"--require-hashes", "--disable-pip"} <= set(argv)
    assert argv[argv.index("--format") + 1] == "json"


def test_main_reports_clean_only_for_a_full_audit(tmp_path, capsys):
    script = fake_pip_audit(tmp_path, report(audited("attrs", "26.1.0")), 0)
    assert audit.main(["--pip-audit", str(script)]) == 0
    assert "no known vulnerabilities" in capsys.readouterr().out


def test_missing_pip_audit_is_not_performed(tmp_path):
    verdict = audit.run_pip_audit(str(tmp_path / "absent"), REPO / "requirements" / "dev.lock", 10)
    assert verdict.exit_code == 3
    assert "not found" in verdict.message
