"""Audio input, the first stage: any file or array to mono float32 at a model's rate, whole or block by block.

- `decode`: files as they are stored (soundfile, else ffmpeg), header checks, streaming, size limits
- `load`: mono, resampling, clips of a fixed length, arrays in blocks (`AudioConfig`)
- `windows`: where the overlapping analysis windows of a long recording start and end
- `levels`: peak, loudness and clipping of a recording, block by block

Imports only `soundtag.errors`.
"""
