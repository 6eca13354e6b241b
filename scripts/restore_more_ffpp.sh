#!/bin/bash
# Writes the 36 labelled FaceForensics++ c23 clips of cre_models/training/ffpp_more.tsv into
# OUT_DIR (the folder ../shared/data/external/restore.sh wrote), checking every sha256, and
# writes OUT_DIR/labels_more.tsv for `cre train-videos --extra-labelled`.
#
# They come from the same repository as most of the shared manifest's clips
# (MoSahil147/DeepFake-datasets), which holds 44 FF++ clips that manifest does not list; 36 of
# them are in the fetched snapshot (9 people: real clips 183 253 469 481 585 599 672 720 878,
# and their Deepfakes, Face2Face and FaceSwap fakes). None of those people is in the shared
# manifest, so they can only join training; `cre train-videos` checks that again.
# First bring the repository with the search tool's fetch (github:MoSahil147/DeepFake-datasets)
# and set MIRRORS to the folder before OWNER+NAME, as for restore.sh. Never needed at run time.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
manifest=$here/../cre_models/training/ffpp_more.tsv
out=${1:?usage: MIRRORS=... restore_more_ffpp.sh OUT_DIR}
mirrors=${MIRRORS:?set MIRRORS to the folder that holds the fetched OWNER+NAME/repo snapshots}
tail -n +2 "$manifest" | while IFS=$'\t' read -r file label method original repo path sha bytes; do
  git_dir=$mirrors/${repo/\//+}/repo
  [[ -d $git_dir ]] || { echo "fetch github:$repo first" >&2; exit 1; }
  mkdir -p "$out/$(dirname "$file")"
  [[ -f $out/$file ]] || git --git-dir "$git_dir" show "HEAD:$path" > "$out/$file"
  echo "$sha  $out/$file"
done | sha256sum -c --quiet
cp "$manifest" "$out/labels_more.tsv"
echo "$(tail -n +2 "$manifest" | wc -l) files ready in $out (labels: $out/labels_more.tsv)"
