#!/usr/bin/env bash
# The paper-scale check on a lent GPU machine that has PyTorch but not nmu's other packages and no
# network (results/paper/README.md). Run from the repository root there, after `make paper-carry` here,
# carrying .paper-data and .whl (and .whl-nb for `notebook` and `figures`):
#
#   NMU_GIT_COMMIT=<commit> bash bench/gpu/device_check.sh check [paper_check.py options]   # --seed 1, --dataset cifar100
#   NMU_GIT_COMMIT=<commit> bash bench/gpu/device_check.sh notebook [NOTEBOOK]              # default quickstart
#   NMU_GIT_COMMIT=<commit> bash bench/gpu/device_check.sh figures                          # what `make figures` runs
#
# `check` runs bench/paper_check.py into pc/ (emptied first, unless --stages leaves out stage 0: then
# it adds to the earlier call's pc/ on this machine, e.g. `check --seed 1 --stages 3 --methods ga` after a
# budget stopped stage 3 before GA, as paper_check.py's log says); `notebook` runs one notebook by papermill
# under the PROFILE profile (default paper) into pc-nb/; `figures` runs every notebook `make figures`
# runs (FIGURES below, in make's order), as its papermill recipe does (EXECUTOR, default inline, to the
# notebooks that declare an executor; nmu.scrub; <name>.part.ipynb renamed <name>.ipynb), under the
# PROFILE profile (default quick) into results/<profile>-gpu/ (emptied first), with each notebook's wall
# seconds in its timings.md; it stops at the first notebook that fails, as make does. BUDGET_S (default
# 500) counts from this script's start, the wheels' install and the unpacking included: Python gets
# what is left and is stopped 30 s after it at the latest (`figures`: each notebook gets what is left
# and is stopped when the budget ends; none starts after it). Every mode ends by packing its folder,
# and the job logs of any failed job, into $OUT/<mode>.tgz, so a run stopped by its budget still brings
# back what it finished. Exit status: Python's; 3 when the budget stopped it ("stopped at budget"); 2
# for a call or carry mistake, before anything ran. All use the checkpoint cache /tmp/nmu, offline
# (NMU_OFFLINE=1): a notebook run right after a check (same machine) reuses its models.
set -uo pipefail
FIGURES=(sample_wise hardest class_wise robustness claims efficiency hybrid_gallery over_forgetting quickstart)
mode=${1:-}
case $mode in
  check | notebook | figures) shift ;;
  *) echo "usage: bench/gpu/device_check.sh check|notebook|figures [options]" >&2; exit 2 ;;
esac
if [ -z "${NMU_GIT_COMMIT:-}" ]; then
  echo "bench/gpu/device_check.sh: set NMU_GIT_COMMIT to the commit being run (the machine gets no .git)" >&2
  exit 2
fi
if [ "$mode" = figures ]; then
  profile=${PROFILE:-quick}
  case $profile in  # the JPEG archives of the data sets the profile reads (nmu.profiles: Profile.datasets)
    smoke) archives=() ;;
    quick) archives=(cifar10-jpeg.tar.xz cifar100-jpeg.tar.xz) ;;
    paper) archives=(cifar10-jpeg.tar.xz cifar100-jpeg.tar.xz tiny-imagenet-200.tar.xz) ;;
    *) echo "bench/gpu/device_check.sh: unknown PROFILE=$profile (smoke, quick or paper)" >&2; exit 2 ;;
  esac
else
  dataset=cifar10 stages=0123
  for ((i = 1; i <= $#; i++)); do
    j=$((i + 1))
    case ${!i} in
      --dataset) dataset=${!j:-} ;;
      --dataset=*) dataset=${!i#--dataset=} ;;
      --stages) stages=${!j:-} ;;
      --stages=*) stages=${!i#--stages=} ;;
    esac
  done
  archives=("$dataset-jpeg.tar.xz")
fi
missing=()
for a in "${archives[@]}"; do [ -f ".paper-data/$a" ] || missing+=(".paper-data/$a"); done
compgen -G ".whl/*.whl" >/dev/null || missing+=(".whl/ (submitit's wheel)")
if [ "$mode" != check ]; then compgen -G ".whl-nb/*.whl" >/dev/null || missing+=(".whl-nb/ (papermill's wheels)"); fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "bench/gpu/device_check.sh: not carried: ${missing[*]}; run \`make paper-carry\` and carry them" >&2
  exit 2
fi
out=${OUT:-/tmp/device-out}
mkdir -p "$out"
wheels=(.whl/*.whl)
if [ "$mode" != check ]; then wheels+=(.whl-nb/*.whl); fi
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
  "${wheels[@]}" || exit
export PYTHONPATH=$PWD:/tmp/site NMU_DATA=/tmp/nmu NMU_CUDNN=${NMU_CUDNN:-benchmark} NMU_GIT_COMMIT
export PYTHONUNBUFFERED=1 NMU_PROGRESS=0 NMU_OFFLINE=1
if [ "$mode" != figures ]; then
  python3 -W "ignore:'nmu.archives' found in sys.modules:RuntimeWarning" -m nmu.archives unpack .paper-data \
    --root "$NMU_DATA" || exit
elif [ ${#archives[@]} -gt 0 ]; then
  python3 -W "ignore:'nmu.archives' found in sys.modules:RuntimeWarning" -m nmu.archives unpack .paper-data \
    --root "$NMU_DATA" --only "${archives[@]}" || exit
fi
budget=$(( ${BUDGET_S:-500} - SECONDS ))
echo "device_check: ${SECONDS} s of install and unpacking; ${budget} s left for Python" >&2
case $mode in
  check) folder=pc ;;
  notebook) folder=pc-nb ;;
  figures) folder=results/$profile-gpu ;;
esac
if [ "$mode" != check ] || [[ $stages == *0* ]]; then rm -rf "$folder"; fi  # a check without stage 0 adds to pc/
mkdir -p "$folder"
case $mode in
  check)
    timeout $((budget + 30)) python3 bench/paper_check.py --out pc --budget-s "$budget" "$@" 2>&1 | tee -a pc/log.txt
    status=${PIPESTATUS[0]} ;;
  notebook)
    name=${1:-quickstart}
    timeout $((budget + 30)) python3 -m papermill "notebooks/$name.ipynb" "pc-nb/$name.ipynb" \
      -p profile "${PROFILE:-paper}" -p out_dir "pc-nb/$name" --log-level WARNING 2>&1 | tee pc-nb/log.txt
    status=${PIPESTATUS[0]} ;;
  figures)
    status=0 total=0
    printf '| notebook | wall s | exit status |\n|---|---|---|\n' >"$folder/timings.md"
    for name in "${FIGURES[@]}"; do
      left=$(( ${BUDGET_S:-500} - SECONDS ))
      if [ "$left" -le 0 ]; then echo "device_check: no time left for $name" >&2; status=124; break; fi
      executor=()
      if grep -q '"executor' "notebooks/$name.ipynb"; then executor=(-y "executor: ${EXECUTOR:-inline}"); fi
      echo "device_check: $name ($profile profile), ${left} s left" | tee -a "$folder/log.txt" >&2
      start=$EPOCHREALTIME
      timeout -k 10 "$left" python3 -m papermill "notebooks/$name.ipynb" "$folder/$name.part.ipynb" \
        -p profile "$profile" -p out_dir "$folder/$name" "${executor[@]}" --log-level WARNING 2>&1 \
        | tee -a "$folder/log.txt"
      status=${PIPESTATUS[0]}
      wall=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
      total=$(awk -v a="$total" -v b="$wall" 'BEGIN { printf "%.1f", a + b }')
      echo "| $name | $wall | $status |" >>"$folder/timings.md"
      if [ "$status" = 0 ]; then
        python3 -m nmu.scrub "$folder/$name.part.ipynb" && mv "$folder/$name.part.ipynb" "$folder/$name.ipynb"
        status=$?
      fi
      if [ "$status" != 0 ]; then break; fi
    done
    echo "| all | $total | |" >>"$folder/timings.md"
    cat "$folder/timings.md" >&2 ;;
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
