# Helpers shared by the end-to-end suites (sourced; callers define `log`).

# wait_for FILE PATTERN [SECONDS]: wait until a line matches (extended regex).
wait_for() {
  local f=$1 pat=$2 t=${3:-30} i=0
  while [ $i -lt $((t * 10)) ]; do
    grep -qE "$pat" "$f" 2>/dev/null && return 0
    sleep 0.1; i=$((i + 1))
  done
  log "timed out after ${t}s waiting for /$pat/ in $f"
  return 1
}
