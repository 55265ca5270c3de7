"""The media library: tags of many files kept, searched and checked.

- `catalog`: the SQLite catalog (files, tags, events, embeddings, which model answered), search and export
- `ingest`: tagging folders into it, resumable, on local threads or Ray
- `index`: search by sound (nearest embeddings, with faiss)
- `qa`: delivery checks (rules on tags, levels, unfamiliar audio) with a CSV report

May import `soundtag.audio`, `soundtag.features`, `soundtag.models` and `soundtag.inference`.
"""
