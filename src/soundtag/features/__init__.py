"""Features: the pictures of sound the models read.

- `logmel`: the CNN's log-mel frontend, an `nn.Module` with its filterbank as a buffer (`FrontendConfig`)
- `yamnet`: YAMNet's own frontend in numpy (16 kHz, 64 HTK mel bands, 0.96-s patches every 0.48 s)

May import `soundtag.audio`.
"""
