#!/usr/bin/env bash
# Builds HashiCorp's vault CLI from its Go module at a pinned version, for
# cmd/kmsd TestVaultCLI and kms TestAgainstVault, and prints the binary's
# path. `go install` refuses
# github.com/hashicorp/vault because its go.mod replaces its own submodules
# (api, sdk, api/auth/...) with directories (./api, ./sdk) that the module's
# zip does not contain; here each of those replaces is pointed at the
# submodule downloaded from the Go module proxy at the version vault's go.mod
# requires, in a temporary copy of the module. Nothing of vault's is written
# into this repository: the copy is in a temporary directory and the binary
# in the cache directory, reused while its version matches.
#
# This works when the submodules in vault's tree are the published versions
# its go.mod requires. v1.21.0 is the newest 1.21 release for which they are:
# v1.21.2 to v1.21.4 use sdk code between the published sdk v0.20.0 and
# v0.21.0 (sdk v0.20.0 lacks framework.Backend.TryRecordObservationWithRequest,
# which they call; v0.21.0, which v1.21.3 and v1.21.4 require, changed
# ActivationFunc's signature after them), and the proxy cannot serve the
# tree's own sdk without the commit of its tag.
#
# usage: .ci/build-vault.sh [VERSION]   (default VAULT_VERSION or v1.21.0)
set -euo pipefail
version=${1:-${VAULT_VERSION:-v1.21.0}}
cache=${SHARED_ENCLAVE_TOOL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sharedenclave}/vault-$version
bin=$cache/vault
if [ -x "$bin" ] && "$bin" version 2>/dev/null | grep -q "Vault ${version}"; then
  echo "$bin"; exit 0
fi

moddir() { # module@version -> its directory in the module cache
  go mod download -json "$1" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p'
}
src=$(moddir "github.com/hashicorp/vault@$version")
[ -n "$src" ] || { echo "build-vault: cannot download github.com/hashicorp/vault@$version" >&2; exit 1; }

work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
cp -R "$src/." "$work/vault"
chmod -R u+w "$work/vault"
cd "$work/vault"

# Every `replace github.com/hashicorp/vault/X => ./X` becomes the
# downloaded module at the version vault's require block names.
awk '$1=="replace" && $2 ~ /^github.com\/hashicorp\/vault\// && $4 ~ /^\.\// {print $2}' go.mod >"$work/paths"
[ -s "$work/paths" ] || { echo "build-vault: vault $version's go.mod has no ./ replaces; build it with go install" >&2; exit 1; }
while read -r path; do
  ver=$(awk -v p="$path" '$1==p && $2 ~ /^v/ {print $2; exit}' go.mod)
  [ -n "$ver" ] || { echo "build-vault: vault $version's go.mod requires no version of $path" >&2; exit 1; }
  dir=$(moddir "$path@$ver")
  [ -n "$dir" ] || { echo "build-vault: cannot download $path@$ver" >&2; exit 1; }
  go mod edit -replace "$path=$dir"
done <"$work/paths"

mkdir -p "$cache"
CGO_ENABLED=0 go build -trimpath -o "$cache/vault.tmp" .
mv "$cache/vault.tmp" "$bin"
"$bin" version >&2
echo "$bin"
