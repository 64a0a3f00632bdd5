# shellcheck shell=bash
# Sourced, not run, by the build-*.sh of the Go programs kept in this repository (hack/argocd-health,
# hack/kstatus): `build_go_program PROGRAM CACHE_NAME OVERRIDE` builds hack/PROGRAM from the Go module
# proxy, once per source, into a cache outside the repo, and prints the binary's path.
#   PROGRAM     the directory under hack/, and the binary's name
#   CACHE_NAME  the cache directory's name before the source key (it names the pinned dependency)
#   OVERRIDE    the value of the program's *_BIN variable: when set, it is printed and nothing is built
build_go_program() {
  local program="$1" cache_name="$2" override="$3" src key dir
  if [ -n "$override" ]; then echo "$override"; return 0; fi
  src="$(cd "$(dirname "${BASH_SOURCE[0]}")/$program" && pwd)"
  # Keyed on the sources: an edited main.go or go.sum builds anew instead of running a stale binary.
  key="$(cat "$src/go.mod" "$src/go.sum" "$src/main.go" | sha256sum | cut -c1-12)"
  dir="${SCHEMAGATE_CACHE:-$HOME/.cache/schemagate}/$cache_name-$key"
  if [ ! -x "$dir/$program" ]; then
    command -v go >/dev/null || { echo "build-$program: Go toolchain not found (needed to build $src)" >&2; return 1; }
    echo "building $program into $dir" >&2
    mkdir -p "$dir"
    (cd "$src" && GOFLAGS="-buildvcs=false -mod=readonly" go build -o "$dir/$program.tmp.$$" . >&2)
    mv "$dir/$program.tmp.$$" "$dir/$program"  # a name per process: two test workers may build it at once
  fi
  echo "$dir/$program"
}
