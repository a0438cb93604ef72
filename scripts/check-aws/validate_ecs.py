"""Offline checks of the ECS files (ecs/*.json) and the IAM policy documents (ecs/iam, .github/aws).

1. Each JSON input against botocore's model of the API call that consumes it (RegisterTaskDefinition,
   CreateService, RegisterScalableTarget, PutScalingPolicy): unknown or misspelled keys, wrong types, missing
   required members. Both the files as committed (with ${PLACEHOLDERS}) and as rendered by ecs/deploy.sh.
2. What this project requires of them (the seed's ECS contract): Fargate/awsvpc, read-only root file system,
   a non-root user, awslogs to /ecs/dynatrace-mcp, a health check without a shell or wget, the secret keys,
   port 3000, CPU target tracking 1-10 tasks at 70 %.
3. Writes a CloudFormation template with the rendered files as AWS::ECS::TaskDefinition, AWS::ECS::Service,
   AWS::ApplicationAutoScaling::* and the IAM documents as policies and roles, for cfn-lint (which knows the
   enums, Fargate's CPU/memory pairs and the IAM policy grammar that botocore's model does not).

usage: python validate_ecs.py REPO_DIR RENDERED_DIR OUT_CFN_JSON
"""
import json
import os
import re
import sys
from pathlib import Path

import botocore.session
from botocore.validate import ParamValidator

SESSION = botocore.session.get_session()
INPUTS = {
    "task-definition.json": ("ecs", "RegisterTaskDefinition"),
    "service.json": ("ecs", "CreateService"),
    "scalable-target.json": ("application-autoscaling", "RegisterScalableTarget"),
    "scaling-policy.json": ("application-autoscaling", "PutScalingPolicy"),
}
def known_settings():
    """The variables the server reads: `KNOWN_VARIABLES` in src/config.rs (one list for the server, this check
    and ecs/deploy.sh), plus the secret id variables, which are read before it."""
    config = open(os.path.join(os.path.dirname(__file__), "..", "..", "src", "config.rs"), encoding="utf-8").read()
    block = re.search(r"pub const KNOWN_VARIABLES: &\[&str\] = &\[(.*?)\];", config, re.S)
    if not block:
        sys.exit("validate_ecs: cannot find KNOWN_VARIABLES in src/config.rs")
    return set(re.findall(r'"([A-Z_]+)"', block.group(1))) | {"DT_SECRET_ID", "MCP_SECRET_ID"}


KNOWN_SETTINGS = known_settings()
# Keys of a JSON object whose own keys are data, not API members (kept as they are in the CloudFormation form).
FREE_FORM = {"options", "dockerLabels", "driverOpts", "labels", "systemControls"}

problems = []


def problem(msg):
    problems.append(msg)


def load(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        problem(f"{path}: not valid JSON: {e}")
        return None


def validate_api(path, doc):
    service, op = INPUTS[Path(path).name]
    shape = SESSION.get_service_model(service).operation_model(op).input_shape
    report = ParamValidator().validate(doc, shape)
    if report.has_errors():
        for line in report.generate_report().splitlines():
            problem(f"{path}: {service} {op}: {line.strip()}")


def check_task_definition(path, td, rendered):
    def need(cond, msg):
        if not cond:
            problem(f"{path}: {msg}")
    need(td.get("family") == "dynatrace-mcp", "family must be dynatrace-mcp")
    need(td.get("requiresCompatibilities") == ["FARGATE"], "requiresCompatibilities must be [FARGATE]")
    need(td.get("networkMode") == "awsvpc", "networkMode must be awsvpc (Fargate)")
    containers = td.get("containerDefinitions") or []
    need(len(containers) == 1, "expected exactly one container")
    if not containers:
        return
    c = containers[0]
    need(c.get("readonlyRootFilesystem") is True, "readonlyRootFilesystem must be true")
    user = str(c.get("user", ""))
    need(user != "" and user.split(":")[0] not in ("0", "root"), f"user must be a non-root user, got {user!r}")
    ports = [p.get("containerPort") for p in c.get("portMappings") or []]
    need(ports == [3000], f"the container must expose port 3000 only, got {ports}")
    hc = (c.get("healthCheck") or {}).get("command") or []
    need(hc[:1] == ["CMD"], "healthCheck.command must use the exec form ['CMD', ...] (there is no shell in the image)")
    need(any("healthcheck" == part for part in hc), "healthCheck must run `dynatrace-mcp healthcheck`")
    need(not any(w in " ".join(map(str, hc)) for w in ("wget", "curl", "CMD-SHELL")), "healthCheck must not need wget/curl/a shell")
    logs = c.get("logConfiguration") or {}
    need(logs.get("logDriver") == "awslogs", "logDriver must be awslogs")
    need((logs.get("options") or {}).get("awslogs-group") in ("/ecs/dynatrace-mcp", "${LOG_GROUP}"),
         "awslogs-group must be /ecs/dynatrace-mcp")
    secrets = {s.get("name"): s.get("valueFrom", "") for s in c.get("secrets") or []}
    need({"DT_ENVIRONMENT", "MCP_AUTH_TOKEN"} <= set(secrets), "secrets must include DT_ENVIRONMENT and MCP_AUTH_TOKEN")
    for name, value_from in secrets.items():
        need(name in KNOWN_SETTINGS, f"secret {name!r} is not a setting of dynatrace-mcp")
        need(value_from.endswith(f":{name}::"), f"secret {name}: valueFrom must select the JSON key {name} (…:{name}::)")
        if rendered:
            need(re.match(r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:.+-[A-Za-z0-9]{6}:", value_from),
                 f"secret {name}: valueFrom must start with the secret's full ARN, got {value_from!r}")
    for env in c.get("environment") or []:
        need(env.get("name") in KNOWN_SETTINGS, f"environment {env.get('name')!r} is not a setting of dynatrace-mcp")
        need(env.get("name") not in secrets, f"{env.get('name')} is both in environment and secrets")
    if rendered:
        need("${" not in json.dumps(td), "unrendered placeholder left")


def check_scaling(target_path, target, policy_path, policy):
    if target and (target.get("MinCapacity"), target.get("MaxCapacity")) != (1, 10):
        problem(f"{target_path}: capacity must be 1-10 tasks, got {target.get('MinCapacity')}-{target.get('MaxCapacity')}")
    if policy:
        cfg = policy.get("TargetTrackingScalingPolicyConfiguration") or {}
        metric = (cfg.get("PredefinedMetricSpecification") or {}).get("PredefinedMetricType")
        if policy.get("PolicyType") != "TargetTrackingScaling" or metric != "ECSServiceAverageCPUUtilization" \
                or cfg.get("TargetValue") != 70:
            problem(f"{policy_path}: must be target tracking on ECSServiceAverageCPUUtilization at 70")


def to_cfn(value, key=None):
    """API (camelCase) JSON to CloudFormation (PascalCase) properties."""
    if isinstance(value, dict):
        if key in FREE_FORM:
            return dict(value)
        return {(k[:1].upper() + k[1:]): to_cfn(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [to_cfn(v, key) for v in value]
    return value


def fill(text):
    """IAM documents use ${AWS_ACCOUNT_ID}-style placeholders; give them plausible values for linting."""
    values = {"AWS_ACCOUNT_ID": "123456789012", "AWS_REGION": "us-east-1", "GITHUB_REPOSITORY": "example/dynatrace-mcp",
              "SAM_ARTIFACTS_BUCKET": "example-sam-artifacts"}
    return re.sub(r"\$\{([A-Z_]+)\}", lambda m: values.get(m.group(1), m.group(0)), text)


def main(repo, rendered_dir, out):
    repo, rendered_dir = Path(repo), Path(rendered_dir)
    docs = {}
    for name in INPUTS:
        for path, rendered in ((repo / "ecs" / name, False), (rendered_dir / name, True)):
            doc = load(path)
            if doc is None:
                continue
            validate_api(path, doc)
            if name == "task-definition.json":
                check_task_definition(path, doc, rendered)
            if rendered:
                docs[name] = doc
    for d in (repo / "ecs", rendered_dir):
        check_scaling(d / "scalable-target.json", load(d / "scalable-target.json"),
                      d / "scaling-policy.json", load(d / "scaling-policy.json"))

    resources = {}
    if "task-definition.json" in docs:
        resources["TaskDefinition"] = {"Type": "AWS::ECS::TaskDefinition", "Properties": to_cfn(docs["task-definition.json"])}
    if "service.json" in docs:
        svc = to_cfn(docs["service.json"])
        svc["TaskDefinition"] = {"Ref": "TaskDefinition"}
        resources["Service"] = {"Type": "AWS::ECS::Service", "Properties": svc}
    if "scalable-target.json" in docs:
        tgt = dict(docs["scalable-target.json"])
        resources["ScalableTarget"] = {"Type": "AWS::ApplicationAutoScaling::ScalableTarget", "DependsOn": "Service",
                                       "Properties": tgt}
    if "scaling-policy.json" in docs:
        pol = dict(docs["scaling-policy.json"])
        for k in ("ResourceId", "ScalableDimension", "ServiceNamespace"):
            pol.pop(k, None)
        pol["ScalingTargetId"] = {"Ref": "ScalableTarget"}
        resources["ScalingPolicy"] = {"Type": "AWS::ApplicationAutoScaling::ScalingPolicy", "Properties": pol}

    iam_docs = sorted((repo / "ecs" / "iam").glob("*.json")) + sorted((repo / ".github" / "aws").glob("*.json"))
    for i, path in enumerate(iam_docs):
        try:
            doc = json.loads(fill(path.read_text()))
        except ValueError as e:
            problem(f"{path}: not valid JSON: {e}")
            continue
        logical = "Iam" + re.sub(r"[^A-Za-z0-9]", "", path.stem.title()) + str(i)
        if "trust" in path.name:
            resources[logical] = {"Type": "AWS::IAM::Role", "Metadata": {"source": str(path)},
                                  "Properties": {"AssumeRolePolicyDocument": doc}}
        else:
            resources[logical] = {"Type": "AWS::IAM::ManagedPolicy", "Metadata": {"source": str(path)},
                                  "Properties": {"PolicyDocument": doc}}
        if "${" in json.dumps(doc):
            problem(f"{path}: unknown placeholder {re.search(r'[$][{][A-Z_]+[}]', json.dumps(doc)).group(0)}")

    Path(out).write_text(json.dumps({"AWSTemplateFormatVersion": "2010-09-09",
                                     "Description": "generated by scripts/check-aws/validate_ecs.py for cfn-lint",
                                     "Resources": resources}, indent=2))
    return len(iam_docs)


if __name__ == "__main__":
    n_iam = main(*sys.argv[1:4])
    for p in problems:
        print(f"validate_ecs: {p}", file=sys.stderr)
    if problems:
        sys.exit(1)
    print(f"validate_ecs: 4 API inputs (as committed and rendered) match botocore's model and the project's contract; "
          f"{n_iam} IAM documents written for cfn-lint")
