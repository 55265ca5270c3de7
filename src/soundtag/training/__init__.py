"""Training and evaluation: datasets and folds, cached features, augmentation, the training loop, 5-fold reports,
thresholds and calibration, few-shot heads.

- `dataset`: ESC-50, a folder per class or a CSV, with folds; the verified ESC-50 download
- `feature_cache`, `augment`, `rooms`: log-mels computed once; recording conditions applied on the fly
- `config`: `TrainConfig`, every setting of a run, saved with it
- `train`: the loop, fold by fold, resumable
- `evaluate`, `thresholds`: out-of-fold reports (accuracy, macro F1, per class, confusion) and decision thresholds
- `calibrate`: the statistics the shipped model's unfamiliarity score reads
- `few_shot`: fitting few-shot heads on YAMNet's embedding

May import `soundtag.audio`, `soundtag.features`, `soundtag.models` and `soundtag.inference` (evaluation and
calibration go through `Classifier`).
"""
