#!/usr/bin/env bash
# paradiff serve under mpirun, as a user runs it:
# 1. two ranks with Ulysses 2 serve a POST whose PNG must equal, bit for bit, `paradiff generate`
#    on two ranks with the same settings, and both ranks must have sent bytes (the run was split);
# 2. two ranks as two data-parallel replicas serve three concurrent requests (n=2, seeds 1-3),
#    each equal to `paradiff generate` with its seed, with both replicas running images;
# after each, SIGTERM must end every rank promptly with status 0. No process is left behind,
# whatever happens.
# Usage: serve_mpi.sh <paradiff binary> <pipeline folder> <scratch folder>
set -euo pipefail
bin=$1
model=$2
tmp=$3
here=$(cd "$(dirname "$0")" && pwd)
run=$here/../../scripts/paradiff-run
mkdir -p "$tmp"
log=$tmp/serve.log
rm -f "$log" "$tmp/served.png" "$tmp/generated.png"

fail() {
  echo "serve_mpi.sh: $*" >&2
  echo "--- server log:" >&2
  cat "$log" >&2 || true
  exit 1
}

# The reference: the CLI on two ranks.
PARADIFF_BIN=$bin "$run" -n 2 generate --ulysses-degree 2 --model "$model" \
  --prompt "a red circle" --height 32 --width 48 --num-inference-steps 2 \
  --max-sequence-length 8 --seed 7 --output "$tmp/generated.png" --quiet

server=""
ranks=""
cleanup() {
  # Whatever is still running of this test's job: mpirun and its ranks, by their ids.
  for pid in $server ${launcher:-} $ranks; do kill -KILL "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

# Starts `paradiff serve` on two ranks with the given flags; sets server, ranks and url.
start_server() {
  PARADIFF_BIN=$bin "$run" -n 2 serve --model "$model" --port 0 --max-steps 8 "$@" >"$log" 2>&1 &
  server=$!
  url=""
  for _ in $(seq 1200); do
    url=$(grep -o 'listening on http://[^ ]*' "$log" | head -1 | cut -d' ' -f3) || true
    [[ -n "$url" ]] && break
    kill -0 "$server" 2>/dev/null || fail "the server exited before listening"
    sleep 0.05
  done
  [[ -n "$url" ]] || fail "no 'listening on' line within 60 s"
  # paradiff-run runs mpirun as one side of a pipeline (the other filters its stderr): the ranks
  # are mpirun's children.
  launcher=$(pgrep -P "$server" -x mpirun | head -1) || true
  ranks=$(pgrep -P "${launcher:-$server}" | tr '\n' ' ')
  echo "server at $url, mpirun ${launcher:-$server}, ranks: $ranks"
  [[ $(wc -w <<<"$ranks") -eq 2 ]] || fail "expected 2 rank processes, found '$ranks'"
}

# SIGTERM to every process of the job (as a scheduler or a container stop sends it; mpirun
# itself, signalled, forwards it but then reports failure): each rank must finish cleanly.
stop_server() {
  # shellcheck disable=SC2086
  kill -TERM $ranks
  local status=""
  for _ in $(seq 400); do
    if ! kill -0 "$server" 2>/dev/null; then
      wait "$server" && status=0 || status=$?
      break
    fi
    sleep 0.05
  done
  [[ -n "$status" ]] || fail "still running 20 s after SIGTERM"
  [[ $status -eq 0 ]] || fail "exit status $status after SIGTERM"
  for pid in $ranks; do
    ! kill -0 "$pid" 2>/dev/null || fail "rank process $pid still running"
  done
  grep -q "paradiff serve: stopped" "$log" || fail "no clean stop in the log"
  echo "SIGTERM: every rank exited with status 0"
  server=""  # gone: the exit trap must not signal recycled ids
  ranks=""
}

start_server --ulysses-degree 2
python3 - "$url" "$tmp/served.png" <<'PY'
import base64, json, sys, urllib.request, urllib.error
url, out = sys.argv[1], sys.argv[2]
body = {"prompt": "a red circle", "size": "48x32", "num_inference_steps": 2,
        "max_sequence_length": 8, "seed": 7, "response_format": "b64_json"}
req = urllib.request.Request(url + "v1/images/generations", json.dumps(body).encode(),
                             {"Content-Type": "application/json"})
answer = json.load(urllib.request.urlopen(req, timeout=120))
open(out, "wb").write(base64.b64decode(answer["data"][0]["b64_json"]))
# A malformed request is refused with 400 and the server goes on.
try:
    urllib.request.urlopen(urllib.request.Request(url + "v1/images/generations", b"{",
                                                  {"Content-Type": "application/json"}))
    sys.exit("a malformed request was accepted")
except urllib.error.HTTPError as e:
    assert e.code == 400, e.code
metrics = urllib.request.urlopen(url + "metrics", timeout=30).read().decode()
assert "paradiff_images_generated_total 1\n" in metrics, metrics
print("served one image; 400 for a malformed request")
PY
cmp "$tmp/served.png" "$tmp/generated.png" || fail "the served PNG differs from paradiff generate's"
echo "served PNG equals paradiff generate's (2 ranks, ulysses 2), bit for bit"
for r in 0 1; do
  grep -Eq "\[rank $r\] info: serve: batch of 1 prompt.*ran 1 image.*sent [1-9][0-9]* bytes" \
    "$log" || fail "rank $r did not report its share of the Ulysses run"
done
echo "both ranks took part in the Ulysses run (bytes sent)"
stop_server

# Two replicas: three concurrent requests, each equal to its own single-process generate.
for seed in 1 2 3; do
  "$bin" generate --model "$model" --prompt "a blue square" --num-images-per-prompt 2 \
    --height 32 --width 48 --num-inference-steps 2 --max-sequence-length 8 --seed $seed \
    --output "$tmp/dp$seed.png" --quiet
done
start_server
python3 - "$url" "$tmp" <<'PY'
import base64, json, sys, threading, urllib.request
url, tmp = sys.argv[1], sys.argv[2]
def ask(seed, answers):
    body = {"prompt": "a blue square", "n": 2, "size": "48x32", "num_inference_steps": 2,
            "max_sequence_length": 8, "seed": seed}
    req = urllib.request.Request(url + "v1/images/generations", json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    answers[seed] = json.load(urllib.request.urlopen(req, timeout=120))
answers = {}
threads = [threading.Thread(target=ask, args=(s, answers)) for s in (1, 2, 3)]
for t in threads: t.start()
for t in threads: t.join()
for seed in (1, 2, 3):
    for k in range(2):
        got = base64.b64decode(answers[seed]["data"][k]["b64_json"])
        want = open(f"{tmp}/dp{seed}_0_{k}.png", "rb").read()
        assert got == want, f"seed {seed} image {k} differs from paradiff generate's"
print("two replicas: 3 concurrent requests, each equal to paradiff generate, bit for bit")
PY
for r in 0 1; do
  grep -Eq "\[rank $r\] info: serve: batch of .*group ran [1-9][0-9]* image" "$log" ||
    fail "rank $r (replica $r) ran no image"
done
echo "both replicas ran images"
stop_server
