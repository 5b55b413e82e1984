"""The AWS template: linted (A7), least privilege (S3), encrypted and TLS-only (S5), old
versions, quarantine, probes and captured logs expired (A10).

The template is read with cfn-lint's own loader, which turns !Ref/!Sub/!GetAtt into their
long forms. IAM resources are rendered to the ARNs CloudFormation would produce, so a
wildcard hidden in an intrinsic (LogGroup.Arn ends in ":*") is caught like a literal one.
"""

import re
import subprocess
import sysconfig
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import decode_str

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "deploy" / "cloudformation.yaml"
# The venv's scripts folder: the cfn-lint pinned in requirements/dev.lock, not one on PATH.
CFN_LINT = Path(sysconfig.get_path("scripts")) / "cfn-lint"

ACCOUNT, REGION = "123456789012", "us-east-1"
PSEUDO = {
    "AWS::Partition": "aws",
    "AWS::Region": REGION,
    "AWS::AccountId": ACCOUNT,
    "AWS::StackName": "tecl-stack",
    "AWS::URLSuffix": "amazonaws.com",
}

# The pipeline's whole grant. A new permission is a reviewed change to this set.
POLICY_ACTIONS = {
    "s3:GetObject",
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:ListBucket",
    "s3:GetBucketLocation",
    "secretsmanager:GetSecretValue",
    "secretsmanager:DescribeSecret",
}


class Unrenderable(Exception):
    """An IAM value in a form the check cannot resolve: rejected rather than trusted."""


def load(text: str) -> dict[str, Any]:
    template, matches = decode_str(text)
    assert not matches, [str(m) for m in matches]
    assert template is not None
    return template


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load(TEMPLATE.read_text())


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# --- rendering intrinsics to the strings CloudFormation would produce ---------------------


def _ref(name: str, template: dict[str, Any]) -> str:
    if name in PSEUDO:
        return PSEUDO[name]
    if name in template.get("Parameters", {}):
        parameter = template["Parameters"][name]
        return str(parameter.get("Default", f"param-{name}"))
    resource = template.get("Resources", {}).get(name)
    if resource is None:
        raise Unrenderable(f"Ref to unknown {name}")
    kind = resource["Type"]
    if kind == "AWS::SecretsManager::Secret":
        return f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{name}-AbCdEf"
    return f"{name.lower()}-physical-id"


def _getatt(target: str, attribute: str, template: dict[str, Any]) -> str:
    resource = template.get("Resources", {}).get(target)
    if resource is None:
        raise Unrenderable(f"GetAtt of unknown {target}")
    kind = (resource["Type"], attribute)
    if kind == ("AWS::S3::Bucket", "Arn"):
        return f"arn:aws:s3:::{_ref(target, template)}"
    if kind == ("AWS::Logs::LogGroup", "Arn"):
        # What CloudFormation really returns: every stream of the group.
        return f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{_ref(target, template)}:*"
    raise Unrenderable(f"GetAtt {target}.{attribute} ({resource['Type']})")


def render(value: Any, template: dict[str, Any]) -> list[str]:
    """The literal strings an IAM field resolves to."""
    if isinstance(value, list):
        return [s for item in value for s in render(item, template)]
    if isinstance(value, str):
        return [str(value)]
    if isinstance(value, dict) and len(value) == 1:
        function, argument = next(iter(value.items()))
        if function == "Ref":
            return [_ref(argument, template)]
        if function == "Fn::GetAtt":
            target, attribute = (
                argument.split(".", 1) if isinstance(argument, str) else list(argument)
            )
            return [_getatt(target, attribute, template)]
        if function == "Fn::Sub":
            text, variables = (argument, {}) if isinstance(argument, str) else argument

            def substitute(match: re.Match[str]) -> str:
                name = match.group(1)
                if name in variables:
                    (single,) = render(variables[name], template)
                    return single
                if "." in name and name not in PSEUDO:
                    resource, attribute = name.split(".", 1)
                    return _getatt(resource, attribute, template)
                return _ref(name, template)

            return [re.sub(r"\$\{([^}!]+)\}", substitute, str(text))]
        if function == "Fn::Join":
            separator, parts = argument
            return [separator.join(s for part in parts for s in render(part, template))]
    raise Unrenderable(f"cannot render {value!r}")


# --- the wildcard check (S3) ----------------------------------------------------------------


def policy_statements(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every IAM policy statement anywhere in the template, with where it is."""
    if isinstance(node, dict):
        for key, value in node.items():
            where = f"{path}.{key}" if path else str(key)
            if key == "Statement":
                for index, statement in enumerate(as_list(value)):
                    yield f"{where}[{index}]", statement
            elif key.endswith("PolicyDocument") and isinstance(value, str):
                # A JSON string is opaque to this walk: flag it instead of skipping it.
                yield where, {"Effect": "Allow", "Action": "<unparsed JSON policy>"}
            else:
                yield from policy_statements(value, where)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from policy_statements(item, f"{path}[{index}]")


def resource_is_too_broad(arn: str) -> bool:
    """True for "*", "...:*", a wildcard in the partition/service/region/account fields, or
    anywhere but a final "/*" under a named path (bucket/prefix/*, log-stream:prefix/*)."""
    if not arn.startswith("arn:"):
        return True
    fields = arn.split(":", 5)
    if len(fields) < 6 or any("*" in field for field in fields[:5]):
        return True
    stars = arn.count("*")
    return stars > 1 or (stars == 1 and not (arn.endswith("/*") and len(fields[5]) > 2))


def wildcard_problems(template: dict[str, Any]) -> list[str]:
    problems = []
    for where, statement in policy_statements(template):
        if not isinstance(statement, dict):
            problems.append(f"{where}: statement is not a mapping")
            continue
        # A Deny only ever narrows access; a broad one (deny all S3 over plain HTTP) is
        # stronger than a listed one, so the wildcard rule applies to grants.
        if statement.get("Effect") == "Deny":
            continue
        for key in ("NotAction", "NotResource", "NotPrincipal"):
            if key in statement:
                problems.append(f"{where}: {key} in an Allow grants everything else")
        for action in as_list(statement.get("Action", [])):
            if not isinstance(action, str) or "*" in action or ":" not in action:
                problems.append(f"{where}: action {action!r}")
        try:
            resources = render(statement.get("Resource", []), template)
        except Unrenderable as error:
            problems.append(f"{where}: resource {error}")
            resources = []
        problems += [f"{where}: resource {r!r}" for r in resources if resource_is_too_broad(r)]
        principal = statement.get("Principal")
        if principal == "*" or (isinstance(principal, dict) and "*" in principal.values()):
            problems.append(f"{where}: Allow to every principal")
    return problems


# --- the template as it is -------------------------------------------------------------------


def test_cfn_lint_passes_without_errors_or_warnings():
    # --include-checks I: informational findings fail too, so the template stays fully clean.
    done = subprocess.run(
        [str(CFN_LINT), "--include-checks", "I", "--", str(TEMPLATE)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"cfn-lint exited {done.returncode}:\n{done.stdout}{done.stderr}"


def test_no_iam_statement_grants_a_wildcard(template):
    statements = list(policy_statements(template))
    # The bucket policy's 2 denies, the pipeline policy's 5 grants and the log reader's 2:
    # the walk really reaches them, so an empty problem list means something.
    assert len(statements) == 9
    assert wildcard_problems(template) == []


def managed_policy(template: dict[str, Any], name: str = "PipelineAccessPolicy") -> list[Any]:
    policy = template["Resources"][name]
    assert policy["Type"] == "AWS::IAM::ManagedPolicy"
    return as_list(policy["Properties"]["PolicyDocument"]["Statement"])


def granted(statements: list[Any]) -> set[str]:
    return {
        action
        for statement in statements
        if statement["Effect"] == "Allow"
        for action in as_list(statement["Action"])
    }


def test_pipeline_policy_grants_exactly_the_listed_actions(template):
    assert granted(managed_policy(template)) == POLICY_ACTIONS
    # The template grants through its two policies only: no role, user or group with
    # grants of their own beside them.
    kinds = {r["Type"] for r in template["Resources"].values()}
    assert not kinds & {"AWS::IAM::Role", "AWS::IAM::User", "AWS::IAM::Group", "AWS::IAM::Policy"}
    policies = [
        n for n, r in template["Resources"].items() if r["Type"] == "AWS::IAM::ManagedPolicy"
    ]
    assert sorted(policies) == ["LogReadPolicy", "PipelineAccessPolicy"]


def test_the_webservers_policy_reads_the_captured_logs_and_nothing_else(template):
    """S3: the webserver (on Kubernetes) reads the runs' captured logs; the journal, the
    outputs and the secret are out of its reach."""
    statements = managed_policy(template, "LogReadPolicy")
    assert granted(statements) == {"s3:GetObject", "s3:ListBucket"}
    prefix = template["Parameters"]["StatePrefix"]["Default"]
    bucket = f"arn:aws:s3:::{_ref('StateBucket', template)}"
    by_sid = {s["Sid"]: s for s in statements}
    [objects] = render(by_sid["ReadCapturedLogs"]["Resource"], template)
    assert objects == f"{bucket}/{prefix}/logs/*"
    for key, readable in [
        ("logs/compute/storage/run/x.out", True),
        ("journal/sessions/2024-03-04/x-run.json", False),
        ("dagster-io/market_data/2024-03-04", False),
    ]:
        assert arn_matches(objects, f"{bucket}/{prefix}/{key}") is readable, key
    listing = by_sid["ListCapturedLogs"]
    assert render(listing["Resource"], template) == [bucket]
    assert render(listing["Condition"]["StringLike"]["s3:prefix"], template) == [f"{prefix}/logs/*"]


def test_pipeline_policy_is_confined_to_the_state_prefix_and_the_one_secret(template):
    statements = {s["Sid"]: s for s in managed_policy(template)}
    prefix = template["Parameters"]["StatePrefix"]["Default"]
    bucket = f"arn:aws:s3:::{_ref('StateBucket', template)}"
    assert render(statements["StateObjects"]["Resource"], template) == [f"{bucket}/{prefix}/*"]
    listing = statements["ListStatePrefix"]
    assert render(listing["Resource"], template) == [bucket]
    assert render(listing["Condition"]["StringLike"]["s3:prefix"], template) == [
        f"{prefix}/",
        f"{prefix}/*",
    ]
    # Deletes: the journal's sessions/ (quarantine removes the original after a verified
    # copy) and preflight/ (the probe) only, and in no other statement.
    journal = f"{bucket}/{prefix}/journal"
    deleting = [s for s in statements.values() if "s3:DeleteObject" in as_list(s["Action"])]
    assert deleting == [statements["DeleteJournalObjects"]]
    assert as_list(deleting[0]["Action"]) == ["s3:DeleteObject"]
    delete_arns = render(deleting[0]["Resource"], template)
    assert delete_arns == [f"{journal}/sessions/*", f"{journal}/preflight/*"]
    for key, deletable in [
        ("journal/sessions/2024-03-04/x-run.json", True),
        ("journal/preflight/x.json", True),
        ("journal/quarantine/sessions/2024-03-04/x-run.json", False),
        ("logs/run/compute.log", False),
        ("journal/sessionsX/x.json", False),
        ("sessions/2024-03-04/x-run.json", False),
    ]:
        assert any(arn_matches(arn, f"{bucket}/{prefix}/{key}") for arn in delete_arns) is (
            deletable
        ), key
    assert statements["ReadAlpacaSecret"]["Resource"] == {"Ref": "AlpacaSecret"}


def arn_matches(pattern: str, arn: str) -> bool:
    """IAM's resource matching: "*" is any run of characters ("/" included), "?" one."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, arn) is not None


def test_parameters_inside_iam_arns_cannot_be_a_wildcard(template):
    # A parameter's value is chosen at deploy time: its pattern must keep "*" out of a grant.
    used = {
        name
        for _, statement in policy_statements(template)
        for value in as_list(statement.get("Resource", []))
        if isinstance(value, dict) and "Fn::Sub" in value
        for name in re.findall(r"\$\{([^}.!]+)\}", str(as_list(value["Fn::Sub"])[0]))
        if name in template["Parameters"]
    }
    assert used == {"StatePrefix"}
    for name in used:
        pattern = template["Parameters"][name]["AllowedPattern"]
        for attempt in ("*", "a*", "a/*", "*a"):
            assert not re.fullmatch(pattern, attempt), (name, attempt)


def test_bucket_is_versioned_encrypted_and_private(template):
    bucket = template["Resources"]["StateBucket"]
    properties = bucket["Properties"]
    assert properties["VersioningConfiguration"]["Status"] == "Enabled"
    (rule,) = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in {"AES256", "aws:kms"}
    block = properties["PublicAccessBlockConfiguration"]
    assert all(
        block[key] is True
        for key in (
            "BlockPublicAcls",
            "BlockPublicPolicy",
            "IgnorePublicAcls",
            "RestrictPublicBuckets",
        )
    )
    assert bucket["DeletionPolicy"] == "Retain"


def test_bucket_policy_denies_requests_without_tls(template):
    policies = [
        r["Properties"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::S3::BucketPolicy"
        and r["Properties"]["Bucket"] == {"Ref": "StateBucket"}
    ]
    assert len(policies) == 1
    bucket = f"arn:aws:s3:::{_ref('StateBucket', template)}"
    tls_denies = [
        s
        for s in as_list(policies[0]["PolicyDocument"]["Statement"])
        if s["Effect"] == "Deny"
        and str(s.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport")).lower()
        == "false"
    ]
    assert len(tls_denies) == 1
    deny = tls_denies[0]
    assert deny["Principal"] == "*"
    assert deny["Action"] in ("s3:*", ["s3:*"])
    assert set(render(deny["Resource"], template)) == {bucket, f"{bucket}/*"}


def test_lifecycle_expires_old_versions_quarantine_logs_and_probes(template):
    # The pipeline opens its journal at <TECL_STATE_URI>/journal = s3://<bucket>/<prefix>/
    # journal, so quarantine copies and preflight probes live under <prefix>/journal/.
    rules = template["Resources"]["StateBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    assert all(rule["Status"] == "Enabled" for rule in rules)
    assert any("NoncurrentVersionExpiration" in rule for rule in rules)
    prefix = template["Parameters"]["StatePrefix"]["Default"]
    expiring = {
        render(rule["Prefix"], template)[0]
        for rule in rules
        if "Prefix" in rule and "ExpirationInDays" in rule
    }
    assert expiring == {
        f"{prefix}/journal/quarantine/",
        f"{prefix}/journal/preflight/",
        f"{prefix}/logs/",
    }


def test_alpaca_secret_carries_its_rotation_limit(template):
    secret = template["Resources"]["AlpacaSecret"]["Properties"]
    # A value in the template would live on in the stack's history.
    assert "SecretString" not in secret
    tags = {tag["Key"]: tag["Value"] for tag in secret["Tags"]}
    assert tags["rotation-days"] == {"Ref": "SecretRotationDays"}


# --- the check catches what it must (negative tests on modified copies) ------------------

LISTING = (
    "          - Sid: ListStatePrefix\n            Effect: Allow\n"
    "            Action: s3:ListBucket\n            Resource: !GetAtt StateBucket.Arn\n"
)
SECRET = "            Resource: !Ref AlpacaSecret\n"
TLS_DENY = "          - Sid: DenyInsecureTransport\n            Effect: Deny\n"


def planted_grant(name: str, action: str, resource: str) -> str:
    """A managed policy resource granting `action` on `resource`, as template text."""
    return f"""
  {name}:
    Type: AWS::IAM::ManagedPolicy
    Properties:
      PolicyDocument:
        Version: "2012-10-17"
        Statement:
          Effect: Allow
          Action: {action}
          Resource: {resource}
"""


EXTRA_POLICY = planted_grant("Planted", "sqs:SendMessage", '"*"')
# A log group, and a grant on it through GetAtt, whose value ends in ":*" (every stream).
PLANTED_LOG_GROUP = """
  PlantedGroup:
    Type: AWS::Logs::LogGroup
    Properties:
      RetentionInDays: 7
""" + planted_grant("PlantedGrant", "logs:PutLogEvents", "!GetAtt PlantedGroup.Arn")

PLANTED = {
    "service wildcard action": ("- s3:PutObject\n", "- s3:*\n"),
    "partial action wildcard": ("- secretsmanager:DescribeSecret\n", "- secretsmanager:List*\n"),
    "bare star action": ("Action: s3:GetBucketLocation\n", 'Action: "*"\n'),
    "bare star resource": (LISTING, LISTING.replace("!GetAtt StateBucket.Arn", '"*"')),
    "arn ending in :*": (
        SECRET,
        SECRET.replace(
            "!Ref AlpacaSecret",
            '!Sub "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:*"',
        ),
    ),
    "GetAtt LogGroup.Arn (ends in :*)": (
        "\nOutputs:\n",
        PLANTED_LOG_GROUP + "\nOutputs:\n",
    ),
    "two wildcards in one arn": (
        '${StateBucket.Arn}/${StatePrefix}/*"',
        '${StateBucket.Arn}/*/*"',
    ),
    "wildcard service in arn": (SECRET, SECRET.replace("!Ref AlpacaSecret", '"arn:aws:*:::x"')),
    "deny turned into allow": (TLS_DENY, TLS_DENY.replace("Deny", "Allow")),
    "NotAction grant": ("Action: s3:GetBucketLocation\n", "NotAction: s3:GetBucketLocation\n"),
    "new policy resource": ("\nOutputs:\n", EXTRA_POLICY + "\nOutputs:\n"),
}


@pytest.mark.parametrize("case", sorted(PLANTED))
def test_wildcard_check_catches_a_planted_wildcard(case):
    original, planted = PLANTED[case]
    text = TEMPLATE.read_text()
    # Exactly one match, so a change to the template cannot make this test plant nothing.
    assert text.count(original) == 1, f"{case}: anchor not found once in the template"
    assert wildcard_problems(load(text.replace(original, planted))), case
