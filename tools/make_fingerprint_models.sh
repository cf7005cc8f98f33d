#!/usr/bin/env bash
# Rebuild the shipped fingerprint models vae_small_v1 and vit_small_v1 and their comparison table:
#   tools/make_fingerprint_models.sh VENV OUTDIR FM_DATA      (make fingerprint-models)
# FM_DATA is the RVE set of `make fm-model` (3000 RVEs of 16^3, the first 500 labelled); every
# step resumes. About 20 min each on one thread, run side by side on 2 cores.
set -euo pipefail
VENV=${1:-.venv}
OUT=${2:-results/fingerprint_models}
DATA=${3:-results/fm_model/fm.h5}
P="$VENV/bin/polyfe2"
mkdir -p "$OUT"
[ -f "$DATA" ] || { echo "polyfe2: $DATA not found: run make fm-model first" >&2; exit 2; }
# both on the 2500 unlabelled RVEs (2000 for training, 500 held out)
OMP_NUM_THREADS=1 "$P" vae train "$DATA" --out "$OUT/vae" --epochs 80 --batch 32 --lr 1e-3 --max-minutes 24 \
  --no-progress &
OMP_NUM_THREADS=1 "$P" vit pretrain "$DATA" --out "$OUT/vit" --epochs 24 --batch 32 --lr 1e-3 --max-minutes 24 \
  --no-progress &
wait
"$VENV/bin/python" - "$OUT" <<'PY'
import sys
from pathlib import Path
from polyfe2.learn.vae import load_vae, save_vae
from polyfe2.learn.vit import load_vit, save_vit
out = Path(sys.argv[1])
v = load_vae(out / "vae" / "vae.pt")
save_vae(out / "vae_small_v1.pt", v.model, v.normalisation, dict(v.metadata, version="vae_small_v1"))
t = load_vit(out / "vit" / "vit.pt")
save_vit(out / "vit_small_v1.pt", t.model, dict(t.metadata, version="vit_small_v1"))
PY
# the three fingerprints on the same regression task and held-out RVEs
"$P" fingerprint-table "$DATA" --out "$OUT/table" \
  --weights "vae=$OUT/vae_small_v1.pt" "vit=$OUT/vit_small_v1.pt"
