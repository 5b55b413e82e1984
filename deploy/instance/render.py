"""A deployment's Dagster instance file: deploy/instance/shared.yaml with the deployment's
own file laid over it.

    python -m deploy.instance.render compose > $DAGSTER_HOME/dagster.yaml

An overlay adds settings; it may not change one that shared.yaml sets (that would be a
second home for the same rule), and the renderer refuses it.
"""

import sys
from pathlib import Path
from typing import Any

import yaml

INSTANCE_DIR = Path(__file__).resolve().parent
SHARED = INSTANCE_DIR / "shared.yaml"


class OverlayConflict(ValueError):
    """An overlay sets a value that shared.yaml already sets."""


def deployments() -> list[str]:
    """The deployments with an instance overlay here."""
    return sorted(path.stem for path in INSTANCE_DIR.glob("*.yaml") if path != SHARED)


def _load(path: Path) -> dict[str, Any]:
    loaded = yaml.safe_load(path.read_text())
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: not a mapping of instance settings")
    return loaded


def lay_over(shared: dict[str, Any], overlay: dict[str, Any], where: str = "") -> dict[str, Any]:
    merged = dict(shared)
    for key, value in overlay.items():
        if key not in shared:
            merged[key] = value
        elif isinstance(shared[key], dict) and isinstance(value, dict):
            merged[key] = lay_over(shared[key], value, f"{where}{key}.")
        else:
            raise OverlayConflict(
                f"{where}{key} is set in shared.yaml; the overlay may not change it"
            )
    return merged


def render(deployment: str) -> dict[str, Any]:
    """The instance settings of `deployment` (a name from deployments())."""
    if deployment not in deployments():
        raise ValueError(f"no instance overlay {deployment!r}; one of: {', '.join(deployments())}")
    return lay_over(_load(SHARED), _load(INSTANCE_DIR / f"{deployment}.yaml"))


def render_text(deployment: str) -> str:
    header = f"# Rendered from deploy/instance/shared.yaml and {deployment}.yaml; edit those.\n"
    return header + yaml.safe_dump(render(deployment), sort_keys=False)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(
            f"usage: python -m deploy.instance.render {{{'|'.join(deployments())}}}",
            file=sys.stderr,
        )
        return 2
    try:
        sys.stdout.write(render_text(argv[0]))
    except (OverlayConflict, ValueError) as exc:
        print(f"render: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
