#!/usr/bin/env bash
# The foundation model end to end: the texture-graded plate (24x24x1 cells, 1 % strain) with one
# ODMN per texture band, inferred by the shipped encoder from a Voronoi RVE of the band's texture,
# against taylor with 20 grains of the band's texture per voxel; then the ODMNs it infers for the
# four test textures against full-field crystal plasticity of their RVEs (tension to 2 %, unloading).
set -euo pipefail
cd "$(dirname "$0")"
P=../../.venv/bin/polyfe2
ENC=../../src/polyfe2/models/fm_small_v1_odmn.pt
case=(--cells 24 24 1 --increments 10 --strain 0.01 --no-progress)
$P demo --backend odmn --encoder "$ENC" --out results/odmn "${case[@]}"
$P demo --backend taylor --K 20 --out results/taylor "${case[@]}"
$P compare results/odmn/results/plate.hdf5 results/taylor/results/plate.hdf5 --labels "odmn (inferred)" "taylor K=20" \
  --out results/sigma_xx_odmn_taylor.png
$P odmn validate --encoder "$ENC" --out results/validation --no-progress
$P odmn validate --encoder "$ENC" --textures band0 band1 band2 band3 --out results/validation_bands --no-progress
