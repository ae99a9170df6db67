"""The lesson server: lessons, classrooms, roles, join tokens, signaling and the forwarding plane.

`sfu.media` is the media plane (RTP in, RTP out, never decoded); it imports nothing else from
`sfu`. Room logic (`sfu.room`) never imports aiortc or av directly.
"""
