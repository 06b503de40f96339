# scripts/lib/audit-state.sh — save the kernel's audit settings and rules, and put them back.
# Sourced by scripts that change them (the tests, bench-agent), so the machine is left as found.
#
#   audit_state_save DIR      writes DIR/audit-status (auditctl -s) and DIR/audit-rules (auditctl -l)
#   audit_state_restore DIR   reloads the saved rules if they differ, then backlog_limit,
#                             backlog_wait_time, rate_limit, failure and the enabled flag

audit_state_save() {
    auditctl -s > "$1/audit-status"
    auditctl -l > "$1/audit-rules" 2>/dev/null || true
}

audit_state_restore() {
    local dir=$1 rule
    if ! diff -q <(auditctl -l 2>/dev/null) "$dir/audit-rules" >/dev/null 2>&1; then
        auditctl -D >/dev/null 2>&1 || true
        if ! grep -q '^No rules' "$dir/audit-rules"; then
            while IFS= read -r rule; do
                # shellcheck disable=SC2086
                auditctl $rule >/dev/null 2>&1 || echo "audit-state: could not restore rule: $rule" >&2
            done < "$dir/audit-rules"
        fi
    fi
    _audit_value() { awk -v key="$1" '$1 == key { print $2 }' "$dir/audit-status"; }
    auditctl -b "$(_audit_value backlog_limit)" >/dev/null 2>&1 || true
    auditctl --backlog_wait_time "$(_audit_value backlog_wait_time)" >/dev/null 2>&1 || true
    auditctl -r "$(_audit_value rate_limit)" >/dev/null 2>&1 || true
    auditctl -f "$(_audit_value failure)" >/dev/null 2>&1 || true
    auditctl -e "$(_audit_value enabled)" >/dev/null 2>&1 || true
}
