# shellcheck shell=bash
# shellcheck disable=SC2154,SC2034 # work, results, complete: the sourcing script's
# lib.sh — what the benchmark scripts (run.sh, ztunnel.sh) share: the
# results file, and the processes they start and must stop whatever happens.
#
# The sourcing script sets `work` (its scratch folder) and `results` (the
# key=value file its report script reads) and defines log(); it calls
# stop_started from its EXIT trap.

complete=true
declare -A pgid=() # name -> process-group id of what we started

record() { printf '%s=%s\n' "$1" "$2" >>"$results"; }

# A figure we could not get: say why on stderr and in the report, and fail
# at the end.
incomplete() {
    log "$*"
    record "note.$(date +%s%N)" "$*"
    complete=false
}

# start NAME CMD...: CMD in a new session (its own process group), output in
# $work/NAME.log, input from $start_input (/dev/null unless set). Without
# job control a background child is never a group leader, so setsid(1) does
# not fork and $! is the group id (`ip netns exec` execs in place, so a
# proxy started through it keeps that pid).
start() {
    local name=$1
    shift
    setsid "$@" >"$work/$name.log" 2>&1 <"${start_input:-/dev/null}" &
    pgid[$name]=$!
}

# By pid, not group: right after the fork the child may not have called
# setsid() yet, and its group would look gone.
alive() { kill -0 "${pgid[$1]}" 2>/dev/null; }

# Stops what we started, by group id only: TERM, up to 3 s of grace, KILL.
stop_started() {
    local g _ any
    for g in "${pgid[@]}"; do kill -TERM -- "-$g" 2>/dev/null || true; done
    for _ in $(seq 30); do
        any=0
        for g in "${pgid[@]}"; do kill -0 -- "-$g" 2>/dev/null && any=1; done
        [ $any = 0 ] && break
        sleep 0.1
    done
    for g in "${pgid[@]}"; do kill -KILL -- "-$g" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
