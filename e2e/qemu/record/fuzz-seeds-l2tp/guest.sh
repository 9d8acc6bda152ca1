# Not a test: scenario 10-l2tp-xl2tpd with room for a slow TCG boot, for e2e/qemu/record/capture.sh
# (fuzz seed corpora, docs/fuzzing.md).
# lab-timeout: 900
source ./scenario.sh
