#!/usr/bin/env bash
# The paper-scale check on a lent GPU machine that has PyTorch but not nmu's other packages and no
# network (results/paper/README.md). Run from the repository root there, after `make paper-carry` here,
# carrying .paper-data and .whl (and .whl-nb for `notebook`):
#
#   NMU_GIT_COMMIT=<commit> bash bench/device_check.sh check [paper_check.py options]   # --dataset cifar100
#   NMU_GIT_COMMIT=<commit> bash bench/device_check.sh notebook [NOTEBOOK]              # default quickstart
#
# `check` runs bench/paper_check.py into pc/ within BUDGET_S seconds (default 500); `notebook` runs one
# notebook by papermill under the PROFILE profile (default paper) into pc-nb/. Each is stopped 30 s after
# BUDGET_S at the latest and ends by packing its folder into $OUT/<mode>.tgz, so a run stopped by its
# budget still brings back what it finished. Both use the checkpoint cache /tmp/nmu: a notebook run right
# after a check (same machine) reuses its models.
set -uo pipefail
mode=${1:-}
case $mode in
  check | notebook) shift ;;
  *) echo "usage: bench/device_check.sh check|notebook [options]" >&2; exit 2 ;;
esac
: "${NMU_GIT_COMMIT:?set NMU_GIT_COMMIT to the commit being run (the machine gets no .git)}"
out=${OUT:-/tmp/device-out}
mkdir -p "$out"
wheels=(.whl/*.whl)
if [ "$mode" = notebook ]; then wheels+=(.whl-nb/*.whl); fi
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
  "${wheels[@]}" || exit
export PYTHONPATH=$PWD:/tmp/site NMU_DATA=/tmp/nmu NMU_CUDNN=${NMU_CUDNN:-benchmark} NMU_GIT_COMMIT
export PYTHONUNBUFFERED=1 NMU_PROGRESS=0
python3 -W "ignore:'nmu.archives' found in sys.modules:RuntimeWarning" -m nmu.archives unpack .paper-data \
  --root "$NMU_DATA" || exit
budget=${BUDGET_S:-500}
case $mode in
  check)
    mkdir -p pc
    timeout $((budget + 30)) python3 bench/paper_check.py --out pc --budget-s "$budget" "$@" 2>&1 | tee pc/log.txt
    status=${PIPESTATUS[0]}
    tar czf "$out/check.tgz" pc ;;
  notebook)
    name=${1:-quickstart}
    mkdir -p pc-nb
    timeout $((budget + 30)) python3 -m papermill "notebooks/$name.ipynb" "pc-nb/$name.ipynb" \
      -p profile "${PROFILE:-paper}" -p out_dir "pc-nb/$name" --log-level WARNING 2>&1 | tee pc-nb/log.txt
    status=${PIPESTATUS[0]}
    tar czf "$out/notebook.tgz" pc-nb ;;
esac
exit "$status"
