"""`make stack`, `make stack-status`, `make stack-down`: the compose stack as local processes.

    python -m deploy.stack up [--env-file FILE] [--timeout SECONDS]
    python -m deploy.stack status
    python -m deploy.stack down

Settings come from one env file, as compose's do from deploy/docker/.env: that file when it
exists, else `.stack/stack.env`, which `up` writes once: paper mode against the broker
simulator, the state in S3 on a moto server; the stack starts both beside the compose
services (on 127.0.0.1:28765 and :25000).
The shell's environment is not read: the stack is what its env file says.
Exit status: 0 done (status: everything running and healthy); 1 not.
"""

import argparse
import secrets
import sys
from pathlib import Path
from urllib.parse import urlsplit

from deploy.stack.compose import COMPOSE_FILE, REPO, UnsupportedService, plan, read_env_file
from deploy.stack.local import Extra, LocalStack, StackError, iter_urls, stop, write_private

STACK_DIR = REPO / ".stack"
VENV = REPO / ".venv"
PROJECT_ENV = COMPOSE_FILE.parent / ".env"
# Below the ports the kernel hands out, as the services' (compose.PORT_BASE).
SIMULATOR_PORT = 28765
S3_PORT = 25000
S3_BUCKET = "tecl-stack"
S3_REGION = "us-east-1"


def default_env_file(stack_dir: Path) -> Path:
    """The project's .env if there is one; else the stack's own, written on first use:
    paper mode against the broker simulator, the journal and the steps' outputs in S3 (a
    moto server the stack starts), both on 127.0.0.1."""
    if PROJECT_ENV.exists():
        return PROJECT_ENV
    own = stack_dir / "stack.env"
    if not own.exists():
        from tecl_pipeline.simulator.engine import DEMO_API_KEY, DEMO_API_SECRET

        simulator = f"http://127.0.0.1:{SIMULATOR_PORT}"
        stack_dir.mkdir(parents=True, exist_ok=True)
        write_private(
            own,
            "# Written by `make stack` because deploy/docker/.env does not exist: paper mode\n"
            "# against the broker simulator, the state in S3 on a moto server; the stack\n"
            "# starts both, and both forget everything when it stops. Delete this file with\n"
            "# the stack's database (.stack/volumes) to start over.\n"
            f"DAGSTER_PG_PASSWORD={secrets.token_hex(16)}\n"
            "TECL_MODE=paper\n"
            f"TECL_BROKER_URL={simulator}\n"
            f"TECL_DATA_URL={simulator}\n"
            f"ALPACA_API_KEY={DEMO_API_KEY}\n"
            f"ALPACA_SECRET_KEY={DEMO_API_SECRET}\n"
            f"TECL_STATE_URI=s3://{S3_BUCKET}/tecl\n"
            f"AWS_ENDPOINT_URL=http://127.0.0.1:{S3_PORT}\n"
            f"AWS_REGION={S3_REGION}\n"
            # Random, as a real one is: a secret is masked wherever its text appears, and
            # a short word would be found inside names (the bucket's, say).
            f"AWS_ACCESS_KEY_ID=stack-{secrets.token_hex(8)}\n"
            f"AWS_SECRET_ACCESS_KEY={secrets.token_hex(20)}\n"
            "AWS_EC2_METADATA_DISABLED=true\n",
        )
    return own


def local_extras(env_file: Path) -> list[Extra]:
    """What the env file points the stack at on 127.0.0.1 besides its compose services: the
    broker simulator, and a moto server as S3 with the state URI's bucket in it."""
    settings = read_env_file(env_file)
    extras = []
    simulator = f"http://127.0.0.1:{SIMULATOR_PORT}"
    if settings.get("TECL_BROKER_URL") == simulator:
        # Priced on the same closes as the market data when the env file names them.
        data_dir = settings.get("TECL_DATA_DIR")
        extras.append(
            Extra(
                name="simulator",
                argv=(
                    str(VENV / "bin" / "tecl"),
                    "simulator",
                    "--port",
                    str(SIMULATOR_PORT),
                    *(("--data-dir", data_dir) if data_dir else ()),
                ),
                url=simulator,
                health_path="/_sim/state",
            )
        )
    s3 = f"http://127.0.0.1:{S3_PORT}"
    if settings.get("AWS_ENDPOINT_URL") == s3:
        bucket = urlsplit(settings.get("TECL_STATE_URI", "")).netloc
        extras.append(
            Extra(
                name="s3",
                argv=(str(VENV / "bin" / "moto_server"), "-H", "127.0.0.1", "-p", str(S3_PORT)),
                url=s3,
                health_path="/moto-api/",
                setup=(lambda: create_bucket(s3, bucket, settings)) if bucket else None,
            )
        )
    return extras


def create_bucket(endpoint: str, bucket: str, settings: dict[str, str]) -> None:
    """The state bucket, as the deployment's infrastructure would have made it."""
    import boto3

    client = boto3.Session(
        aws_access_key_id=settings.get("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=settings.get("AWS_SECRET_ACCESS_KEY"),
        region_name=settings.get("AWS_REGION", S3_REGION),
    ).client("s3", endpoint_url=endpoint)
    if bucket not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
        client.create_bucket(Bucket=bucket)
        client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})


def local_stack(stack_dir: Path, env_file: Path | None) -> LocalStack:
    chosen = env_file or default_env_file(stack_dir)
    return LocalStack(
        plan(env_file=chosen, stack_dir=stack_dir, venv=VENV),
        venv=VENV,
        extras=local_extras(chosen),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.stack", description=__doc__)
    parser.add_argument("action", choices=("up", "status", "down"))
    parser.add_argument("--env-file", type=Path, help="the stack's settings (default above)")
    parser.add_argument("--stack-dir", type=Path, default=STACK_DIR, help=argparse.SUPPRESS)
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds per service")
    args = parser.parse_args(argv)
    stack_dir = args.stack_dir.resolve()
    if args.action == "down":
        forced = stop(stack_dir)
        print("stack stopped")
        for stray in forced:
            print(f"  ended by force, left over: {stray}")
        return 0
    try:
        stack = local_stack(stack_dir, args.env_file)
    except (UnsupportedService, OSError, ValueError) as exc:
        print(f"stack: {exc}", file=sys.stderr)
        return 1
    try:
        if args.action == "up":
            stack.up(timeout=args.timeout)
        states = stack.status()
    except (StackError, OSError, ValueError) as exc:
        print(f"stack: {exc}", file=sys.stderr)
        if stack.spawned:
            print(
                f"stack: stopping what this started ({', '.join(stack.spawned)})", file=sys.stderr
            )
            stop(stack_dir, only=stack.spawned)
        return 1
    for state in states:
        shown = "healthy" if state.healthy else "running, not healthy" if state.pid else "stopped"
        pid = f"pid {state.pid}" if state.pid else ""
        print(f"{state.name:<12} {shown:<22} {pid}")
    if args.action == "up":
        print(*iter_urls(stack.plan, stack.extras), sep="\n")
        print(f"logs: {stack.logs_dir}")
    return 0 if all(state.healthy for state in states) else 1


if __name__ == "__main__":
    sys.exit(main())
