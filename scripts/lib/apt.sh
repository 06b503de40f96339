# shellcheck shell=bash
# scripts/lib/apt.sh — shared helper for Herdwatch scripts: idempotent Debian
# package installs.
#
# Usage (from another script):
#   . "$(dirname "$0")/lib/apt.sh"
#   apt_ensure auditd libauparse-dev time
#
# apt_ensure installs only the packages that are not already installed. It runs
# `apt-get update` at most once per shell (and only if something is missing),
# then `apt-get install -y --no-install-recommends PKG...`. It waits for the
# dpkg lock if another apt/dpkg is running instead of failing. Needs root (or
# sudo). Set APT_QUIET=0 to see apt's full output.

_HW_APT_UPDATED=${_HW_APT_UPDATED:-0}

# apt_is_installed PKG — true if dpkg reports PKG as fully installed.
apt_is_installed() {
    local status
    status=$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null) || return 1
    [ "$status" = "installed" ]
}

apt_ensure() {
    local missing=() pkg
    for pkg in "$@"; do
        apt_is_installed "$pkg" || missing+=("$pkg")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0

    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then
            sudo=(sudo)
        else
            echo "apt.sh: need root to install: ${missing[*]}" >&2
            return 1
        fi
    fi
    local quiet=(-qq)
    [ "${APT_QUIET:-1}" = "0" ] && quiet=()
    local lock=(-o DPkg::Lock::Timeout=600)

    echo "apt.sh: installing ${missing[*]}" >&2
    if [ "$_HW_APT_UPDATED" != "1" ]; then
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
            apt-get "${quiet[@]}" "${lock[@]}" update >&2
        _HW_APT_UPDATED=1
    fi
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get "${quiet[@]}" "${lock[@]}" install -y --no-install-recommends \
        "${missing[@]}" >&2
}
