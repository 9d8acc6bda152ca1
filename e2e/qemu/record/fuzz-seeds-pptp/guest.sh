# Not a test: scenario 01-mschapv2-mppe128 with room for a slow TCG boot, for e2e/qemu/record/capture.sh
# (fuzz seed corpora, docs/fuzzing.md).
# lab-timeout: 900
source ./scenario.sh
