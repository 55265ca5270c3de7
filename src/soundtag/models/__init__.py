"""Models: what turns features into class scores, and the settings saved with each model.

- `cnn`: the compact log-mel CNN trained on ESC-50 (`ModelConfig`, `SoundCNN`, `ModelBundle`, save and load)
- `yamnet`: Google's YAMNet (AudioSet's 521 classes) on onnxruntime, fetched once into the cache
- `fusion`: YAMNet's scores mapped onto ESC-50's classes (zero-shot) and fused with the CNN's
- `heads`: few-shot heads, a linear classifier on YAMNet's embedding
- `inference_config`: how a model is applied (`InferenceConfig`), saved in each model's model.json
- `export`: the CNN as ONNX
- `esc50/`, `audioset/`: the shipped model and the ESC-50 to AudioSet mapping (package data)

May import `soundtag.audio` and `soundtag.features`.
"""
