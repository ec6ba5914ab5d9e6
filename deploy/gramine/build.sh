#!/usr/bin/env bash
# Build the static binaries, render and sign the Gramine manifests when the
# Gramine tools are installed, and print each enclave's MRENCLAVE and
# MRSIGNER for the policy files.
#
#   deploy/gramine/build.sh OUT_DIR [SIGNING_KEY]
#
# OUT_DIR receives bin/, the manifests and the .sig files. SIGNING_KEY is the
# enclave signing key (RSA-3072, exponent 3; gramine-sgx-gen-private-key makes
# one); its hash is the MRSIGNER every peer's policy will name.
# Settings come from the environment: PCCS_URL, DATA_ROOT, POLICY_DIR,
# RELAY_HOST, RELAY_PORT, CLIENT_ID, GOMAXPROCS_ENCLAVE. C_CLIENT=1 also
# builds libsharedenclave and the C example client into OUT_DIR/c
# (cshared/build.sh; needs a C compiler) and its manifest.
set -euo pipefail
out=${1:?usage: build.sh OUT_DIR [SIGNING_KEY]}
key=${2:-$HOME/.config/gramine/enclave-key.pem}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
mkdir -p "$out/bin"
out=$(cd "$out" && pwd)

echo "== static binaries (CGO_ENABLED=0)"
for cmd in relayd kmsd example-client enclavectl; do
  (cd "$repo" && CGO_ENABLED=0 go build -trimpath -ldflags=-buildid= -o "$out/bin/$cmd" "./cmd/$cmd")
done

pccs=${PCCS_URL:-https://api.trustedservices.intel.com/sgx/certification/v4/}
data=${DATA_ROOT:-/var/lib/shared-enclave}
pol=${POLICY_DIR:-/etc/shared-enclave}
printf '%s\0' example-client --policy /config/client-policy.toml --pccs "$pccs" \
  "${RELAY_HOST:-127.0.0.1}" "${RELAY_PORT:-12345}" "${CLIENT_ID:-default_client_id}" > "$out/example-client.argv"

c_client=${C_CLIENT:-0}
if [ "$c_client" = 1 ]; then
  echo "== libsharedenclave and the C example client (cshared/build.sh)"
  SE_BUILD=shared "$repo/cshared/build.sh" "$out/c"
  printf '%s\0' example_client --policy /config/client-policy.toml --pccs "$pccs" \
    "${RELAY_HOST:-127.0.0.1}" "${RELAY_PORT:-12345}" "${CLIENT_ID:-default_client_id}" > "$out/example_client.argv"
fi

if ! command -v gramine-manifest >/dev/null || ! command -v gramine-sgx-sign >/dev/null; then
  echo "gramine-manifest / gramine-sgx-sign not installed: binaries built, manifests not signed."
  echo "Simulated measurements (SHA-256 of each binary) for --simulation policies:"
  for cmd in relayd kmsd example-client; do
    printf '  %-15s mrenclave %s\n' "$cmd" "$("$out/bin/enclavectl" measure "$out/bin/$cmd")"
  done
  if [ "$c_client" = 1 ]; then
    printf '  %-15s mrenclave %s\n' example_client "$("$out/bin/enclavectl" measure "$out/c/bin/example_client")"
  fi
  exit 0
fi

common=(-Dbin_dir="$out/bin" -Dca_bundle=/etc/ssl/certs/ca-certificates.crt -Dpccs_url="$pccs"
        -Dgomaxprocs="${GOMAXPROCS_ENCLAVE:-8}")
gramine-manifest "${common[@]}" -Ddata_dir="$data/relayd" -Dpolicy="$pol/relay-policy.toml" \
  -Disvprodid=1 -Disvsvn=1 "$here/relayd.manifest.template" "$out/relayd.manifest"
gramine-manifest "${common[@]}" -Ddata_dir="$data/kmsd" \
  -Disvprodid=3 -Disvsvn=1 "$here/kmsd.manifest.template" "$out/kmsd.manifest"
gramine-manifest "${common[@]}" -Dpolicy="$pol/client-policy.toml" -Dargv_file="$out/example-client.argv" \
  -Disvprodid=2 -Disvsvn=1 "$here/example-client.manifest.template" "$out/example-client.manifest"

manifests=(relayd kmsd example-client)
if [ "$c_client" = 1 ]; then
  gramine-manifest -Dbin_dir="$out/c/bin" -Dlib_dir="$out/c/lib" -Dca_bundle=/etc/ssl/certs/ca-certificates.crt \
    -Dgomaxprocs="${GOMAXPROCS_ENCLAVE:-8}" -Dpolicy="$pol/client-policy.toml" -Dargv_file="$out/example_client.argv" \
    -Disvprodid=2 -Disvsvn=1 "$here/example-client-c.manifest.template" "$out/example-client-c.manifest"
  manifests+=(example-client-c)
fi
for m in "${manifests[@]}"; do
  gramine-sgx-sign --key "$key" --manifest "$out/$m.manifest" --output "$out/$m.manifest.sgx" >/dev/null
  echo "== $m"
  gramine-sgx-sigstruct-view --output-format toml "$out/$m.sig" | grep -E '^(mr_enclave|mr_signer|isv_prod_id|isv_svn)'
done
echo "Put these values into the [peers] tables of the policy files (docs/DEPLOY.md)."
