#!/usr/bin/env bash
# Rebuild the shipped foundation-model encoders fm_small_v1 (stiffness and ODMN heads):
#   tools/make_fm_model.sh VENV OUTDIR      (make fm-model)
# Every step resumes: data chunks and training epochs already done are kept.
set -euo pipefail
VENV=${1:-.venv}
OUT=${2:-results/fm_model}
P="$VENV/bin/polyfe2"
mkdir -p "$OUT"
# 3000 RVEs (16^3, 40 grains) over the texture hull; the first 500 with DNS stiffness for 3 triplets
"$P" fm data --out "$OUT/fm.h5" --n-rve 3000 --labelled 500 --cells 16 --grains 40 --triplets 3 --chunk 50 \
  --no-progress
# the MAE on the 2500 unlabelled RVEs (about 25 min on one thread)
OMP_NUM_THREADS=1 "$P" fm pretrain "$OUT/fm.h5" --out "$OUT/pre" --epochs 150 --batch 32 --lr 1.5e-3 --no-progress
for task in stiffness odmn; do
  epochs=$([ "$task" = stiffness ] && echo 60 || echo 40)
  OMP_NUM_THREADS=1 "$P" fm finetune "$OUT/fm.h5" --task "$task" --depth 4 --encoder "$OUT/pre/encoder.pt" \
    --out "$OUT/$task" --epochs "$epochs" --batch 16 --lr 3e-4 --no-progress
  OMP_NUM_THREADS=1 "$P" fm finetune "$OUT/fm.h5" --task "$task" --depth 4 --out "$OUT/${task}_scratch" \
    --epochs "$epochs" --batch 16 --lr 3e-4 --no-progress
done
# the shipped files: encoder (without the decoder) + head, normalisation and provenance
"$VENV/bin/python" - "$OUT" <<'PY'
import sys
from pathlib import Path
from polyfe2.learn.mae import load_encoder, save_encoder
out = Path(sys.argv[1])
for task in ("stiffness", "odmn"):
    e = load_encoder(out / task / "encoder.pt")
    save_encoder(out / f"fm_small_v1_{task}.pt", e.model, e.config, e.normalisation,
                 dict(e.metadata, version="fm_small_v1"), include_decoder=False, head=e.head)
    print(f"polyfe2: {out / f'fm_small_v1_{task}.pt'}")
PY
