#!/usr/bin/env bash
# Builds the real cluster the tests run on — etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubelet, kube-proxy, and CoreDNS for cluster DNS — plus kubectl and helm, from the Go module proxy, once, into a
# versioned cache outside the repo. Prints exactly one line on stdout: the directory holding the
# executables (envtest's KUBEBUILDER_ASSETS convention). Progress goes to stderr.
# KUBEBUILDER_ASSETS pointing at a directory that already holds them all skips the build.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.35.4}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
HELM_VERSION="${HELM_VERSION:-v3.19.5}"
COREDNS_VERSION="${COREDNS_VERSION:-v1.14.7}"
KUBE_BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
BINARIES=(etcd "${KUBE_BINARIES[@]}" helm coredns)

has_all() {
  local d="$1" b
  for b in "${BINARIES[@]}"; do [ -x "$d/$b" ] || return 1; done
}

if [ -n "${KUBEBUILDER_ASSETS:-}" ]; then
  if has_all "$KUBEBUILDER_ASSETS"; then echo "$KUBEBUILDER_ASSETS"; exit 0; fi
  echo "build-k8s: KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS lacks one of ${BINARIES[*]}; building our own" >&2
fi

CACHE="${SCHEMAGATE_CACHE:-$HOME/.cache/schemagate}"
dir="$CACHE/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-helm-$HELM_VERSION-coredns-$COREDNS_VERSION"
if has_all "$dir"; then echo "$dir"; exit 0; fi

command -v go >/dev/null || {
  echo "build-k8s: Go toolchain not found (needed to build Kubernetes $K8S_VERSION, etcd $ETCD_VERSION, helm $HELM_VERSION)" >&2
  exit 1
}
mkdir -p "$dir"
# Binaries land in $dir only when complete (mv within one filesystem is atomic), so an
# interrupted build never leaves a truncated executable that the has_all check would trust.
work="$(mktemp -d "$CACHE/.build-XXXXXX")"
trap 'rm -rf "$work"' EXIT
# The local toolchain is new enough for every module here; never fetch another one behind our back.
export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false CGO_ENABLED=0
started=$SECONDS

# k8s.io/kubernetes requires its staging modules at v0.0.0 with replace => ./staging/..., which a
# consumer cannot resolve (kubernetes/kubernetes#79384). The wrapper module replaces each with the
# release published for the same minor version (v1.X.Y -> v0.X.Y).
build_kubernetes() {
  local staging_version="v0.${K8S_VERSION#v1.}" minor
  minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
  local m="$work/kubernetes"
  mkdir -p "$m"
  {
    echo "module schemagate.local/k8s-build"
    echo
    echo "go 1.25.0"
    echo
    echo "godebug default=go1.25"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    echo "replace ("
    for s in api apiextensions-apiserver apimachinery apiserver cli-runtime client-go cloud-provider \
      cluster-bootstrap code-generator component-base component-helpers controller-manager cri-api \
      cri-client csi-translation-lib dynamic-resource-allocation endpointslice externaljwt kms \
      kube-aggregator kube-controller-manager kube-proxy kube-scheduler kubectl kubelet metrics \
      mount-utils pod-security-admission sample-apiserver sample-cli-plugin sample-controller \
      streaming cri-streaming; do
      # 1.36 added staging modules; only replace the ones this release has.
      if [ "$s" = streaming ] || [ "$s" = cri-streaming ]; then
        [ "$minor" -ge 36 ] || continue
      fi
      echo "	k8s.io/$s => k8s.io/$s $staging_version"
    done
    echo ")"
  } >"$m/go.mod"
  cat >"$m/tools.go" <<'EOF'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
EOF
  local pkg="k8s.io/component-base/version" cpkg="k8s.io/client-go/pkg/version" ld="-s -w"
  for p in $pkg $cpkg; do
    ld="$ld -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
  done
  echo "build-k8s: resolving Kubernetes $K8S_VERSION modules" >&2
  (cd "$m" && go mod tidy -e >&2 2>&1 && go mod download >&2)
  mkdir -p "$work/out"
  echo "build-k8s: compiling ${KUBE_BINARIES[*]} $K8S_VERSION" >&2
  local b pkgs=()
  for b in "${KUBE_BINARIES[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
  (cd "$m" && go build -trimpath -ldflags "$ld" -o "$work/out/" "${pkgs[@]}" >&2)
  for b in "${KUBE_BINARIES[@]}"; do mv "$work/out/$b" "$dir/"; done
}

# etcd's server module replaces its sibling modules with relative paths, so `go install @version`
# refuses it; a wrapper module pins the siblings at the same release instead.
build_etcd() {
  local m="$work/etcd"
  mkdir -p "$m"
  cat >"$m/go.mod" <<EOF
module schemagate.local/etcd-build

go 1.26.0

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
EOF
  cat >"$m/tools.go" <<'EOF'
//go:build tools

package tools

import _ "go.etcd.io/etcd/server/v3"
EOF
  mkdir -p "$work/out"
  echo "build-k8s: compiling etcd $ETCD_VERSION" >&2
  (cd "$m" && go mod tidy -e >&2 2>&1 && go build -trimpath -ldflags "-s -w" -o "$work/out/etcd" go.etcd.io/etcd/server/v3 >&2)
  mv "$work/out/etcd" "$dir/etcd"
}

build_helm() {
  echo "build-k8s: compiling helm $HELM_VERSION" >&2
  # Without the stamp `helm version` says v3.x-dev and charts' kubeVersion checks misbehave.
  GOBIN="$work/helm-bin" go install -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2
  mv "$work/helm-bin/helm" "$dir/helm"
}

build_coredns() {
  echo "build-k8s: compiling coredns $COREDNS_VERSION" >&2
  GOBIN="$work/coredns-bin" go install -trimpath -ldflags "-s -w" \
    "github.com/coredns/coredns@$COREDNS_VERSION" >&2
  mv "$work/coredns-bin/coredns" "$dir/coredns"
}

[ -x "$dir/etcd" ] || build_etcd
kube_built() { local b; for b in "${KUBE_BINARIES[@]}"; do [ -x "$dir/$b" ] || return 1; done; }
kube_built || build_kubernetes
[ -x "$dir/helm" ] || build_helm
[ -x "$dir/coredns" ] || build_coredns
has_all "$dir" || { echo "build-k8s: build finished but $dir lacks one of ${BINARIES[*]}" >&2; exit 1; }
echo "build-k8s: built into $dir in $((SECONDS - started))s" >&2
echo "$dir"
