#!/bin/bash
# Validates the manifests here without a cluster: every object against
# the Kubernetes API schemas of 1.29 (the oldest with backoffLimitPerIndex)
# and the newest the validator knows, rejecting unknown fields; a manifest
# with a misspelt field must fail, so the check is not a no-op; and the
# Job's shard count is the same in completions, parallelism and
# PLUGWARDEN_SHARDS. It needs python3 with venv, and PyPI for
# kubernetes-validate. This is all that was run here: no cluster.
#
# Usage: deploy/k8s/check-offline.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
venv=$(mktemp -d)
trap 'rm -rf "$venv"' EXIT
python3 -m venv "$venv"
"$venv/bin/pip" install -q kubernetes-validate
validate() { "$venv/bin/kubernetes-validate" --strict --quiet "$@"; }

for version in 1.29.0 ""; do
    validate ${version:+-k "$version"} "$here"/*.yaml
    echo "check-offline: manifests valid for Kubernetes ${version:-$("$venv/bin/kubernetes-validate" --version | awk '{print $NF}') (newest known)}"
done

sed 's/completionMode:/completionMod:/' "$here/job.yaml" > "$venv/typo.yaml"
if validate "$venv/typo.yaml" >/dev/null 2>&1; then
    echo "check-offline: FAILED: a misspelt field passed validation" >&2
    exit 1
fi

"$venv/bin/python" - "$here/job.yaml" <<'PY'
import sys, yaml
job = yaml.safe_load(open(sys.argv[1]))
spec = job["spec"]
pod = spec["template"]["spec"]
env = {e["name"]: e["value"] for c in pod["containers"] for e in c.get("env", [])}
counts = {spec["completions"], spec["parallelism"], int(env["PLUGWARDEN_SHARDS"])}
assert spec["completionMode"] == "Indexed", "the Job must be Indexed"
assert len(counts) == 1, f"completions, parallelism and PLUGWARDEN_SHARDS differ: {counts}"
assert pod["initContainers"][0]["args"][0] == "doctor", "doctor is the pod's first step"
print(f"check-offline: Indexed Job of {counts.pop()} shards, doctor first")
PY
echo "check-offline: ok (not run on a cluster)"
