"""Transform template.yaml to plain CloudFormation offline (no AWS calls), as `sam deploy` would.

Linting the SAM source misses errors in what SAM generates (a missing Ref inside Globals, a bad
Runtime, an EventBridge target's policy), so `make lint` lints this output too, and the template
tests assert the wiring on it.

    python tools/sam_transform.py [template.yaml] [-o template.cfn.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any


class _NoManagedPolicies:
    """Stands in for the IAM ListPolicies lookup (only needed for policy names, which we don't
    use)."""

    def load(self) -> dict[str, str]:
        return {}


def transform(template_path: Path) -> dict[str, Any]:
    from samtranslator.translator.transform import transform as sam_transform
    from samtranslator.yaml_helper import yaml_parse

    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    root = template_path.parent
    template = yaml_parse(template_path.read_text())
    for name, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        kind = resource["Type"]
        # what `sam package` does: local code folders become S3 objects
        if kind == "AWS::Serverless::Function" and isinstance(props.get("CodeUri"), str):
            props["CodeUri"] = f"s3://artifacts/{name}.zip"
        if kind == "AWS::Serverless::LayerVersion" and isinstance(props.get("ContentUri"), str):
            props["ContentUri"] = f"s3://artifacts/{name}.zip"
        if kind == "AWS::Serverless::StateMachine" and isinstance(props.get("DefinitionUri"), str):
            props["Definition"] = json.loads((root / props.pop("DefinitionUri")).read_text())
    return sam_transform(template, {}, _NoManagedPolicies())  # type: ignore[no-any-return]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("template", nargs="?", default="template.yaml")
    parser.add_argument("-o", "--output", default="-")
    args = parser.parse_args(argv)
    result = json.dumps(transform(Path(args.template)), indent=1, default=str)
    if args.output == "-":
        print(result)
    else:
        Path(args.output).write_text(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
