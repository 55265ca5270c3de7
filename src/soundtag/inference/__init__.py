"""Inference: a model applied to recordings of any length.

- `classifier`: `Classifier`, the one surface the CLI, the app, the catalog and Ray share (load, predict,
  analyze, embed)
- `runners`: batches of windows -> scores, for each kind of model (torch, ONNX, fused with YAMNet, heads)
- `events`: a file's tags (presence) and events (when each sound happens) from its window scores

May import `soundtag.audio`, `soundtag.features` and `soundtag.models`.
"""
