# shellcheck shell=bash
# wait_dockerd, for the scripts that start a dockerd (start-dockerd.sh, test-e2e.sh); source it, do not run it.

# wait_dockerd TAG CLIENT PID NAME LOG: wait up to 60 s until CLIENT gets an answer from the dockerd that
# PID runs. If it exits or stays silent, print why (prefixed TAG) with the last lines of LOG and return 1.
wait_dockerd() {
  local tag=$1 client=$2 pid=$3 name=$4 log=$5 i
  for ((i = 0; i < 120; i++)); do
    if "$client" info >/dev/null 2>&1; then
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "$tag: $name exited; last lines of $log:" >&2
      tail -n 30 "$log" >&2
      return 1
    fi
    sleep 0.5
  done
  echo "$tag: $name did not answer within 60s; last lines of $log:" >&2
  tail -n 30 "$log" >&2
  return 1
}
