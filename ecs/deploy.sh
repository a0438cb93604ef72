#!/usr/bin/env bash
# Deploy dynatrace-mcp on ECS Fargate: render ecs/task-definition.json for this account, register it, point the
# service at the new revision (creating the service and its CPU autoscaling on the first run), and wait until
# the service is stable. Used by .github/workflows/deploy-ecs.yml; works the same from a shell.
#
#   IMAGE=<account>.dkr.ecr.<region>.amazonaws.com/dynatrace-mcp@sha256:... ecs/deploy.sh [--no-wait]
#   ecs/deploy.sh --render-only DIR     write the rendered JSON inputs to DIR and stop (no AWS call)
#
# Environment (default in brackets):
#   IMAGE             the image to run (required; a digest reference pins exactly what was tested)
#   AWS_REGION        [AWS_DEFAULT_REGION]
#   AWS_ACCOUNT_ID    [from aws sts get-caller-identity]
#   CLUSTER           [mcp-servers]
#   SERVICE           [dynatrace-mcp]
#   LOG_GROUP         [/ecs/dynatrace-mcp]
#   EXECUTION_ROLE    [dynatrace-mcp-execution]   role names (ecs/iam/execution-role-*.json)
#   TASK_ROLE         [dynatrace-mcp-task]        (ecs/iam/task-role-*.json)
#   SECRET_ID         [mcp/dynatrace]
#   SECRET_ARN        full ARN of SECRET_ID [from aws secretsmanager describe-secret]
#   SECRET_KEYS       JSON keys of the secret that ECS injects as variables (each must exist in the secret)
#                     [DT_ENVIRONMENT OAUTH_CLIENT_ID OAUTH_CLIENT_SECRET DT_ACCOUNT_URN MCP_AUTH_TOKEN];
#                     with a platform token: "DT_ENVIRONMENT DT_PLATFORM_TOKEN MCP_AUTH_TOKEN"
#   STATE_TABLE       [dynatrace-mcp-state] the DynamoDB table every task shares confirmations, Grail budgets and
#                     rate limits through (MCP_STATE_TABLE); created (on-demand, TTL on expires_at) when missing.
#                     The task role may use only this name (ecs/iam/task-role-policy.json). "" for none.
#                     Upgrading a deployment from before the table: apply the new task role policy first (README).
#   SETTINGS          non-secret settings for the task's environment, NAME=value pairs separated by spaces, e.g.
#                     "MCP_OAUTH_ISSUER=https://cognito-idp.eu-central-1.amazonaws.com/eu-central-1_AbC
#                      MCP_PUBLIC_URL=https://mcp.example.com/mcp DT_TOKEN_PASSTHROUGH=1" []
#   Only when the service does not exist yet:
#   SUBNETS, SECURITY_GROUPS   comma-separated ids (required then)
#   ASSIGN_PUBLIC_IP  [DISABLED] (ENABLED only for public subnets without a NAT gateway)
#   TARGET_GROUP_ARN  optional: an ALB target group (target type ip, port 3000, health check GET /health)
#   MIN_TASKS [1]  MAX_TASKS [10]  CPU_TARGET [70]
#
# Needs: aws (CLI v1 or v2) and jq. Exit status is non-zero with a one-line reason on any failure.
# jq programs are single-quoted on purpose: their $names are jq variables.
# shellcheck disable=SC2016
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
die() { printf 'ecs/deploy.sh: ERROR: %s\n' "$*" >&2; exit 1; }
say() { printf 'ecs/deploy.sh: %s\n' "$*" >&2; }

render_dir="" wait=1
while [ $# -gt 0 ]; do
  case "$1" in
    --render-only) render_dir="${2:?--render-only needs a directory}"; shift 2 ;;
    --no-wait) wait=0; shift ;;
    -h|--help) sed -n '2,/^# Needs/{s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done

command -v jq >/dev/null || die "jq is required"
[ -n "$render_dir" ] || command -v aws >/dev/null || die "the aws CLI is required"
export AWS_PAGER=""

: "${IMAGE:?IMAGE is required: the image URI to deploy}"
AWS_REGION="${AWS_REGION:-${AWS_DEFAULT_REGION:-}}"
[ -n "$AWS_REGION" ] || die "set AWS_REGION"
export AWS_REGION AWS_DEFAULT_REGION="$AWS_REGION"
CLUSTER="${CLUSTER:-mcp-servers}"
SERVICE="${SERVICE:-dynatrace-mcp}"
LOG_GROUP="${LOG_GROUP:-/ecs/dynatrace-mcp}"
EXECUTION_ROLE="${EXECUTION_ROLE:-dynatrace-mcp-execution}"
TASK_ROLE="${TASK_ROLE:-dynatrace-mcp-task}"
SECRET_ID="${SECRET_ID:-mcp/dynatrace}"
SECRET_KEYS="${SECRET_KEYS:-DT_ENVIRONMENT OAUTH_CLIENT_ID OAUTH_CLIENT_SECRET DT_ACCOUNT_URN MCP_AUTH_TOKEN}"
SETTINGS="${SETTINGS:-}"
STATE_TABLE="${STATE_TABLE-dynatrace-mcp-state}"
case "$STATE_TABLE" in
  ""|dynatrace-mcp-state) ;;
  *) die "STATE_TABLE: the task role (ecs/iam/task-role-policy.json) may use table/dynatrace-mcp-state only; edit it for '$STATE_TABLE'" ;;
esac
ASSIGN_PUBLIC_IP="${ASSIGN_PUBLIC_IP:-DISABLED}"
MIN_TASKS="${MIN_TASKS:-1}" MAX_TASKS="${MAX_TASKS:-10}" CPU_TARGET="${CPU_TARGET:-70}"

# Keys the server reads (KNOWN_VARIABLES in src/config.rs, the README's "Configuration"); anything else is a typo
# that would stop the task at start-up.
known=" $(sed -n '/pub const KNOWN_VARIABLES/,/];/p' "$here/../src/config.rs" | grep -o '"[A-Z_]*"' | tr -d '"' | tr '\n' ' ')"
[ "$known" != " " ] || die "cannot read the list of settings from src/config.rs (KNOWN_VARIABLES)"
for k in $SECRET_KEYS; do
  case "$known" in *" $k "*) ;; *) die "SECRET_KEYS: '$k' is not a setting of dynatrace-mcp" ;; esac
done
for kv in $SETTINGS; do
  case "$kv" in *=*) ;; *) die "SETTINGS: '$kv' is not NAME=value" ;; esac
  case "$known" in *" ${kv%%=*} "*) ;; *) die "SETTINGS: '${kv%%=*}' is not a setting of dynatrace-mcp" ;; esac
  case " $SECRET_KEYS " in *" ${kv%%=*} "*) die "SETTINGS: '${kv%%=*}' is also in SECRET_KEYS; set it in one place" ;; esac
  case "${kv%%=*}" in
    MCP_AUTH_TOKEN|MCP_SIGNING_KEY|DT_PLATFORM_TOKEN|OAUTH_CLIENT_SECRET)
      die "SETTINGS: '${kv%%=*}' is a secret: keep it in the secret and name it in SECRET_KEYS" ;;
    MCP_STATE_TABLE) die "SETTINGS: set STATE_TABLE instead of MCP_STATE_TABLE (the task role names that table)" ;;
  esac
done
case "$ASSIGN_PUBLIC_IP" in ENABLED|DISABLED) ;; *) die "ASSIGN_PUBLIC_IP must be ENABLED or DISABLED" ;; esac

if [ -z "${AWS_ACCOUNT_ID:-}" ]; then
  [ -z "$render_dir" ] || die "--render-only needs AWS_ACCOUNT_ID"
  AWS_ACCOUNT_ID="$(aws sts get-caller-identity --query Account --output text)" || die "no AWS credentials"
fi
if [ -z "${SECRET_ARN:-}" ]; then
  [ -z "$render_dir" ] || die "--render-only needs SECRET_ARN"
  SECRET_ARN="$(aws secretsmanager describe-secret --secret-id "$SECRET_ID" --query ARN --output text)" \
    || die "cannot find the secret '$SECRET_ID' in $AWS_REGION (create it first: README, Deployment)"
fi
case "$SECRET_ARN" in arn:aws*:secretsmanager:*:secret:*) ;; *) die "SECRET_ARN is not a Secrets Manager ARN: $SECRET_ARN" ;; esac

out="${render_dir:-$(mktemp -d)}"
mkdir -p "$out"
[ -n "$render_dir" ] || trap 'rm -rf "$out"' EXIT

# render FILE [extra jq filter]: replace ${NAME} placeholders in every string of FILE, then apply the filter.
render() {
  jq --arg AWS_ACCOUNT_ID "$AWS_ACCOUNT_ID" --arg AWS_REGION "$AWS_REGION" --arg IMAGE "$IMAGE" \
     --arg CLUSTER "$CLUSTER" --arg SERVICE "$SERVICE" --arg LOG_GROUP "$LOG_GROUP" \
     --arg EXECUTION_ROLE "$EXECUTION_ROLE" --arg TASK_ROLE "$TASK_ROLE" --arg SECRET_ARN "$SECRET_ARN" \
     --arg SECRET_KEYS "$SECRET_KEYS" --arg SETTINGS "$SETTINGS${STATE_TABLE:+ MCP_STATE_TABLE=$STATE_TABLE}" \
     --arg ASSIGN_PUBLIC_IP "$ASSIGN_PUBLIC_IP" \
     --arg SUBNETS "${SUBNETS:-}" --arg SECURITY_GROUPS "${SECURITY_GROUPS:-}" \
     --arg TASK_DEFINITION_ARN "${TASK_DEFINITION_ARN:-}" --arg TARGET_GROUP_ARN "${TARGET_GROUP_ARN:-}" \
     --argjson MIN_TASKS "$MIN_TASKS" --argjson MAX_TASKS "$MAX_TASKS" --argjson CPU_TARGET "$CPU_TARGET" \
     "$(cat <<'JQ'
def fill: gsub("\\$\\{(?<v>[A-Z_]+)\\}"; . as $m | $ARGS.named[$m.v] // error("unknown placeholder ${\($m.v)}"));
walk(if type == "string" then fill else . end)
JQ
)${2:+ | $2}" "$here/$1" >"$out/$1" || die "cannot render ecs/$1"
  ! grep -q '\${' "$out/$1" || die "ecs/$1: unrendered placeholder left: $(grep -o '\${[A-Z_]*}' "$out/$1" | head -1)"
}

render task-definition.json '
  (.containerDefinitions[0].secrets) = [($SECRET_KEYS | split(" ") | map(select(length > 0)))[]
      | {name: ., valueFrom: "\($SECRET_ARN):\(.)::"}]
  | [($SETTINGS | split(" ") | map(select(length > 0)))[] | capture("^(?<name>[A-Z_]+)=(?<value>.*)$")] as $settings
  | (.containerDefinitions[0].environment) |= (map(select(.name as $n | $settings | map(.name) | index($n) | not))
      + $settings)'
render scalable-target.json '.MinCapacity = $MIN_TASKS | .MaxCapacity = $MAX_TASKS'
render scaling-policy.json '.TargetTrackingScalingPolicyConfiguration.TargetValue = ($CPU_TARGET | tonumber)'
TASK_DEFINITION_ARN="${TASK_DEFINITION_ARN:-arn:aws:ecs:$AWS_REGION:$AWS_ACCOUNT_ID:task-definition/dynatrace-mcp:1}"
SUBNETS="${SUBNETS:-}" SECURITY_GROUPS="${SECURITY_GROUPS:-}"
render service.json '
  .networkConfiguration.awsvpcConfiguration.subnets = ($SUBNETS | split(",") | map(select(length > 0)))
  | .networkConfiguration.awsvpcConfiguration.securityGroups = ($SECURITY_GROUPS | split(",") | map(select(length > 0)))
  | if $TARGET_GROUP_ARN != "" then
      .loadBalancers = [{targetGroupArn: $TARGET_GROUP_ARN, containerName: "dynatrace-mcp", containerPort: 3000}]
      | .healthCheckGracePeriodSeconds = 30
    else . end'
if [ -n "$render_dir" ]; then
  say "rendered task-definition.json service.json scalable-target.json scaling-policy.json into $out"
  exit 0
fi

if [ -n "$STATE_TABLE" ]; then
  if described="$(aws dynamodb describe-table --table-name "$STATE_TABLE" --query Table.TableStatus --output text 2>&1)"; then
    say "state table $STATE_TABLE exists ($described)"
  elif printf '%s' "$described" | grep -q ResourceNotFoundException; then
    say "creating the state table $STATE_TABLE (on-demand, TTL on expires_at)"
    aws dynamodb create-table --table-name "$STATE_TABLE" --billing-mode PAY_PER_REQUEST \
      --attribute-definitions AttributeName=pk,AttributeType=S --key-schema AttributeName=pk,KeyType=HASH \
      --query TableDescription.TableArn --output text >/dev/null || die "create-table $STATE_TABLE failed"
    aws dynamodb wait table-exists --table-name "$STATE_TABLE" || die "table $STATE_TABLE did not become active"
  else
    die "cannot describe the state table $STATE_TABLE: $described"
  fi
  # Every run, so a run that stopped between creating the table and this still ends with TTL on.
  ttl="$(aws dynamodb describe-time-to-live --table-name "$STATE_TABLE" \
    --query TimeToLiveDescription.TimeToLiveStatus --output text 2>/dev/null || true)"
  case "$ttl" in
    ENABLED|ENABLING) ;;
    *) aws dynamodb update-time-to-live --table-name "$STATE_TABLE" \
         --time-to-live-specification Enabled=true,AttributeName=expires_at >/dev/null \
         || die "update-time-to-live on $STATE_TABLE failed" ;;
  esac
fi

say "registering the task definition (image $IMAGE)"
td_arn="$(aws ecs register-task-definition --cli-input-json "file://$out/task-definition.json" \
  --query taskDefinition.taskDefinitionArn --output text)" || die "register-task-definition failed"
say "registered $td_arn"

status="$(aws ecs describe-services --cluster "$CLUSTER" --services "$SERVICE" \
  --query 'services[0].status' --output text 2>/dev/null || true)"
if [ "$status" = "ACTIVE" ]; then
  say "updating service $CLUSTER/$SERVICE"
  aws ecs update-service --cluster "$CLUSTER" --service "$SERVICE" --task-definition "$td_arn" \
    --query service.serviceArn --output text >/dev/null || die "update-service failed"
else
  if [ -z "$SUBNETS" ] || [ -z "$SECURITY_GROUPS" ]; then
    die "service $CLUSTER/$SERVICE does not exist yet: set SUBNETS and SECURITY_GROUPS to create it"
  fi
  say "creating service $CLUSTER/$SERVICE"
  jq --arg td "$td_arn" '.taskDefinition = $td' "$out/service.json" >"$out/service.create.json"
  aws ecs create-service --cli-input-json "file://$out/service.create.json" \
    --query service.serviceArn --output text >/dev/null || die "create-service failed"
  say "registering CPU target tracking (${MIN_TASKS}-${MAX_TASKS} tasks at ${CPU_TARGET} %)"
  aws application-autoscaling register-scalable-target --cli-input-json "file://$out/scalable-target.json" >/dev/null \
    || die "register-scalable-target failed"
  aws application-autoscaling put-scaling-policy --cli-input-json "file://$out/scaling-policy.json" \
    --query PolicyARN --output text >/dev/null || die "put-scaling-policy failed"
fi

if [ "$wait" = 1 ]; then
  say "waiting until the service is stable (up to 10 minutes)"
  aws ecs wait services-stable --cluster "$CLUSTER" --services "$SERVICE" \
    || die "the service did not become stable; see: aws ecs describe-services --cluster $CLUSTER --services $SERVICE --query 'services[0].events[:5]'"
fi
say "deployed $td_arn to $CLUSTER/$SERVICE"
echo "$td_arn"
