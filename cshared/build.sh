#!/usr/bin/env bash
# Build libsharedenclave: the shared and the static library, the public
# header, the pkg-config file, and the C example client.
#
#   cshared/build.sh OUT_DIR [PREFIX]
#
# OUT_DIR receives
#   lib/libsharedenclave.so    -buildmode=c-shared (SONAME libsharedenclave.so)
#   lib/libsharedenclave.a     -buildmode=c-archive
#   include/sharedenclave.h    the public header (the one cgo writes is not installed)
#   lib/pkgconfig/sharedenclave.pc   with prefix=PREFIX (default: OUT_DIR)
#   bin/example_client         linked against the shared library (rpath $ORIGIN/../lib)
# Environment: SE_BUILD=all|shared|static (default all), CC (default cc).
# Needs Go and a C compiler; the rest of the repository needs neither cgo
# nor this script (the library's Go files carry the sharedenclave_c tag).
set -euo pipefail
out=${1:?usage: build.sh OUT_DIR [PREFIX]}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
mkdir -p "$out/lib/pkgconfig" "$out/include" "$out/bin"
out=$(cd "$out" && pwd)
prefix=${2:-$out}
what=${SE_BUILD:-all}
cc=${CC:-cc}
version=$(sed -n 's/^#define SE_VERSION_MAJOR \([0-9]*\)$/\1/p' "$here/sharedenclave.h").$(sed -n 's/^#define SE_VERSION_MINOR \([0-9]*\)$/\1/p' "$here/sharedenclave.h").0

export CGO_ENABLED=1
gobuild() { (cd "$repo" && go build -trimpath -tags sharedenclave_c "$@" ./cshared); }
case $what in all|shared)
  echo "== lib/libsharedenclave.so"
  gobuild -buildmode=c-shared -ldflags=-extldflags=-Wl,-soname,libsharedenclave.so -o "$out/lib/libsharedenclave.so"
  rm -f "$out/lib/libsharedenclave.h" ;;
esac
case $what in all|static)
  echo "== lib/libsharedenclave.a"
  gobuild -buildmode=c-archive -o "$out/lib/libsharedenclave.a"
  rm -f "$out/lib/libsharedenclave.h" ;;
esac
case $what in all|shared|static) ;; *) echo "SE_BUILD=$what: want all, shared or static" >&2; exit 2 ;; esac

cp "$here/sharedenclave.h" "$out/include/sharedenclave.h"
sed -e "s|@PREFIX@|$prefix|" -e "s|@VERSION@|$version|" "$here/sharedenclave.pc.in" > "$out/lib/pkgconfig/sharedenclave.pc"

if [ -f "$out/lib/libsharedenclave.so" ]; then
  echo "== bin/example_client"
  "$cc" -std=c11 -Wall -Wextra -O2 -I"$out/include" -o "$out/bin/example_client" "$here/example/example_client.c" \
    -L"$out/lib" -lsharedenclave -Wl,-rpath,'$ORIGIN/../lib'
fi
echo "done: $out (pkg-config: PKG_CONFIG_PATH=$out/lib/pkgconfig pkg-config --cflags --libs sharedenclave)"
