#!/usr/bin/env bash
# Starts sweep-worker with flags taken from SWEEP_* environment variables, so the container
# image and the systemd unit configure a worker the same way. A variable that is unset or
# empty leaves its flag out, and sweep-worker's own default applies. Arguments to this script
# follow the flags; give each setting one way only, because sweep-worker rejects a flag that
# appears twice. sweep-worker reads SWEEP_COORDINATOR (HOST:PORT) itself.
set -euo pipefail

worker=${SWEEP_WORKER_BINARY:-sweep-worker}

# Environment variable and the sweep-worker flag it sets.
settings=(
  SWEEP_DATA_DIR:--data-dir
  SWEEP_DEVICE:--device
  SWEEP_THREADS:--threads
  SWEEP_FUSE_TRIALS:--fuse-trials
  SWEEP_MAX_TRAIN_IMAGES:--max-train-images
  SWEEP_VALIDATION_IMAGES:--validation-images
  SWEEP_MAX_TEST_IMAGES:--max-test-images
  SWEEP_ARTIFACTS_DIR:--artifacts-dir
  SWEEP_LOG_LEVEL:--log-level
  SWEEP_LOG_FORMAT:--log-format
)

flags=()
for setting in "${settings[@]}"; do
  variable=${setting%%:*}
  flag=${setting#*:}
  value=${!variable:-}
  if [[ -n $value ]]; then
    flags+=("$flag=$value")
  fi
done

exec "$worker" "${flags[@]}" "$@"
