"""Runtime and Architectures of every function in a SAM/CloudFormation template hold allowed values.

cfn-lint and `sam validate` accept a misspelled runtime such as `provided.al2032` or an architecture such as
`arm46` in some positions (Globals, intrinsic-free strings they do not enumerate), so this check compares them
with the enums of botocore's Lambda model (the API's own list), then with what this project deploys:
provided.al2023 on arm64, built by cargo-lambda, with a timeout below API Gateway's 29 s.

usage: python template_values.py template.yaml
"""
import sys

import botocore.session
from cfnlint.decode import decode

FUNCTION_TYPES = {"AWS::Serverless::Function", "AWS::Lambda::Function"}
EXPECTED_RUNTIME = "provided.al2023"
EXPECTED_ARCHITECTURES = ["arm64"]


def main(path):
    template, matches = decode(path)
    if matches:
        return [f"{path}: cannot parse: {m}" for m in matches]
    model = botocore.session.get_session().get_service_model("lambda")
    runtimes = set(model.shape_for("Runtime").enum)
    architectures = set(model.shape_for("Architecture").enum)
    problems = []
    globals_fn = (template.get("Globals") or {}).get("Function") or {}
    functions = {name: res for name, res in (template.get("Resources") or {}).items()
                 if isinstance(res, dict) and res.get("Type") in FUNCTION_TYPES}
    if not functions:
        problems.append(f"{path}: no Lambda function found")
    for where, props in [("Globals.Function", globals_fn)] + [
            (f"Resources.{n}", r.get("Properties") or {}) for n, r in functions.items()]:
        runtime = props.get("Runtime")
        if runtime is not None and runtime not in runtimes:
            problems.append(f"{where}.Runtime: {runtime!r} is not a Lambda runtime "
                            f"(allowed: {', '.join(sorted(r for r in runtimes if r.startswith('provided')))}, ...)")
        archs = props.get("Architectures")
        if archs is not None:
            if not isinstance(archs, list) or len(archs) != 1:
                problems.append(f"{where}.Architectures: must be a list of exactly one value, got {archs!r}")
            else:
                for arch in archs:
                    if arch not in architectures:
                        problems.append(f"{where}.Architectures: {arch!r} is not one of {sorted(architectures)}")
    for name, res in functions.items():
        props = res.get("Properties") or {}
        runtime = props.get("Runtime", globals_fn.get("Runtime"))
        archs = props.get("Architectures", globals_fn.get("Architectures"))
        if runtime != EXPECTED_RUNTIME:
            problems.append(f"Resources.{name}.Runtime: {runtime!r}, expected {EXPECTED_RUNTIME!r} (a cargo-lambda bootstrap)")
        if archs != EXPECTED_ARCHITECTURES:
            problems.append(f"Resources.{name}.Architectures: {archs!r}, expected {EXPECTED_ARCHITECTURES!r}")
        if res.get("Type") == "AWS::Serverless::Function":
            build = (res.get("Metadata") or {}).get("BuildMethod")
            if build != "rust-cargolambda":
                problems.append(f"Resources.{name}.Metadata.BuildMethod: {build!r}, expected 'rust-cargolambda'")
        if props.get("Handler", globals_fn.get("Handler")) != "bootstrap":
            problems.append(f"Resources.{name}.Handler: expected 'bootstrap'")
        timeout = props.get("Timeout", globals_fn.get("Timeout", 3))
        if not isinstance(timeout, int) or not 1 <= timeout <= 29:
            problems.append(f"Resources.{name}.Timeout: {timeout!r}, expected 1..29 s (API Gateway gives up at 29-30 s)")
        env = ((props.get("Environment") or {}).get("Variables") or {})
        if "DT_SECRET_ID" not in env:
            problems.append(f"Resources.{name}: Environment.Variables.DT_SECRET_ID is missing")
    return problems


if __name__ == "__main__":
    found = main(sys.argv[1])
    for p in found:
        print(f"template_values: {p}", file=sys.stderr)
    if not found:
        print("template_values: Runtime, Architectures, BuildMethod, Handler, Timeout and DT_SECRET_ID are as expected")
    sys.exit(1 if found else 0)
