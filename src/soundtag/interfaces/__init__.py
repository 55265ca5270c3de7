"""The ways in: the `soundtag` command, the web app and the pictures they draw.

- `cli`: the command's arguments and help (light: `soundtag --help` imports no torch)
- `commands`: what each sub-command does
- `app`: the Gradio app (upload, microphone, catalog search)
- `present`: how results are shown: percent scores, `m:ss.s` times, the app's tables
- `timeline`: a recording's spectrogram with its events drawn on it
- `memory`: glibc allocator settings for long-running processes

May import every other sub-package.
"""
