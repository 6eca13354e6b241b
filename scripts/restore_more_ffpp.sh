#!/bin/bash
# Writes the labelled FaceForensics++ c23 clips of a manifest into OUT_DIR (the folder
# ../shared/data/external/restore.sh wrote), checking every sha256, and writes its labels file
# beside them. Never needed at run time.
#
#   MIRRORS=... scripts/restore_more_ffpp.sh OUT_DIR [MANIFEST]
#
# MANIFEST (default cre_models/training/ffpp_more.tsv) -> OUT_DIR/labels_<name>.tsv:
# * ffpp_more.tsv -> labels_more.tsv (for `cre train-videos --extra-labelled` or as held-out
#   people): 36 clips from MoSahil147/DeepFake-datasets, the repository most of the shared
#   manifest's clips come from, which holds 44 FF++ clips that manifest does not list; 36 of them
#   are in the fetched snapshot (9 people: real clips 183 253 469 481 585 599 672 720 878, and
#   their Deepfakes, Face2Face and FaceSwap fakes). None of those people is in the shared
#   manifest, so they can only join training; `cre train-videos` checks that again.
# * ffpp_unseen.tsv -> labels_unseen.tsv (evaluation only): the same 9 real clips and 18 fakes of
#   those people by two methods no checkpoint here trained on, NeuralTextures and FaceShifter
#   (9 each), from an older commit of hyunkeup/DeepFake-Video-Detection (its newest one deleted
#   them; the `commit` column names the one to read).
# First bring every repository the manifest names with the search tool's fetch
# (github:OWNER/NAME) and set MIRRORS to the folder before OWNER+NAME, as for restore.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: MIRRORS=... restore_more_ffpp.sh OUT_DIR [MANIFEST]}
manifest=${2:-$here/../cre_models/training/ffpp_more.tsv}
mirrors=${MIRRORS:?set MIRRORS to the folder that holds the fetched OWNER+NAME/repo snapshots}
[[ -f $manifest ]] || { echo "no manifest $manifest" >&2; exit 1; }
name=$(basename "$manifest" .tsv)
labels=$out/labels_${name#ffpp_}.tsv
tail -n +2 "$manifest" | while IFS=$'\t' read -r file label method original repo path sha bytes commit; do
  git_dir=$mirrors/${repo/\//+}/repo
  [[ -d $git_dir ]] || { echo "fetch github:$repo first" >&2; exit 1; }
  mkdir -p "$out/$(dirname "$file")"
  if [[ ! -f $out/$file ]]; then  # written whole or not at all, so a rerun retries it
    git --git-dir "$git_dir" show "${commit:-HEAD}:$path" > "$out/$file.part"
    mv "$out/$file.part" "$out/$file"
  fi
  echo "$sha  $out/$file"
done | sha256sum -c --quiet
cp "$manifest" "$labels"
echo "$(tail -n +2 "$manifest" | wc -l) files ready in $out (labels: $labels)"
