"""Lesson recording: a hidden subscriber that captures every track, and the archive builder.

Live (inside the lesson server):
    service   when to record a lesson, when it is over, building archives, crash recovery
    session   the recorder as a hidden system participant: subscribe, capture, log events
    capture   encoded frames muxed to one Matroska file per track (no transcoding), events log
    catalog   the recordings table (same database as the lessons)
    http_api  GET /api/recordings, /api/recordings/{id}, files with range requests

While recording (one chunk worker process at idle priority, `twinclass archive chunks`):
    live_build   round-robin over the recordings in progress, one chunk at a time, 30-60 s behind live
    chunks       the chunk plan on the timeline, fingerprints, the ledger in <recording>/.chunks/
    chunk_jobs   what there is to build for a capture, chunk by chunk (shared with the final build)
    chunk_audio  a chunk's sound: levels, voice activity, its share of the AAC mix

After the lesson (a separate process, `twinclass archive build`; reuses the chunks):
    timeline  reading a capture back: session clock, events, each track's extent
    audio     microphone levels (for directing) and the AAC mix
    director  auto-directing: which picture is large, which inset, when
    compose   the 1280x720 layout, drawn in I420
    render    decoding what is on screen, composing, H.264 encoding, in parallel chunks
    build     the whole archive: lesson.mp4, poster, thumbnails, analysis.json, manifest.json
    mux       joining the chunks into one .mp4 with its index at the front
    manifest  the manifest and `verify`

See README.md ("Recording and the lesson archive") for the archive layout, the manifest fields, the CLI and HTTP.
"""
