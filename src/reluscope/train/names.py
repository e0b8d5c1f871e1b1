"""Names of the objectives, without importing them (for the command line's choices).

``reluscope.train.objectives.OBJECTIVES`` has exactly these keys (a test checks it).
"""

OBJECTIVE_NAMES = (
    "supervised", "supervised-aug", "simclr", "moco", "byol", "simsiam", "dino", "vicreg", "barlow", "mae",
    "simsiam-no-stopgrad", "simsiam-no-predictor", "byol-no-predictor", "byol-no-ema", "dino-no-centering",
    "dino-no-sharpening", "vicreg-invariance-only",
)
