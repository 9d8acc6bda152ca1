#!/usr/bin/env bash
# Real-client interoperability suite: stock Debian clients (pppd + pptp-linux, later
# xl2tpd + strongSwan) in qemu guests against sluice-dataplane running on the host
# in a network namespace this script creates. Needs root, qemu-system-x86 and
# debootstrap (the guest image is built once and cached, see build-image.sh).
#
#   e2e/qemu/run.sh [SCENARIO...]     # default: every directory in e2e/qemu/scenarios
#
# Scenarios run SLUICE_E2E_JOBS at a time (default: 2 where the machine has 2 cores or
# more, else 1), longest first, each in its own lab (namespaces named after the worker's
# PID, so labs never share a device or an address space). Worker lines are prefixed
# [w1], [w2], ...
#
# A scenario is a directory scenarios/NN-name/ with
#   guest.sh       bash run as root in the guest (sources ./lib.sh = guest/lib.sh);
#                  exit 0 = pass. Header lines:
#                    "# lab-timeout: N"  its time limit (default 120 s);
#                    "# lab-guests: N"   boot N guests at once, all running guest.sh
#                                        (default 1, named "guest"; more are named guest1 ..
#                                        guestN, and each finds its name and index in
#                                        $GUEST_NAME / $GUEST_INDEX); every one must PASS;
#                    "# lab-nat: yes"    put the guests behind a NAT namespace (10.98.0.0/24,
#                                        masqueraded to 10.99.0.2; default no, see lib.sh).
#   manifest.yaml  the gateway's manifests for this scenario (or manifest.sh, run to print them)
#   host.sh        optional, sourced on the host in a background subshell while the
#                  guest runs (helpers from lib.sh: wait_mark, wait_marks, gw_sessions,
#                  metric, gateway_reload, guest_kill, hcheck ...; GUESTS holds the guests'
#                  names). A non-zero exit or a failed hcheck fails the scenario. If it
#                  kills guest NAME it must `touch "$SW/NAME-killed"` (with one guest:
#                  "$SW/guest-killed"), and then that guest's verdict is not required.
#   any other files are shipped to the guest next to guest.sh.
# Environment: SLUICE_BIN (default target/release/sluice-dataplane), SLUICE_E2E_CACHE,
# SLUICE_E2E_KEEP=1 keeps the logs (kept anyway when a scenario fails).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"

[ "$(id -u)" -eq 0 ] || die "needs root (network namespaces, tap devices)"
# A worker of a parallel run (see below) takes scenarios from a queue directory.
QUEUE=""
if [ "${1:-}" = --queue ]; then QUEUE=$2; shift 2; fi
if [ $# -gt 0 ]; then
  SCENARIOS=()
  for s in "$@"; do
    if [ -d "$s" ]; then SCENARIOS+=("$(cd "$s" && pwd)")
    else SCENARIOS+=("$(cd "$here/scenarios" && ls -d "$here"/scenarios/*"$s"* | head -n 1)"); fi
  done
else
  SCENARIOS=("$here"/scenarios/[0-9]*)
fi
[ -e "${SCENARIOS[0]}" ] || die "no scenarios found"

PASS=0; FAIL=0; RESULTS=()
trap 'lab_teardown' EXIT
trap 'exit 130' INT TERM

t0=$(date +%s)
lab_image
log "guest image: $IMAGE (ready after $(( $(date +%s) - t0 ))s)"

show() {  # FILE TITLE [LINES]
  [ -s "$1" ] || return 0
  printf '\n----- %s (%s)\n' "$2" "$1"
  if [ -n "${3:-}" ]; then tail -n "$3" "$1"; else cat "$1"; fi
}

# header FILE KEY DEFAULT: the value of the first "# lab-KEY: VALUE" line of FILE.
header() {
  local v; v=$(sed -n "s/^# lab-$2: *\([^ ]*\).*/\1/p" "$1" | head -n 1)
  echo "${v:-$3}"
}

run_scenario() {
  local dir=$1 name; name=$(basename "$dir")
  local sw="$LAB_WORK/$name" timeout nguests nat start rc verdict host_rc=0 why="" g i
  timeout=$(header "$dir/guest.sh" timeout 120)
  nguests=$(header "$dir/guest.sh" guests 1)
  nat=$(header "$dir/guest.sh" nat no)
  [[ "$timeout" =~ ^[0-9]+$ ]] || timeout=120
  [[ "$nguests" =~ ^[1-9]$ ]] || die "$name: lab-guests must be 1..9, not '$nguests'"
  start=$(date +%s)
  lab_up "$sw"
  case $nat in
    yes) lab_nat_up ;;
    no) ;;
    *) die "$name: lab-nat must be yes or no, not '$nat'" ;;
  esac
  lab_guest_names "$nguests"
  local manifest="$dir/manifest.yaml"
  if [ -f "$dir/manifest.sh" ]; then
    # A generated manifest (e.g. Secrets holding the fixture certificates).
    manifest="$LAB_WORK/$name.manifest.yaml"
    bash "$dir/manifest.sh" >"$manifest"
  fi
  if ! gateway_start "$manifest"; then
    why="gateway did not start"
  else
    guest_tar "$SW/scenario.tar" "$dir"
    local qemu_pids=() host_pid=""
    for i in "${!GUESTS[@]}"; do
      guest_boot "${GUESTS[$i]}" "$((i + 1))" "$SW/scenario.tar" "$timeout"
      qemu_pids+=("$GUEST_PID")
    done
    if [ -f "$dir/host.sh" ]; then
      # What the hook starts with lab_bg (e.g. an iperf3 server) ends with the hook.
      ( set -euo pipefail; own=${#LAB_PIDS[@]}
        trap 'for p in "${LAB_PIDS[@]:own}"; do kill "$p" 2>/dev/null || true; done' EXIT
        source "$dir/host.sh" ) >"$SW/host.log" 2>&1 &
      host_pid=$!
    fi
    local qemu_rcs=()
    for i in "${!qemu_pids[@]}"; do
      rc=0; wait "${qemu_pids[$i]}" || rc=$?
      qemu_rcs+=("$rc")
    done
    if [ -n "$host_pid" ]; then
      for _ in $(seq 1200); do kill -0 "$host_pid" 2>/dev/null || break; sleep 0.1; done
      kill "$host_pid" 2>/dev/null && { why="host hook timed out; "; }
      wait "$host_pid" || host_rc=$?
      [ "$host_rc" -eq 0 ] || why+="host hook exited $host_rc; "
      [ -s "$SW/host.failed" ] && why+="host checks failed: $(paste -sd, "$SW/host.failed"); "
    fi
    for i in "${!GUESTS[@]}"; do
      g=${GUESTS[$i]}
      verdict=$(guest_verdict "$g")
      if [ -f "$SW/$g-killed" ]; then :
      elif [ "$verdict" != PASS ]; then
        [ -z "$why" ] || [[ "$why" == *"; " ]] || why+="; "
        why+="$g verdict $verdict"
        [ "${qemu_rcs[$i]}" -eq 0 ] || why+=" (qemu exit ${qemu_rcs[$i]})"
      fi
    done
  fi
  local dur=$(( $(date +%s) - start ))
  if [ -z "$why" ]; then
    PASS=$((PASS + 1)); RESULTS+=("ok   $name (${dur}s)")
    printf '\033[32mok\033[0m   %-34s %4ss\n' "$name" "$dur"
  else
    FAIL=$((FAIL + 1)); RESULTS+=("FAIL $name (${dur}s): $why")
    printf '\033[31mFAIL\033[0m %-34s %4ss  %s\n' "$name" "$dur" "$why"
    for g in "${GUESTS[@]}"; do
      show "$SW/$g.serial.log" "$g serial console: scenario output, pppd debug logs"
      show "$SW/$g.qemu.log" "$g qemu"
    done
    show "$SW/host.log" "host hook"
    show "$SW/gateway.log" "gateway log (last 150 lines)" 150
  fi
  lab_teardown
}

# lab_timeout DIR: a scenario's time limit, to run the longest first.
lab_timeout() { header "$1/guest.sh" timeout 120; }

JOBS=${SLUICE_E2E_JOBS:-$(( $(nproc) >= 2 ? 2 : 1 ))}
[[ "$JOBS" =~ ^[1-9]$ ]] || die "SLUICE_E2E_JOBS must be 1..9, not '$JOBS'"
if [ -n "$QUEUE" ]; then
  # Worker: claim queued scenarios one at a time (a rename is atomic, so each is taken once).
  for f in "$QUEUE"/q-[0-9][0-9][0-9]; do
    mv "$f" "$f.$$" 2>/dev/null || continue
    run_scenario "$(cat "$f.$$")"
    printf '%s\n' "${RESULTS[-1]}" >>"$QUEUE/results"
  done
elif [ "$JOBS" -gt 1 ] && [ "${#SCENARIOS[@]}" -gt 1 ]; then
  queue="$LAB_WORK/queue"; mkdir -p "$queue"
  i=0
  while read -r _ dir; do
    i=$((i + 1)); printf '%s\n' "$dir" >"$queue/q-$(printf %03d "$i")"
  done < <(for d in "${SCENARIOS[@]}"; do echo "$(lab_timeout "$d") $d"; done | sort -k1,1nr -s)
  log "${#SCENARIOS[@]} scenarios, $JOBS at a time"
  pids=()
  for w in $(seq 1 "$JOBS"); do
    ( SLUICE_E2E_JOBS=1 "$here/run.sh" --queue "$queue" 2>&1 | sed -u "s/^/[w$w] /" ) &
    pids+=("$!")
  done
  trap 'kill "${pids[@]}" 2>/dev/null; exit 130' INT TERM
  for p in "${pids[@]}"; do wait "$p" || true; done
  mapfile -t RESULTS <"$queue/results" 2>/dev/null || RESULTS=()
  PASS=$(printf '%s\n' "${RESULTS[@]}" | grep -c '^ok' || true)
  FAIL=$(( ${#SCENARIOS[@]} - PASS ))
  [ "${#RESULTS[@]}" -eq "${#SCENARIOS[@]}" ] || RESULTS+=("FAIL $(( ${#SCENARIOS[@]} - ${#RESULTS[@]} )) scenario(s) without a result (a worker died)")
else
  for dir in "${SCENARIOS[@]}"; do run_scenario "$dir"; done
fi

printf '\n'
for r in "${RESULTS[@]}"; do echo "$r"; done
if [ "$FAIL" -eq 0 ] && [ -z "${SLUICE_E2E_KEEP:-}" ]; then rm -rf "$LAB_WORK"
else log "logs in $LAB_WORK"; fi
log "total $(( $(date +%s) - t0 ))s"
echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
