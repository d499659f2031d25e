#!/usr/bin/env bash
# One-time, idempotent set-up for building and testing zmesh on Debian 12.
#
# Installs the Debian packages zmesh builds against and the peers its
# benchmarks compare with, then builds wolfSSL from Debian's *source* package
# with its x86-64 assembly into a project-local prefix (.deps/wolfssl).
# Debian's binary libwolfssl has no assembly and runs AES-GCM ~30x slower,
# which would make every TLS figure meaningless.
#
# A second run with everything in place does nothing but check. Set
# ZMESH_SYSTEM_WOLFSSL=1 to link Debian's binary package instead (slow).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
deps="$top/.deps"
prefix="$deps/wolfssl"
stamp="$prefix/.zmesh-stamp"

# Flags are part of the stamp: changing them rebuilds.
wolfssl_flags=(
    --enable-static --disable-shared --with-pic
    --enable-intelasm --enable-aesni --enable-sp=yes --enable-sp-asm
    --enable-tls13 --enable-alpn --enable-sni --enable-session-ticket
    --enable-certgen --enable-certreq --enable-certext --enable-keygen
    --enable-ecc --enable-ed25519 --enable-curve25519 --enable-aesgcm --enable-aesgcm-stream
    --enable-opensslextra --enable-altcertchains
    --disable-examples --disable-crypttests --disable-benchmark
    # HAVE_SECRET_CALLBACK hands us the TLS 1.3 traffic secrets: after the
    # handshake common/tls_record.c protects records itself, in place in
    # the socket buffers, instead of through wolfSSL's copies.
    CFLAGS="-O2 -DWOLFSSL_ALT_NAMES -DHAVE_SECRET_CALLBACK"
)

log() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

need_root() {
    [ "$(id -u)" = 0 ] || die "must run as root to install packages ($*)"
}

packages=(
    build-essential cmake pkg-config git dpkg-dev autoconf automake libtool
    liburing-dev libnghttp2-dev libconfig-dev libnl-3-dev libnl-route-3-dev
    libcmocka-dev libjansson-dev libyaml-dev libpcre2-dev libnftables-dev libhttp-parser-dev
    nftables iproute2 iptables tcpdump curl
    clang libclang-rt-14-dev
    python3 python3-h2
    nghttp2-proxy nghttp2-client tinyproxy-bin wrk haproxy stunnel4
)
# Intel's multi-buffer crypto: the TLS record layer's AES-GCM on x86-64
# (VAES / AVX-512 where the CPU has them); elsewhere wolfCrypt's is used.
[ "$(dpkg --print-architecture)" = amd64 ] && packages+=(libipsec-mb-dev)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    need_root "${missing[*]}"
    log "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ "${ZMESH_SYSTEM_WOLFSSL:-0}" = 1 ]; then
    log "WARNING: ZMESH_SYSTEM_WOLFSSL=1: using Debian's binary libwolfssl,"
    log "WARNING: which has no assembly: AES-GCM is about 30x slower."
    dpkg-query -W -f='${Status}' libwolfssl-dev 2>/dev/null | grep -q 'install ok installed' ||
        { need_root libwolfssl-dev; apt-get install -y -qq libwolfssl-dev >/dev/null; }
    exit 0
fi

want_stamp=$(printf '%s\n' "${wolfssl_flags[@]}" | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want_stamp" ]; then
    exit 0
fi

# deb-src entries: derived from the machine's own Debian entries (same
# archive, suites, components and keyring), never named here.
ensure_deb_src() {
    if apt-get source --print-uris wolfssl >/dev/null 2>&1; then return 0; fi
    need_root "adding deb-src entries"
    . /etc/os-release
    local codename=${VERSION_CODENAME:?}
    local out=/etc/apt/sources.list.d/zmesh-deb-src.sources
    local tmp
    tmp=$(mktemp)
    python3 - "$codename" >"$tmp" <<'PY'
import glob, re, sys
code = sys.argv[1]
suite_ok = re.compile(r'^%s(-updates|-security|-backports)?$' % re.escape(code))
out = []
for path in glob.glob('/etc/apt/sources.list.d/*.sources'):
    if path.endswith('zmesh-deb-src.sources'):
        continue
    for stanza in open(path).read().split('\n\n'):
        fields, key = {}, None
        for line in stanza.splitlines():
            if not line.strip() or line.lstrip().startswith('#'):
                continue
            if line[0] in ' \t' and key:
                fields[key] += '\n' + line
                continue
            key, _, val = line.partition(':')
            fields[key.strip()] = val.strip()
        if 'deb' not in fields.get('Types', '').split():
            continue
        if fields.get('Enabled', 'yes').lower() == 'no':
            continue
        suites = [s for s in fields.get('Suites', '').split() if suite_ok.match(s)]
        if not suites:
            continue
        f = dict(fields, Types='deb-src', Suites=' '.join(suites))
        out.append('\n'.join('%s: %s' % kv for kv in f.items()))
for path in ['/etc/apt/sources.list'] + glob.glob('/etc/apt/sources.list.d/*.list'):
    try:
        lines = open(path).read().splitlines()
    except OSError:
        continue
    for line in lines:
        parts = line.split('#', 1)[0].split()
        if len(parts) < 4 or parts[0] != 'deb':
            continue
        opts = []
        rest = parts[1:]
        if rest[0].startswith('['):
            while not rest[0].endswith(']'):
                opts.append(rest.pop(0))
            opts.append(rest.pop(0))
        uri, suite, comps = rest[0], rest[1], rest[2:]
        if not suite_ok.match(suite):
            continue
        out.append('Types: deb-src\nURIs: %s\nSuites: %s\nComponents: %s' % (uri, suite, ' '.join(comps)))
print('\n\n'.join(out))
PY
    [ -s "$tmp" ] || { rm -f "$tmp"; die "no Debian apt source found to derive a deb-src entry from"; }
    install -m 0644 "$tmp" "$out"
    rm -f "$tmp"
    log "added deb-src entries in $out"
    apt-get update -qq
}

ensure_deb_src || true
src="$deps/src"
rm -rf "$src"
mkdir -p "$src"
log "fetching wolfSSL's Debian source package"
(cd "$src" && apt-get source -qq wolfssl >/dev/null 2>&1) ||
    die "could not fetch wolfSSL's Debian source package (apt-get source wolfssl).
       Fix the apt sources, or run with ZMESH_SYSTEM_WOLFSSL=1 to use the slow binary package."
dir=$(find "$src" -maxdepth 1 -mindepth 1 -type d -name 'wolfssl-*' | head -1)
[ -n "$dir" ] || die "wolfSSL source did not unpack"

log "building wolfSSL with x86-64 assembly (takes a few minutes)"
cd "$dir"
[ -x configure ] || ./autogen.sh >/dev/null
rm -rf "$prefix"
./configure -q --prefix="$prefix" "${wolfssl_flags[@]}" >"$deps/wolfssl-configure.log" 2>&1 ||
    die "wolfSSL configure failed: see $deps/wolfssl-configure.log"
grep -q 'WOLFSSL_AESNI' options.h 2>/dev/null || grep -q 'WOLFSSL_AESNI' wolfssl/options.h ||
    die "wolfSSL configured without AES-NI"
make -j"$(nproc)" >"$deps/wolfssl-build.log" 2>&1 || die "wolfSSL build failed: see $deps/wolfssl-build.log"
make install >>"$deps/wolfssl-build.log" 2>&1
echo "$want_stamp" >"$stamp"
log "wolfSSL installed in $prefix"
