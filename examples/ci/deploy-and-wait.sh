#!/usr/bin/env bash
# Deploy a release of an ecs-canary pair from CI, and pass or fail the job on the canary's verdict.
#
#   deploy-and-wait.sh PAIR TASKDEF.json [IMAGE]
#
# 1. asks ecs-canary which service of PAIR is idle (and the pair's cluster);
# 2. registers TASKDEF.json as a new task definition revision, with IMAGE as the image of the
#    container named $CONTAINER if IMAGE is given. TASKDEF.json is the input of
#    `aws ecs register-task-definition`, or the output of `aws ecs describe-task-definition`
#    (its read-only fields are dropped), e.g.
#        aws ecs describe-task-definition --task-definition checkout > taskdef.json
# 3. deploys it to the idle service (`aws ecs update-service`) and takes the new ECS deployment id
#    from the answer;
# 4. waits for exactly that release: `ecs-canary wait PAIR --release ecs-svc/... --timeout S`.
#
# Exit code: ecs-canary wait's (0 only if the release SUCCEEDED: it now holds all the traffic;
# 3 FAILED, 4 REJECTED, 5 ABORTED, 6 TIMED_OUT, 7 SUPERSEDED, 8 ROLLBACK_FAILED, 9 the wait timed
# out), or 1 if a step before the wait failed, 2 for bad arguments. Any non-zero code fails the job.
#
# Environment:
#   CONTAINER        container whose image IMAGE replaces (required with IMAGE)
#   WAIT_TIMEOUT     seconds to wait for the verdict (default 3600); make it longer than the plan
#                    (steps x bake, plus green's steady.timeout_seconds)
#   WAIT_OUTPUT      text (default) or json: one JSON document per change on stdout
#   ALLOW_SUPERSEDE  1 to deploy even while a deployment of PAIR is running (it is then SUPERSEDED)
#   ECS_CANARY_STACK, AWS_REGION, AWS_PROFILE, ...   as for both CLIs
#
# Needs: bash, jq, the AWS CLI and ecs-canary (pip install it from the ecs-canary repository).
set -euo pipefail

usage="usage: deploy-and-wait.sh PAIR TASKDEF.json [IMAGE]"
pair=${1:?$usage}
taskdef_file=${2:?$usage}
image=${3:-}
timeout=${WAIT_TIMEOUT:-3600}
output=${WAIT_OUTPUT:-text}

# Progress goes to stderr: stdout is ecs-canary wait's alone (JSON Lines with WAIT_OUTPUT=json).
log() { echo "deploy-and-wait: $*" >&2; }
fail() {
  log "$1"
  exit "${2:-1}"
}

[[ -r $taskdef_file ]] || fail "cannot read $taskdef_file" 2

# 1. The idle service of the pair: ecs-canary knows which one holds the traffic.
pairs=$(ecs-canary pairs --output json)
entry=$(jq -ce --arg pair "$pair" '.[] | select(.name == $pair)' <<<"$pairs") ||
  fail "pair $pair is not registered (ecs-canary pairs lists the registered ones)" 2
cluster=$(jq -r '.cluster' <<<"$entry")
idle=$(jq -r '.idle_service' <<<"$entry")
active=$(jq -r '.active_deployment // empty' <<<"$entry")
if [[ -n $active && ${ALLOW_SUPERSEDE:-0} != 1 ]]; then
  fail "deployment $active of $pair is still running; a new release would supersede it (ALLOW_SUPERSEDE=1 to do so)"
fi
log "pair $pair: deploying to the idle service $idle in cluster $cluster"

# 2. A new task definition revision (with the new image, if given).
input=$(jq -c '.taskDefinition // .
  | del(.taskDefinitionArn, .revision, .status, .requiresAttributes, .compatibilities,
        .registeredAt, .registeredBy, .deregisteredAt)' "$taskdef_file")
if [[ -n $image ]]; then
  [[ -n ${CONTAINER:-} ]] || fail "set CONTAINER to the name of the container that runs $image" 2
  jq -e --arg name "$CONTAINER" 'any(.containerDefinitions[]; .name == $name)' <<<"$input" >/dev/null ||
    fail "$taskdef_file has no container named $CONTAINER" 2
  input=$(jq -c --arg name "$CONTAINER" --arg image "$image" \
    '(.containerDefinitions[] | select(.name == $name) | .image) = $image' <<<"$input")
fi
taskdef=$(aws ecs register-task-definition --cli-input-json "$input" \
  --query 'taskDefinition.taskDefinitionArn' --output text)
log "registered $taskdef"

# 3. Deploy it to the idle service; the answer's PRIMARY deployment is the new release. A service
#    ecs-canary scaled to zero after a promotion (after_promotion.scale_old_to_zero) gets back the
#    desired count it had, recorded on the pair: with no tasks there would be nothing to judge.
scale=()
retired=$(jq -r --arg idle "$idle" 'select(.retired.service == $idle) | .retired.desired_count' <<<"$entry")
if [[ -n $retired ]]; then
  scale=(--desired-count "$retired")
  log "$idle was scaled to zero after the last promotion: restoring its $retired tasks"
fi
primary=$(aws ecs update-service --cluster "$cluster" --service "$idle" --task-definition "$taskdef" "${scale[@]}" \
  --query "service.deployments[?status=='PRIMARY'] | [0].[id, taskDefinition]" --output text)
read -r release deployed <<<"$primary"
[[ $release == ecs-svc/* && $deployed == "$taskdef" ]] ||
  fail "update-service did not start a deployment of $taskdef on $idle (PRIMARY: $release $deployed)"
log "ECS deployment $release of $idle started; waiting for ecs-canary's verdict"

# 4. Wait for ecs-canary's verdict on exactly this release.
code=0
ecs-canary wait "$pair" --release "$release" --timeout "$timeout" --output "$output" || code=$?
case $code in
  0) log "$release SUCCEEDED: $idle is now live" ;;
  3) log "$release FAILED: traffic is back on the previous release" ;;
  4) log "$release REJECTED: it was not deployed (on_new_release: reject)" ;;
  5) log "$release ABORTED by an operator, or its execution was stopped; traffic restored" ;;
  6) log "$release TIMED_OUT: its execution timed out; traffic restored" ;;
  7) log "$release SUPERSEDED by a newer release on $idle; traffic restored" ;;
  8) log "$release ROLLBACK_FAILED: traffic is NOT back on the snapshot; act now (ecs-canary status $pair)" ;;
  9) log "gave up after ${timeout}s; the deployment goes on (ecs-canary watch $pair)" ;;
  *) log "ecs-canary wait failed (exit code $code)" ;;
esac
exit "$code"
