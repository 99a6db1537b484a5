#!/usr/bin/env bash
# End-to-end check of the container deployment on one machine, with podman. It builds both
# images, starts deploy/docker-compose.yml with the CPU override through podman-compose, and
# submits a real sweep: 2 trials of examples/demo-grid.json, 1 epoch each, on the first 2,000
# Fashion-MNIST training images. It waits until the sweep completes, prints its trials and
# checks the health probe, the published port, the non-root users, the database and checkpoint
# volumes, OpenBLAS and a graceful stop. Containers, network and volumes are removed on exit;
# the images stay, so a rerun builds from cache. Exits 0 only when every check passes.
#
#   deploy/smoke.sh    # as root, from anywhere in the repository
#
# When podman, podman-compose or the local debian:bookworm-slim image is missing, it runs
# container-setup.sh from the shared directory next to the repository (../shared/tools).
#
# Environment:
#   SMOKE_TIMEOUT  seconds to wait for the sweep to finish (default 600)
#   BUILD_JOBS     compile jobs in each image build (default: Ninja's choice from the core count)
set -euo pipefail

repo=$(git -C "$(dirname "${BASH_SOURCE[0]}")" rev-parse --show-toplevel)
setup_script=$(realpath -m "$repo/../shared/tools/container-setup.sh")
base_image=docker.io/library/debian:bookworm-slim
project=sweep-smoke-$$
timeout_seconds=${SMOKE_TIMEOUT:-600}
started=$SECONDS

log() { printf 'smoke: %s\n' "$*" >&2; }
fail() {
  log "FAILED: $*"
  exit 1
}

have_container_tools() {
  command -v podman >/dev/null && command -v podman-compose >/dev/null &&
    podman image exists "$base_image"
}

if ! have_container_tools; then
  if [[ ! -f $setup_script ]]; then
    fail "podman, podman-compose or the $base_image image is missing, and $setup_script," \
      "which installs them, does not exist; check out the shared directory next to the" \
      "repository"
  fi
  ((EUID == 0)) || fail "podman needs setting up and $setup_script must run as root; rerun as root"
  log "podman, podman-compose or $base_image is missing; running $setup_script"
  bash "$setup_script" || fail "$setup_script exited with status $?"
  have_container_tools || fail "$setup_script finished, but podman, podman-compose or" \
    "$base_image is still missing"
fi

# Tags of their own keep the smoke test from replacing images that a deployment uses.
export SWEEP_COORDINATOR_IMAGE=localhost/sweep-coordinator:smoke
export SWEEP_WORKER_IMAGE=localhost/sweep-worker:smoke
# A free loopback port, so the test runs beside a coordinator on the default port.
SWEEP_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export SWEEP_PORT
export SWEEP_WORKERS=1
export SWEEP_MAX_TRAIN_IMAGES=2000
export SWEEP_VALIDATION_IMAGES=500
export SWEEP_MAX_TEST_IMAGES=1000
export SWEEP_ARTIFACTS_DIR=/var/lib/sweep/artifacts

compose=(podman-compose -p "$project" -f "$repo/deploy/docker-compose.yml"
  -f "$repo/deploy/docker-compose.cpu.yml")
coordinator=${project}_coordinator_1
worker=${project}_worker-cpu_1

print_logs() {
  local name
  for name in $(podman ps -a --filter "label=io.podman.compose.project=$project" \
    --format '{{.Names}}'); do
    log "last lines of the log of $name:"
    podman logs --tail 40 "$name" >&2 || true
  done
}

cleanup() {
  local status=$?
  trap - EXIT
  if ((status != 0)); then print_logs; fi
  "${compose[@]}" down -v >/dev/null 2>&1 || true
  podman volume rm -f "${project}_coordinator-data" "${project}_worker-artifacts" \
    >/dev/null 2>&1 || true
  podman network rm -f "${project}_default" >/dev/null 2>&1 || true
  if ((status == 0)); then
    log "PASSED in $((SECONDS - started)) s"
  else
    log "FAILED after $((SECONDS - started)) s"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

build_started=$SECONDS
for component in coordinator worker; do
  image_variable=SWEEP_${component^^}_IMAGE
  log "building ${!image_variable}"
  podman build --pull=never --format docker ${BUILD_JOBS:+--build-arg "BUILD_JOBS=$BUILD_JOBS"} \
    -f "$repo/deploy/Dockerfile.$component" -t "${!image_variable}" "$repo" ||
    fail "building deploy/Dockerfile.$component failed"
done
log "built both images in $((SECONDS - build_started)) s"

run_started=$SECONDS
"${compose[@]}" up -d --no-build || fail "podman-compose up failed"

# podman runs health checks from systemd timers, which containers here may lack, so the
# script runs the compose file's check itself until it passes.
deadline=$((SECONDS + 120))
until health=$(podman healthcheck run "$coordinator" 2>&1); do
  state=$(podman inspect -f '{{.State.Status}}' "$coordinator" 2>/dev/null || echo missing)
  [[ $state == running ]] || fail "the coordinator container is $state, not running"
  ((SECONDS < deadline)) || fail "the coordinator is not healthy after 120 s: $health"
  sleep 1
done
log "coordinator healthy"

podman run --rm --network host --entrypoint sweep-health-probe "$SWEEP_COORDINATOR_IMAGE" \
  --address "127.0.0.1:$SWEEP_PORT" >/dev/null ||
  fail "the coordinator is not reachable on its published port 127.0.0.1:$SWEEP_PORT"
for name in "$coordinator" "$worker"; do
  uid=$(podman exec "$name" id -u) || fail "cannot run id in $name"
  [[ $uid != 0 ]] || fail "$name runs as root"
done

sweep_id=$(podman exec "$coordinator" sweep submit /usr/share/sweep/examples/demo-grid.json \
  --grid-size 2 --seed 1 --name smoke) || fail "sweep submit failed"
log "submitted sweep $sweep_id; waiting up to $timeout_seconds s for it to finish"
watch_status=0
timeout "$timeout_seconds" podman exec "$coordinator" sweep watch "$sweep_id" ||
  watch_status=$?
podman exec "$coordinator" sweep trials "$sweep_id" || fail "sweep trials failed"
case $watch_status in
  0) ;;
  124) fail "sweep $sweep_id did not finish within $timeout_seconds s" ;;
  5) fail "sweep $sweep_id ended failed or cancelled" ;;
  *) fail "sweep watch $sweep_id exited with status $watch_status" ;;
esac

completed=$(podman exec "$coordinator" sweep --json trials "$sweep_id" --state completed |
  python3 -c 'import json, sys; print(len(json.load(sys.stdin)))') ||
  fail "cannot count the completed trials"
[[ $completed == 2 ]] || fail "sweep $sweep_id has $completed completed trials, not 2"
podman exec "$coordinator" test -s /var/lib/sweep/sweep.db ||
  fail "the database is not in the coordinator's volume at /var/lib/sweep/sweep.db"
podman exec "$worker" sh -c 'ls /var/lib/sweep/artifacts/*/best.pt' >/dev/null ||
  fail "the worker wrote no checkpoint to its volume at /var/lib/sweep/artifacts"
worker_log=$(podman logs "$worker" 2>&1)
grep -q 'blas="OpenBLAS (openblas-openmp)"' <<<"$worker_log" ||
  fail "the worker does not use OpenBLAS (openblas-openmp) for libblas.so.3"

# Graceful stop: each process takes SIGTERM, logs its last line and exits before the timeout.
podman stop -t 30 "$worker" >/dev/null || fail "podman stop $worker failed"
worker_log=$(podman logs "$worker" 2>&1)
grep -q 'stopped after' <<<"$worker_log" ||
  fail "the worker did not log a clean stop after SIGTERM"
podman stop -t 30 "$coordinator" >/dev/null || fail "podman stop $coordinator failed"
coordinator_log=$(podman logs "$coordinator" 2>&1)
grep -q 'stopped$' <<<"$coordinator_log" ||
  fail "the coordinator did not log a clean stop after SIGTERM"
log "stack up, sweep done and stack stopped in $((SECONDS - run_started)) s"
