#!/usr/bin/env bash
# Validates deploy/docker-compose.yml and deploy/docker-compose.cpu.yml without a container
# engine, in a few seconds, for CI. It parses both files with Debian's python3-yaml (installed
# with apt-get when missing), resolves their variables to the defaults, and checks the keys
# the deployment relies on. It also checks that docs/deploy.md names every variable and that
# deploy/worker-entrypoint.sh handles every worker variable. When the Docker CLI has the
# compose plugin, `docker compose config` checks both file sets against the Compose schema too.
# Exits 1 and lists every problem when a check fails.
set -euo pipefail

repo=$(git -C "$(dirname "${BASH_SOURCE[0]}")" rev-parse --show-toplevel)
# Debian's python3-yaml installs for /usr/bin/python3, which may not be the first python3 on
# the PATH.
python=/usr/bin/python3

if ! "$python" -c 'import yaml' 2>/dev/null; then
  echo "check-compose: installing python3-yaml" >&2
  sudo_cmd=()
  if ((EUID != 0)); then
    sudo_cmd=(sudo)
  fi
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends \
    python3-yaml
fi

"$python" - "$repo" <<'PYTHON'
import pathlib
import re
import sys

import yaml

repo = pathlib.Path(sys.argv[1])
deploy = repo / "deploy"
problems = []

# ${NAME}, ${NAME:-default}, ${NAME-default} and $$: the forms that both Docker Compose and
# podman-compose 1.0 substitute. podman-compose 1.0 leaves ${NAME:-} (an empty default) as
# literal text, so an empty default counts as a problem.
VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}")


def resolve(value, where):
    if isinstance(value, dict):
        return {key: resolve(item, f"{where}.{key}") for key, item in value.items()}
    if isinstance(value, list):
        return [resolve(item, f"{where}[{index}]") for index, item in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match):
        if match.group(0) == "$$":
            return "$"
        if match.group(2) == "":
            problems.append(f"{where}: {match.group(0)} has an empty default, which "
                            "podman-compose 1.0 does not substitute")
        return match.group(2) or ""

    return VARIABLE.sub(substitute, value)


def merge(base, override):
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load(name):
    path = deploy / name
    text = path.read_text()
    try:
        content = yaml.safe_load(text)
    except yaml.YAMLError as error:
        sys.exit(f"check-compose: {path} is not valid YAML: {error}")
    if not isinstance(content, dict):
        sys.exit(f"check-compose: {path} does not contain a YAML mapping")
    return text, content


def replicas(config, service):
    value = config["services"][service].get("deploy", {}).get("replicas", 1)
    try:
        return int(value)
    except ValueError:
        problems.append(f"services.{service}.deploy.replicas: {value!r} is not an integer")
        return -1


def check(condition, message):
    if not condition:
        problems.append(message)


base_text, base = load("docker-compose.yml")
cpu_text, cpu = load("docker-compose.cpu.yml")
gpu_config = resolve(base, "docker-compose.yml")
cpu_config = merge(gpu_config, resolve(cpu, "docker-compose.cpu.yml"))

services = gpu_config.get("services", {})
missing = [name for name in ("coordinator", "worker", "worker-cpu") if name not in services]
if missing:
    sys.exit(f"check-compose: docker-compose.yml has no service {', '.join(missing)}")

declared_volumes = set((gpu_config.get("volumes") or {}).keys())
for name, service in services.items():
    check("image" in service, f"services.{name}.image is missing")
    build = service.get("build", {})
    dockerfile = deploy / build.get("context", ".") / build.get("dockerfile", "Dockerfile")
    check(dockerfile.is_file(), f"services.{name}.build: {dockerfile} does not exist")
    for mount in service.get("volumes", []):
        source = mount.split(":")[0]
        if not source.startswith((".", "/")):
            check(source in declared_volumes,
                  f"services.{name}.volumes: named volume {source} is not declared")

coordinator = services["coordinator"]
check("sweep-health-probe" in coordinator.get("healthcheck", {}).get("test", []),
      "services.coordinator.healthcheck.test does not run sweep-health-probe")
check(any(mount.endswith(":/var/lib/sweep") for mount in coordinator.get("volumes", [])),
      "services.coordinator.volumes: no volume at /var/lib/sweep, where the database lives")
for port in coordinator.get("ports", []):
    check(str(port).startswith("127.0.0.1:"),
          f"services.coordinator.ports: {port} is not bound to 127.0.0.1 by default")

for name in ("worker", "worker-cpu"):
    worker = services[name]
    check(worker.get("restart") == "unless-stopped",
          f"services.{name}.restart is not unless-stopped")
    check("coordinator" in worker.get("depends_on", {}),
          f"services.{name}.depends_on does not name coordinator")
devices = (services["worker"].get("deploy", {}).get("resources", {})
           .get("reservations", {}).get("devices", []))
check(any(d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", []) for d in devices),
      "services.worker.deploy.resources.reservations.devices reserves no NVIDIA GPU")
check("resources" not in services["worker-cpu"].get("deploy", {}),
      "services.worker-cpu.deploy.resources must not reserve devices")

check(replicas(gpu_config, "worker") >= 1, "docker-compose.yml: worker has no replicas")
check(replicas(gpu_config, "worker-cpu") == 0, "docker-compose.yml: worker-cpu has replicas")
check(replicas(cpu_config, "worker") == 0, "with the CPU override, worker still has replicas")
check(replicas(cpu_config, "worker-cpu") >= 1, "with the CPU override, worker-cpu has none")

guide_path = repo / "docs" / "deploy.md"
guide = guide_path.read_text() if guide_path.is_file() else ""
check(guide, f"{guide_path} is missing")
variables = {match.group(1) for match in VARIABLE.finditer(base_text + cpu_text)}
for variable in sorted(variables - {None}):
    check(f"`{variable}`" in guide, f"docs/deploy.md does not describe `{variable}`")
entrypoint = (deploy / "worker-entrypoint.sh").read_text()
for variable in services["worker"].get("environment", {}):
    if variable != "SWEEP_COORDINATOR":
        check(f"{variable}:--" in entrypoint,
              f"deploy/worker-entrypoint.sh does not turn {variable} into a flag")
        check(f"`{variable}`" in guide, f"docs/deploy.md does not describe `{variable}`")

if problems:
    sys.exit("check-compose: " + "\n  ".join(["problems:"] + problems))
print("check-compose: docker-compose.yml and docker-compose.cpu.yml pass")
PYTHON

if docker compose version >/dev/null 2>&1; then
  base_file=(-f "$repo/deploy/docker-compose.yml")
  docker compose "${base_file[@]}" config --quiet
  docker compose "${base_file[@]}" -f "$repo/deploy/docker-compose.cpu.yml" config --quiet
  echo "check-compose: docker compose config accepts both file sets"
fi
