#!/usr/bin/env bash
# The paper-scale check on a lent GPU machine that has PyTorch but not nmu's other packages and no
# network (results/paper/README.md). Run from the repository root there, after `make paper-carry` here,
# carrying .paper-data and .whl (and .whl-nb for `notebook`):
#
#   NMU_GIT_COMMIT=<commit> bash bench/gpu/device_check.sh check [paper_check.py options]   # --seed 1, --dataset cifar100
#   NMU_GIT_COMMIT=<commit> bash bench/gpu/device_check.sh notebook [NOTEBOOK]              # default quickstart
#
# `check` runs bench/paper_check.py into pc/ (emptied first); `notebook` runs one notebook by papermill
# under the PROFILE profile (default paper) into pc-nb/. BUDGET_S (default 500) counts from this script's
# start, the wheels' install and the unpacking included: Python gets what is left and is stopped 30 s
# after it at the latest. Either mode ends by packing its folder, and the job logs of any failed job,
# into $OUT/<mode>.tgz, so a run stopped by its budget still brings back what it finished. Exit status:
# Python's; 3 when the budget stopped it ("stopped at budget"); 2 for a call or carry mistake, before
# anything ran. Both use the checkpoint cache /tmp/nmu, offline (NMU_OFFLINE=1): a notebook run right
# after a check (same machine) reuses its models.
set -uo pipefail
mode=${1:-}
case $mode in
  check | notebook) shift ;;
  *) echo "usage: bench/gpu/device_check.sh check|notebook [options]" >&2; exit 2 ;;
esac
if [ -z "${NMU_GIT_COMMIT:-}" ]; then
  echo "bench/gpu/device_check.sh: set NMU_GIT_COMMIT to the commit being run (the machine gets no .git)" >&2
  exit 2
fi
dataset=cifar10
for ((i = 1; i <= $#; i++)); do
  if [ "${!i}" = --dataset ]; then j=$((i + 1)); dataset=${!j:-}; fi
done
archive=.paper-data/$dataset-jpeg.tar.xz
missing=()
[ -f "$archive" ] || missing+=("$archive")
compgen -G ".whl/*.whl" >/dev/null || missing+=(".whl/ (submitit's wheel)")
if [ "$mode" = notebook ]; then compgen -G ".whl-nb/*.whl" >/dev/null || missing+=(".whl-nb/ (papermill's wheels)"); fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "bench/gpu/device_check.sh: not carried: ${missing[*]}; run \`make paper-carry\` and carry them" >&2
  exit 2
fi
out=${OUT:-/tmp/device-out}
mkdir -p "$out"
wheels=(.whl/*.whl)
if [ "$mode" = notebook ]; then wheels+=(.whl-nb/*.whl); fi
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
  "${wheels[@]}" || exit
export PYTHONPATH=$PWD:/tmp/site NMU_DATA=/tmp/nmu NMU_CUDNN=${NMU_CUDNN:-benchmark} NMU_GIT_COMMIT
export PYTHONUNBUFFERED=1 NMU_PROGRESS=0 NMU_OFFLINE=1
python3 -W "ignore:'nmu.archives' found in sys.modules:RuntimeWarning" -m nmu.archives unpack .paper-data \
  --root "$NMU_DATA" || exit
budget=$(( ${BUDGET_S:-500} - SECONDS ))
echo "device_check: ${SECONDS} s of install and unpacking; ${budget} s left for Python" >&2
case $mode in
  check) folder=pc ;;
  notebook) folder=pc-nb ;;
esac
rm -rf "$folder" && mkdir -p "$folder"
case $mode in
  check)
    timeout $((budget + 30)) python3 bench/paper_check.py --out pc --budget-s "$budget" "$@" 2>&1 | tee pc/log.txt
    status=${PIPESTATUS[0]} ;;
  notebook)
    name=${1:-quickstart}
    timeout $((budget + 30)) python3 -m papermill "notebooks/$name.ipynb" "pc-nb/$name.ipynb" \
      -p profile "${PROFILE:-paper}" -p out_dir "pc-nb/$name" --log-level WARNING 2>&1 | tee pc-nb/log.txt
    status=${PIPESTATUS[0]} ;;
esac
if [ -d "$NMU_DATA/jobs" ]; then  # the side-by-side jobs' logs (tracebacks), not their results
  (cd "$NMU_DATA" && find jobs -name '*_log.*' -print0 | xargs -0r cp --parents -t "$OLDPWD/$folder")
fi
tar czf "$out/$mode.tgz" "$folder"
if [ "$status" = 124 ] || [ "$status" = 137 ]; then
  echo "device_check: stopped at budget (${BUDGET_S:-500} s from the script's start); $out/$mode.tgz holds what finished" >&2
  exit 3
fi
exit "$status"
