#!/usr/bin/env bash
# The main job: text to image with the bundled FLUX-architecture pipeline, split across 2
# processes with Ulysses attention. Writes out/demo.png and prints a summary.
#
# Uses models/tiny-flux-shapes (the bundled model, trained on coloured shapes). Should that folder
# be missing (a partial checkout), falls back to the random tiny pipeline of the tests (the picture
# is then noise: the run still shows the whole pipeline working across processes).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$root/out"
model=$root/models/tiny-flux-shapes
prompt=${DEMO_PROMPT:-"a large red circle at the top left on a white background"}
args=(--height 256 --width 256 --num-inference-steps 28 --max-sequence-length 32 --seed 0)
if [[ ! -f "$model/model_index.json" ]]; then
  model=$root/tests/fixtures/flux_pipeline/tiny
  args=(--height 128 --width 128 --num-inference-steps 8 --max-sequence-length 16 --seed 0)
  echo "demo: models/tiny-flux-shapes is missing; using the random test pipeline" \
       "(the image will be noise)"
fi
echo "demo: $root/scripts/paradiff-run -n 2 generate --ulysses-degree 2 --model $model" \
     "--prompt \"$prompt\" ${args[*]} --output out/demo.png"
PARADIFF_THREADS=${PARADIFF_THREADS:-1} "$root/scripts/paradiff-run" -n 2 generate \
  --ulysses-degree 2 --model "$model" --prompt "$prompt" "${args[@]}" \
  --output "$root/out/demo.png"
echo "demo: wrote $root/out/demo.png"
