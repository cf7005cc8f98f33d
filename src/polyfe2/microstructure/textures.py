"""Ideal texture components of rolled fcc sheet, as Bunge Euler angles (data only: the
sampling around them is in :mod:`.descriptor` and :mod:`.plate`, through ``damask``)."""

#: Ideal texture components, Bunge Euler angles (phi1, Phi, phi2) in degrees.
TEXTURE_COMPONENTS = {
    "cube": (0.0, 0.0, 0.0),
    "goss": (0.0, 45.0, 0.0),
    "brass": (35.26, 45.0, 0.0),
    "copper": (90.0, 35.26, 45.0),
}
